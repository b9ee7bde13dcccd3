// conv2d: the float64 reference backward against finite differences, then the WGSL implicit GEMMs
// (forward, input/weight/bias gradients, accumulate) against the reference on odd shapes.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, readF32, upload, type ConvSizes, type KernelContext } from './common';
import {
  conv2d,
  conv2dBackwardBias,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dOutputSize,
  type Conv2dShape,
} from './conv2d';
import { conv2dBackwardRef, conv2dRef } from './conv2d.ref';
import { fromF16Array, toF16Array } from '../tensor/dtype';
import {
  assertClose,
  canaryBuffer,
  compareClose,
  finiteDifference,
  randn,
  readCanaried,
  rng,
  tolerance,
} from './testing';

function sizes(s: Conv2dShape) {
  const ho = conv2dOutputSize(s.h, s.kh, s.stride, s.pad);
  const wo = conv2dOutputSize(s.w, s.kw, s.stride, s.pad);
  return { x: s.batch * s.cin * s.h * s.w, w: s.cout * s.cin * s.kh * s.kw, y: s.batch * s.cout * ho * wo };
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, v, i) => acc + v * b[i], 0);

describe('conv2d reference backward', () => {
  const shapes: Conv2dShape[] = [
    { batch: 2, cin: 2, h: 5, w: 4, cout: 3, kh: 3, kw: 3, stride: 1, pad: 1 },
    { batch: 1, cin: 3, h: 7, w: 6, cout: 2, kh: 3, kw: 3, stride: 2, pad: 1 },
    { batch: 2, cin: 3, h: 5, w: 5, cout: 2, kh: 1, kw: 1, stride: 2, pad: 0 },
    { batch: 1, cin: 2, h: 6, w: 5, cout: 2, kh: 3, kw: 2, stride: 2, pad: 0 },
  ];
  it.each(shapes)('matches finite differences for %j', (s) => {
    const rand = rng(7);
    const n = sizes(s);
    const x = Float64Array.from(randn(rand, n.x));
    const w = Float64Array.from(randn(rand, n.w));
    const b = Float64Array.from(randn(rand, s.cout));
    const dy = Float64Array.from(randn(rand, n.y));
    const loss = () => dot(dy, conv2dRef(x, w, b, s));
    const g = conv2dBackwardRef(dy, x, w, s);
    const tol = { atol: 1e-7, rtol: 1e-6 };
    assertClose(g.dx, finiteDifference(loss, x), tol, 'dx');
    assertClose(g.dweight, finiteDifference(loss, w), tol, 'dweight');
    assertClose(g.dbias, finiteDifference(loss, b), tol, 'dbias');
  });
});

const gpuShapes: Conv2dShape[] = [
  { batch: 2, cin: 3, h: 7, w: 9, cout: 4, kh: 3, kw: 3, stride: 1, pad: 1 },
  { batch: 1, cin: 5, h: 13, w: 9, cout: 19, kh: 3, kw: 3, stride: 2, pad: 1 },
  { batch: 2, cin: 17, h: 9, w: 7, cout: 19, kh: 1, kw: 1, stride: 1, pad: 0 },
  { batch: 1, cin: 17, h: 13, w: 13, cout: 4, kh: 3, kw: 3, stride: 2, pad: 0 },
  { batch: 2, cin: 5, h: 7, w: 13, cout: 19, kh: 1, kw: 1, stride: 2, pad: 0 },
  // Wide enough for 4×4 outputs per thread and several reduction tiles.
  { batch: 2, cin: 40, h: 11, w: 10, cout: 70, kh: 3, kw: 3, stride: 1, pad: 1 },
];

const SIZES: ConvSizes[] = ['baked', 'uniform'];

async function ctxAndData(s: Conv2dShape, seed: number) {
  const ctx = kernelContext(await testGpu());
  const rand = rng(seed);
  const n = sizes(s);
  const data = { x: randn(rand, n.x), w: randn(rand, n.w), b: randn(rand, s.cout), dy: randn(rand, n.y) };
  const buf = {
    x: upload(ctx, 'conv2d.test.x', data.x),
    w: upload(ctx, 'conv2d.test.w', data.w),
    b: upload(ctx, 'conv2d.test.b', data.b),
    dy: upload(ctx, 'conv2d.test.dy', data.dy),
  };
  const f64 = {
    x: Float64Array.from(data.x),
    w: Float64Array.from(data.w),
    b: Float64Array.from(data.b),
    dy: Float64Array.from(data.dy),
  };
  return { ctx, rand, n, buf, f64 };
}

function destroyAll(...bufs: GPUBuffer[]): void {
  for (const b of bufs) b.destroy();
}

async function poisonedRun(
  ctx: KernelContext,
  label: string,
  n: number,
  run: (out: GPUBuffer) => Promise<void>,
): Promise<Float32Array> {
  const out = canaryBuffer(ctx, label, n);
  await run(out);
  const got = await readCanaried(ctx, out, n);
  out.destroy();
  return got;
}

describe('conv2d on the GPU', () => {
  const tol = tolerance('conv2d');

  // Every shape with its sizes baked into the pipeline (frozen UNet convs) and from a uniform (LoRA² conv adapters).
  const cases = gpuShapes.flatMap((s) => SIZES.map((sizes) => ({ ...s, sizes })));

  it.each(cases)('forward (with and without bias) matches the reference for %j', async (s) => {
    const { ctx, n, buf, f64 } = await ctxAndData(s, 11);
    const withBias = await poisonedRun(ctx, 'conv2d.test.y', n.y, (out) =>
      conv2d(ctx, { ...s, x: buf.x, weight: buf.w, bias: buf.b, out }),
    );
    assertClose(withBias, conv2dRef(f64.x, f64.w, f64.b, s), tol, 'conv2d forward + bias');
    const noBias = await poisonedRun(ctx, 'conv2d.test.y', n.y, (out) =>
      conv2d(ctx, { ...s, x: buf.x, weight: buf.w, out }),
    );
    assertClose(noBias, conv2dRef(f64.x, f64.w, undefined, s), tol, 'conv2d forward');
    destroyAll(buf.x, buf.w, buf.b, buf.dy);
  });

  it.each(cases)('input, weight and bias gradients match the reference for %j', async (s) => {
    const { ctx, n, buf, f64 } = await ctxAndData(s, 23);
    const want = conv2dBackwardRef(f64.dy, f64.x, f64.w, s);
    const dx = await poisonedRun(ctx, 'conv2d.test.dx', n.x, (dx) =>
      conv2dBackwardInput(ctx, { ...s, dy: buf.dy, weight: buf.w, dx }),
    );
    assertClose(dx, want.dx, tol, 'conv2d dx');
    const dw = await poisonedRun(ctx, 'conv2d.test.dw', n.w, (dweight) =>
      conv2dBackwardWeight(ctx, { ...s, dy: buf.dy, x: buf.x, dweight }),
    );
    assertClose(dw, want.dweight, tol, 'conv2d dweight');
    const db = await poisonedRun(ctx, 'conv2d.test.db', s.cout, (dbias) =>
      conv2dBackwardBias(ctx, { ...s, dy: buf.dy, dbias }),
    );
    assertClose(db, want.dbias, tol, 'conv2d dbias');
    destroyAll(buf.x, buf.w, buf.b, buf.dy);
  });

  it.each(SIZES)('accumulates into existing gradients when asked (sizes %s)', async (sizes) => {
    const s = { ...gpuShapes[1], sizes };
    const { ctx, rand, n, buf, f64 } = await ctxAndData(s, 31);
    const want = conv2dBackwardRef(f64.dy, f64.x, f64.w, s);
    const prior = { dx: randn(rand, n.x), dw: randn(rand, n.w), db: randn(rand, s.cout) };
    const dx = upload(ctx, 'conv2d.test.dx', prior.dx);
    const dweight = upload(ctx, 'conv2d.test.dw', prior.dw);
    const dbias = upload(ctx, 'conv2d.test.db', prior.db);
    await conv2dBackwardInput(ctx, { ...s, dy: buf.dy, weight: buf.w, dx, accumulate: true });
    await conv2dBackwardWeight(ctx, { ...s, dy: buf.dy, x: buf.x, dweight, accumulate: true });
    await conv2dBackwardBias(ctx, { ...s, dy: buf.dy, dbias, accumulate: true });
    const plus = (a: Float32Array, b: Float64Array) => b.map((v, i) => v + a[i]);
    assertClose(await readF32(ctx, dx), plus(prior.dx, want.dx), tol, 'accumulated dx');
    assertClose(await readF32(ctx, dweight), plus(prior.dw, want.dweight), tol, 'accumulated dweight');
    assertClose(await readF32(ctx, dbias), plus(prior.db, want.dbias), tol, 'accumulated dbias');
    destroyAll(buf.x, buf.w, buf.b, buf.dy, dx, dweight, dbias);
  });

  // Frozen f16 weights beside f32 activations: the kernels read packed halves. Two shapes: an odd weight
  // count (the last word half padding) with stride 2, and the wide one with 4×4 outputs per thread.
  it.each([gpuShapes[1], gpuShapes[5]])('f16 weight: forward and input gradient for %j', async (s) => {
    const { ctx, n, buf, f64 } = await ctxAndData(s, 41);
    const halves = new Uint16Array(n.w + (n.w % 2));
    halves.set(toF16Array(f64.w));
    const w16 = upload(ctx, 'conv2d.test.w16', new Uint32Array(halves.buffer));
    const rounded = Float64Array.from(fromF16Array(halves.subarray(0, n.w)));
    const y = await poisonedRun(ctx, 'conv2d.test.y16', n.y, (out) =>
      conv2d(ctx, { ...s, x: buf.x, weight: w16, bias: buf.b, out, weightF16: true }),
    );
    const wantY = conv2dRef(f64.x, rounded, f64.b, s);
    assertClose(y, wantY, tol, 'conv2d forward, f16 weight');
    // The rounding matters at this tolerance: against the unrounded weights the result fails.
    expect(compareClose(y, conv2dRef(f64.x, f64.w, f64.b, s), { atol: 1e-6, rtol: 1e-6 }).ok).toBe(false);
    const dx = await poisonedRun(ctx, 'conv2d.test.dx16', n.x, (dx) =>
      conv2dBackwardInput(ctx, { ...s, dy: buf.dy, weight: w16, dx, weightF16: true }),
    );
    assertClose(dx, conv2dBackwardRef(f64.dy, f64.x, rounded, s).dx, tol, 'conv2d dx, f16 weight');
    destroyAll(buf.x, buf.w, buf.b, buf.dy, w16);
  });

  // With sizes from a uniform, convs that differ only in their sizes share one pipeline: a LoRA² conv adapter
  // whose rank changes compiles nothing new. gpuShapes[5] and s0 are both 3×3, stride 1, pad 1, tile width 4.
  it('uniform sizes share one pipeline between shapes; baked ones build one per shape', async () => {
    const ctx = kernelContext(await testGpu());
    const built = async (run: () => Promise<void>) => {
      const before = new Set(ctx.pipelines.keys());
      await run();
      return [...ctx.pipelines.keys()].filter((k) => !before.has(k)).map((k) => k.split('\n')[0]);
    };
    const forward = (s: Conv2dShape, d: Awaited<ReturnType<typeof ctxAndData>>) => () =>
      poisonedRun(ctx, 'conv2d.test.share', d.n.y, (out) =>
        conv2d(ctx, { ...s, x: d.buf.x, weight: d.buf.w, out }),
      ).then((y) =>
        assertClose(y, conv2dRef(d.f64.x, d.f64.w, undefined, s), tol, `forward ${JSON.stringify(s)}`),
      );
    const s0: Conv2dShape = { ...gpuShapes[5], batch: 1, cin: 7, h: 5, w: 6, cout: 33 };
    const s1: Conv2dShape = { ...gpuShapes[5], batch: 3, cin: 9, h: 4, w: 7, cout: 41 };
    const d0 = await ctxAndData(s0, 51);
    const d1 = await ctxAndData(s1, 52);
    await built(forward({ ...s0, sizes: 'uniform' }, d0)); // compiles the pipeline unless an earlier test did
    expect(await built(forward({ ...s1, sizes: 'uniform' }, d1))).toEqual([]);
    expect(await built(forward(s0, d0))).toEqual(['conv2d.forward[1x7x5x6→33 k3x3 s1 p1]']);
    expect(await built(forward(s1, d1))).toEqual(['conv2d.forward[3x9x4x7→41 k3x3 s1 p1]']);
    // The context's override (benchmarks) wins over the call's choice.
    ctx.convSizes = 'uniform';
    try {
      expect(await built(forward({ ...s1, sizes: 'baked' }, d1))).toEqual([]);
    } finally {
      ctx.convSizes = undefined;
    }
    destroyAll(d0.buf.x, d0.buf.w, d0.buf.b, d0.buf.dy, d1.buf.x, d1.buf.w, d1.buf.b, d1.buf.dy);
  });

  it('rejects shapes with an empty output', async () => {
    const ctx = kernelContext(await testGpu());
    const s = { batch: 1, cin: 1, h: 2, w: 2, cout: 1, kh: 3, kw: 3, stride: 1, pad: 0 };
    const b = upload(ctx, 'conv2d.test.tiny', new Float32Array(9));
    await expect(conv2d(ctx, { ...s, x: b, weight: b, out: b })).rejects.toThrow(/invalid shape/);
    b.destroy();
  });
});
