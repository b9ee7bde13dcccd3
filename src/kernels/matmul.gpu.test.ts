// matmul / linear: the float64 reference backward against finite differences, both WGSL kernels against the
// reference on odd shapes (transposes, batch, broadcast B, bias, α, accumulate, f16), and proof that the
// trailing canaries catch an out-of-bounds write.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { fromF16Array, toF16Array } from '../tensor/dtype';
import { getPipeline, kernelContext, launch, uniformBuffer, upload, type KernelContext } from './common';
import {
  linear,
  linearBackward,
  matmul,
  matmulBackward,
  matmulNaiveTiled,
  type MatmulArgs,
  type MatmulTiling,
} from './matmul';
import {
  linearBackwardRef,
  linearRef,
  matmulBackwardRef,
  matmulRef,
  type MatmulRefShape,
} from './matmul.ref';
import {
  assertClose,
  canaryBuffer,
  CanaryError,
  compareClose,
  finiteDifference,
  randInt,
  randn,
  readCanaried,
  rng,
  tolerance,
} from './testing';

const tol = tolerance('matmul');
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** Element counts of the stored A, B and output of a shape. */
function counts(s: MatmulRefShape) {
  const batch = s.batch ?? 1;
  return { a: batch * s.m * s.k, b: (s.broadcastB ? 1 : batch) * s.k * s.n, c: batch * s.m * s.n };
}

describe('matmul reference backward', () => {
  const shapes: MatmulRefShape[] = [
    { m: 3, n: 4, k: 5 },
    { m: 2, n: 3, k: 4, batch: 2, transposeA: true, alpha: 0.7 },
    { m: 4, n: 2, k: 3, batch: 3, transposeB: true, broadcastB: true },
    { m: 3, n: 3, k: 2, batch: 2, transposeA: true, transposeB: true, broadcastB: true, alpha: -1.5 },
  ];
  it.each(shapes)('matches finite differences for %j', (s) => {
    const rand = rng(11);
    const n = counts(s);
    const a = Float64Array.from(randn(rand, n.a));
    const b = Float64Array.from(randn(rand, n.b));
    const bias = Float64Array.from(randn(rand, s.n));
    const dy = Float64Array.from(randn(rand, n.c));
    const loss = () => dot(dy, matmulRef(a, b, s, bias));
    const g = matmulBackwardRef(a, b, dy, s);
    const fdTol = { atol: 1e-7, rtol: 1e-6 };
    assertClose(g.da, finiteDifference(loss, a), fdTol, 'da');
    assertClose(g.db, finiteDifference(loss, b), fdTol, 'db');
    assertClose(g.dbias, finiteDifference(loss, bias), fdTol, 'dbias');
  });
});

interface ForwardCase extends MatmulRefShape {
  bias?: boolean;
  accumulate?: boolean;
  tiling?: MatmulTiling;
}

/** A second register tiling (4×4 per thread, 32×64 tiles, 8-deep k): the kernel is generic in it. */
const SMALL_TILING: MatmulTiling = { wgX: 16, wgY: 8, rowsPerThread: 4, bk: 8 };

/** Sizes that are not multiples of any tile (1, 17, 33, 70, 129), drawn per seed. */
function randomCase(seed: number, flags: Omit<ForwardCase, 'm' | 'n' | 'k'>): ForwardCase {
  const rand = rng(seed);
  const pool = [1, 17, 33, 70, 129];
  const pick = () => pool[randInt(rand, 0, pool.length - 1)];
  return { m: pick(), n: pick(), k: pick(), ...flags };
}

const forwardCases: ForwardCase[] = [
  randomCase(1, { batch: 3 }),
  randomCase(2, { transposeA: true, bias: true }),
  randomCase(3, { batch: 2, broadcastB: true, transposeB: true, bias: true, alpha: 0.5 }),
  { m: 17, n: 33, k: 70, batch: 3 },
  { m: 129, n: 1, k: 33, transposeA: true, bias: true },
  { m: 70, n: 129, k: 17, batch: 2, broadcastB: true, transposeB: true, bias: true, alpha: 0.5 },
  { m: 1, n: 17, k: 129, transposeA: true, transposeB: true, accumulate: true },
  // 4-aligned rows: the vec4 load and store paths, with tile remainders in m and several k tiles.
  {
    m: 36,
    n: 64,
    k: 20,
    batch: 2,
    transposeA: true,
    transposeB: true,
    bias: true,
    accumulate: true,
    alpha: -2,
  },
  { m: 65, n: 68, k: 40, batch: 2, broadcastB: true },
  { m: 70, n: 129, k: 33, transposeB: true, bias: true, tiling: SMALL_TILING },
];

/** A canary-guarded output whose first n elements hold `init` (for accumulate) instead of poison. */
function outputBuffer(ctx: KernelContext, label: string, n: number, init?: Float32Array): GPUBuffer {
  const buf = canaryBuffer(ctx, label, n);
  if (init)
    ctx.device.queue.writeBuffer(buf, 0, init.buffer as ArrayBuffer, init.byteOffset, init.byteLength);
  return buf;
}

describe('matmul forward (GPU)', () => {
  it.each(forwardCases)('tiled and naive kernels match the reference for %j', async (c) => {
    const ctx = kernelContext(await testGpu());
    const rand = rng(c.m * 1000 + c.n * 10 + c.k);
    const n = counts(c);
    const a = randn(rand, n.a);
    const b = randn(rand, n.b);
    const bias = c.bias ? randn(rand, c.n) : undefined;
    const init = c.accumulate ? randn(rand, n.c) : undefined;
    const want = matmulRef(a, b, c, bias);
    if (init) want.forEach((v, i) => (want[i] = v + init[i]));
    const args: Omit<MatmulArgs, 'out'> = {
      ...c,
      a: upload(ctx, 'matmul.test.a', a),
      b: upload(ctx, 'matmul.test.b', b),
      bias: bias && upload(ctx, 'matmul.test.bias', bias),
    };
    const fast = outputBuffer(ctx, 'matmul.test.out', n.c, init);
    await matmul(ctx, { ...args, out: fast }, c.tiling);
    assertClose(await readCanaried(ctx, fast, n.c), want, tol, 'matmul');
    const naive = outputBuffer(ctx, 'matmulNaiveTiled.test.out', n.c, init);
    await matmulNaiveTiled(ctx, { ...args, out: naive });
    assertClose(await readCanaried(ctx, naive, n.c), want, tol, 'matmulNaiveTiled');
  });
});

interface BackwardCase extends MatmulRefShape {
  accumulate?: boolean;
}

const backwardCases: BackwardCase[] = [
  // Broadcast B with plain A: dB is one reduction over batch·m rows.
  { m: 17, n: 33, k: 20, batch: 3, broadcastB: true },
  // Broadcast B with transposed A: dB accumulates one launch per batch item; dA comes back transposed.
  { m: 9, n: 12, k: 7, batch: 2, transposeA: true, transposeB: true, broadcastB: true, alpha: 0.5 },
  { m: 33, n: 17, k: 1, batch: 2, transposeA: true, accumulate: true },
  { m: 70, n: 1, k: 129, transposeB: true },
];

describe('matmul backward (GPU)', () => {
  it.each(backwardCases)('da, db, dbias match the reference for %j', async (c) => {
    const ctx = kernelContext(await testGpu());
    const rand = rng(c.m + 31 * c.n + 977 * c.k);
    const n = counts(c);
    const a = randn(rand, n.a);
    const b = randn(rand, n.b);
    const dy = randn(rand, n.c);
    const want = matmulBackwardRef(a, b, dy, c);
    const init = c.accumulate
      ? { da: randn(rand, n.a), db: randn(rand, n.b), dbias: randn(rand, c.n) }
      : undefined;
    const da = outputBuffer(ctx, 'matmul.test.da', n.a, init?.da);
    const db = outputBuffer(ctx, 'matmul.test.db', n.b, init?.db);
    const dbias = outputBuffer(ctx, 'matmul.test.dbias', c.n, init?.dbias);
    await matmulBackward(ctx, {
      ...c,
      a: upload(ctx, 'matmul.test.a', a),
      b: upload(ctx, 'matmul.test.b', b),
      dy: upload(ctx, 'matmul.test.dy', dy),
      da,
      db,
      dbias,
    });
    const plus = (x: Float64Array, y?: Float32Array) => (y ? x.map((v, i) => v + y[i]) : x);
    assertClose(await readCanaried(ctx, da, n.a), plus(want.da, init?.da), tol, 'da');
    assertClose(await readCanaried(ctx, db, n.b), plus(want.db, init?.db), tol, 'db');
    assertClose(await readCanaried(ctx, dbias, c.n), plus(want.dbias, init?.dbias), tol, 'dbias');
  });
});

describe('linear (GPU)', () => {
  const shapes = [
    { rows: 33, inFeatures: 17, outFeatures: 70 },
    { rows: 129, inFeatures: 40, outFeatures: 1 },
  ];
  it.each(shapes)('forward and backward (weight grads accumulated) match the reference for %j', async (s) => {
    const ctx = kernelContext(await testGpu());
    const rand = rng(s.rows + s.inFeatures);
    const [nx, nw, ny] = [s.rows * s.inFeatures, s.outFeatures * s.inFeatures, s.rows * s.outFeatures];
    const x = randn(rand, nx);
    const w = randn(rand, nw);
    const bias = randn(rand, s.outFeatures);
    const dy = randn(rand, ny);
    const dw0 = randn(rand, nw);
    const db0 = randn(rand, s.outFeatures);
    const xb = upload(ctx, 'linear.test.x', x);
    const wb = upload(ctx, 'linear.test.weight', w);
    const out = outputBuffer(ctx, 'linear.test.out', ny);
    await linear(ctx, { ...s, x: xb, weight: wb, bias: upload(ctx, 'linear.test.bias', bias), out });
    assertClose(
      await readCanaried(ctx, out, ny),
      linearRef(x, w, bias, s.rows, s.inFeatures, s.outFeatures),
      tol,
      'y',
    );

    const dx = outputBuffer(ctx, 'linear.test.dx', nx);
    const dWeight = outputBuffer(ctx, 'linear.test.dWeight', nw, dw0);
    const dBias = outputBuffer(ctx, 'linear.test.dBias', s.outFeatures, db0);
    const dyb = upload(ctx, 'linear.test.dy', dy);
    await linearBackward(ctx, { ...s, x: xb, weight: wb, dy: dyb, dx, dWeight, dBias, accumulate: true });
    const want = linearBackwardRef(x, w, dy, s.rows, s.inFeatures, s.outFeatures);
    assertClose(await readCanaried(ctx, dx, nx), want.dx, tol, 'dx');
    assertClose(
      await readCanaried(ctx, dWeight, nw),
      want.dWeight.map((v, i) => v + dw0[i]),
      tol,
      'dWeight',
    );
    assertClose(
      await readCanaried(ctx, dBias, s.outFeatures),
      want.dBias.map((v, i) => v + db0[i]),
      tol,
      'dBias',
    );

    // accumulateDx adds a second gradient into dx (x feeding two layers).
    await linearBackward(ctx, { ...s, x: xb, weight: wb, dy: dyb, dx, accumulateDx: true });
    assertClose(
      await readCanaried(ctx, dx, nx),
      want.dx.map((v) => 2 * v),
      tol,
      'dx accumulated',
    );
  });
});

describe('matmul f16 storage (f32 accumulation)', () => {
  it('linear forward and input gradient match the reference on f16-rounded data', async (test) => {
    const gpu = await testGpu();
    if (!gpu.features.shaderF16) test.skip();
    const ctx = kernelContext(gpu);
    const rand = rng(5);
    const s = { rows: 18, inFeatures: 36, outFeatures: 20, dtype: 'f16' as const };
    const h = (n: number) => toF16Array(randn(rand, n));
    const [x, w, bias, dy] = [h(s.rows * 36), h(20 * 36), h(20), h(s.rows * 20)];
    const up = (label: string, v: Uint16Array) => upload(ctx, label, new Uint32Array(v.buffer));
    const [xb, wb, bb, dyb] = [up('x', x), up('w', w), up('bias', bias), up('dy', dy)];
    const ny = s.rows * 20;
    const nx = s.rows * 36;
    const out = outputBuffer(ctx, 'linear.test.f16.out', ny / 2);
    const dx = outputBuffer(ctx, 'linear.test.f16.dx', nx / 2);
    await linear(ctx, { ...s, x: xb, weight: wb, bias: bb, out });
    await linearBackward(ctx, { ...s, x: xb, weight: wb, dy: dyb, dx });
    const f = fromF16Array;
    const readHalves = async (buf: GPUBuffer, n: number) =>
      f(new Uint16Array((await readCanaried(ctx, buf, n / 2)).buffer));
    const tol16 = tolerance('matmul', 'f16');
    assertClose(await readHalves(out, ny), linearRef(f(x), f(w), f(bias), s.rows, 36, 20), tol16, 'f16 y');
    const want = linearBackwardRef(f(x), f(w), f(dy), s.rows, 36, 20);
    assertClose(await readHalves(dx, nx), want.dx, tol16, 'f16 dx');
  });
});

/** Halves packed two per u32 (an odd count padded with a zero half), as the engine stores f16 tensors. */
function packHalves(ctx: KernelContext, label: string, v: Float32Array): GPUBuffer {
  const halves = new Uint16Array(v.length + (v.length % 2));
  halves.set(toF16Array(v));
  return upload(ctx, label, new Uint32Array(halves.buffer));
}

const roundF16 = (v: Float32Array) => fromF16Array(toF16Array(v));

describe('matmul with an f16 B beside f32 A (frozen f16 weights, any adapter)', () => {
  const cases: (MatmulRefShape & { bias?: boolean })[] = [
    // vec4 reads of B (n a multiple of 4), broadcast over a batch: two words per four halves.
    { m: 33, n: 68, k: 20, batch: 2, broadcastB: true, bias: true },
    // transposed B ([n, k], nn.Linear's layout) with an odd k: scalar reads, odd halves at row starts.
    { m: 17, n: 9, k: 31, transposeB: true, bias: true },
    // An odd element count: the last word holds one half and padding.
    { m: 5, n: 7, k: 3 },
  ];
  it.each(cases)('tiled and naive kernels match the reference on f16-rounded B for %j', async (c) => {
    const ctx = kernelContext(await testGpu());
    const rand = rng(7 * c.m + c.n + 13 * c.k);
    const n = counts(c);
    const a = randn(rand, n.a);
    const b = randn(rand, n.b);
    const bias = c.bias ? randn(rand, c.n) : undefined;
    const want = matmulRef(a, roundF16(b), c, bias);
    const args: Omit<MatmulArgs, 'out'> = {
      ...c,
      a: upload(ctx, 'matmul.test.a', a),
      b: packHalves(ctx, 'matmul.test.b16', b),
      bias: bias && upload(ctx, 'matmul.test.bias', bias),
      bF16: true,
    };
    const fast = outputBuffer(ctx, 'matmul.test.out', n.c);
    await matmul(ctx, { ...args, out: fast });
    assertClose(await readCanaried(ctx, fast, n.c), want, tol, 'matmul bF16');
    const naive = outputBuffer(ctx, 'matmulNaiveTiled.test.out', n.c);
    await matmulNaiveTiled(ctx, { ...args, out: naive });
    assertClose(await readCanaried(ctx, naive, n.c), want, tol, 'matmulNaiveTiled bF16');
    // Sanity of the test itself: reading the halves as f32 words would give something else entirely.
    const plain = outputBuffer(ctx, 'matmul.test.plain', n.c);
    await matmul(ctx, { ...args, bF16: false, out: plain });
    expect(compareClose(await readCanaried(ctx, plain, n.c), want, tol).ok).toBe(false);
  });

  it('linear: forward and input gradient with an f16 weight; a weight gradient is refused', async () => {
    const ctx = kernelContext(await testGpu());
    const rand = rng(11);
    const s = { rows: 19, inFeatures: 36, outFeatures: 21 };
    const [nx, nw, ny] = [s.rows * s.inFeatures, s.outFeatures * s.inFeatures, s.rows * s.outFeatures];
    const [x, w, bias, dy, dx0] = [
      randn(rand, nx),
      randn(rand, nw),
      randn(rand, 21),
      randn(rand, ny),
      randn(rand, nx),
    ];
    const xb = upload(ctx, 'linear.test.x', x);
    const wb = packHalves(ctx, 'linear.test.w16', w);
    const out = outputBuffer(ctx, 'linear.test.out', ny);
    await linear(ctx, { ...s, x: xb, weight: wb, bias: upload(ctx, 'b', bias), out, weightF16: true });
    const wr = roundF16(w);
    assertClose(await readCanaried(ctx, out, ny), linearRef(x, wr, bias, s.rows, 36, 21), tol, 'y');
    const dx = outputBuffer(ctx, 'linear.test.dx', nx, dx0);
    const dyb = upload(ctx, 'linear.test.dy', dy);
    await linearBackward(ctx, { ...s, x: xb, weight: wb, dy: dyb, dx, accumulateDx: true, weightF16: true });
    const want = linearBackwardRef(x, wr, dy, s.rows, 36, 21);
    assertClose(
      await readCanaried(ctx, dx, nx),
      want.dx.map((v, i) => v + dx0[i]),
      tol,
      'dx',
    );
    const dWeight = outputBuffer(ctx, 'linear.test.dWeight', nw);
    await expect(
      linearBackward(ctx, { ...s, x: xb, weight: wb, dy: dyb, dWeight, weightF16: true }),
    ).rejects.toThrow(/frozen/);
  });
});

describe('canaries', () => {
  // A copy whose bound check is off by one (i <= n): it writes element n, the first canary.
  const buggyCopy = (guard: string) => /* wgsl */ `
@group(0) @binding(0) var<uniform> n: vec4<u32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (${guard}) { dst[i] = src[i]; }
}`;

  async function copy(ctx: KernelContext, guard: string, n: number): Promise<GPUBuffer> {
    const label = `canary.test.copy(${guard})`;
    const pipeline = await getPipeline(ctx, label, buggyCopy(guard));
    const src = upload(ctx, label, randn(rng(3), n + 1));
    const dst = canaryBuffer(ctx, label, n);
    const params = uniformBuffer(ctx, label, [n]);
    launch(
      ctx,
      { label, pipeline, buffers: [params, src, dst], workgroups: [Math.ceil((n + 1) / 64), 1, 1] },
      [params],
    );
    return dst;
  }

  it('readCanaried throws CanaryError on a write one past the end', async () => {
    const ctx = kernelContext(await testGpu());
    const n = 37;
    await expect(readCanaried(ctx, await copy(ctx, 'i <= n.x', n), n)).rejects.toBeInstanceOf(CanaryError);
    const good = await readCanaried(ctx, await copy(ctx, 'i < n.x', n), n);
    expect(good.every(Number.isFinite)).toBe(true);
  });
});
