// Attention kernels against the float64 reference: finite differences of the reference backward, GPU
// forward/backward on odd self- and cross-attention shapes with canaries, f16, head split/merge, and
// the memory test (no Nq×Nk scratch: bytes at N = 4096 over bytes at N = 1024 stay linear).
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { batch, kernelContext, upload, type KernelContext } from './common';
import {
  ATTENTION_MAX_HEAD_DIM,
  attentionBackward,
  attentionForward,
  attentionScratchBytes,
  attentionTiling,
  mergeHeads,
  splitHeads,
  tiledAttentionTiles,
  type AttentionKernelChoice,
  type AttentionShape,
} from './attention';
import {
  attentionBackwardRef,
  attentionRef,
  mergeHeadsRef,
  splitHeadsRef,
  type AttentionRefShape,
} from './attention.ref';
import {
  assertClose,
  CANARY_BITS,
  CANARY_PAD,
  canaryBuffer,
  finiteDifference,
  randn,
  readCanaried,
  rng,
  subnormalIndices,
  tolerance,
} from './testing';

const f64 = (x: Float32Array): Float64Array => Float64Array.from(x);

function sizes(s: AttentionRefShape): { qn: number; kn: number; rows: number } {
  const bh = s.batch * s.heads;
  return { qn: bh * s.queryLen * s.headDim, kn: bh * s.keyLen * s.headDim, rows: bh * s.queryLen };
}

/** rowsum(dOut ⊙ out) per row: what the backward's first pass writes to delta. */
function deltaRef(dOut: ArrayLike<number>, out: ArrayLike<number>, rows: number, d: number): Float64Array {
  const delta = new Float64Array(rows);
  for (let r = 0; r < rows; r++) for (let e = 0; e < d; e++) delta[r] += dOut[r * d + e] * out[r * d + e];
  return delta;
}

interface Inputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  dOut: Float32Array;
}

function randomInputs(seed: number, s: AttentionRefShape): Inputs {
  const rand = rng(seed);
  const { qn, kn } = sizes(s);
  return { q: randn(rand, qn), k: randn(rand, kn), v: randn(rand, kn), dOut: randn(rand, qn) };
}

interface GpuResults {
  out: Float32Array;
  lse: Float32Array;
  delta: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

/** Forward + backward in one submission, every output a canaried, poisoned buffer. */
async function runGpu(
  ctx: KernelContext,
  s: AttentionShape,
  x: Inputs,
  kernel?: AttentionKernelChoice,
): Promise<GpuResults> {
  const { qn, kn, rows } = sizes(s);
  const q = upload(ctx, 'attention.test.q', x.q);
  const k = upload(ctx, 'attention.test.k', x.k);
  const v = upload(ctx, 'attention.test.v', x.v);
  const dOut = upload(ctx, 'attention.test.dOut', x.dOut);
  const out = canaryBuffer(ctx, 'attention.test.out', qn);
  const lse = canaryBuffer(ctx, 'attention.test.lse', rows);
  const delta = canaryBuffer(ctx, 'attention.test.delta', rows);
  const dq = canaryBuffer(ctx, 'attention.test.dq', qn);
  const dk = canaryBuffer(ctx, 'attention.test.dk', kn);
  const dv = canaryBuffer(ctx, 'attention.test.dv', kn);
  await batch(ctx, 'attention.test', async () => {
    await attentionForward(ctx, { ...s, q, k, v, out, lse, kernel });
    await attentionBackward(ctx, { ...s, q, k, v, out, lse, dOut, delta, dq, dk, dv, kernel });
  });
  const res = {
    out: await readCanaried(ctx, out, qn),
    lse: await readCanaried(ctx, lse, rows),
    delta: await readCanaried(ctx, delta, rows),
    dq: await readCanaried(ctx, dq, qn),
    dk: await readCanaried(ctx, dk, kn),
    dv: await readCanaried(ctx, dv, kn),
  };
  for (const b of [q, k, v, dOut, out, lse, delta, dq, dk, dv]) b.destroy();
  return res;
}

describe('attention reference (float64)', () => {
  it('backward matches central finite differences of the forward', () => {
    for (const s of [
      { batch: 1, heads: 2, queryLen: 3, keyLen: 4, headDim: 3 },
      { batch: 2, heads: 1, queryLen: 2, keyLen: 5, headDim: 2, scale: 0.7 },
    ]) {
      const x = randomInputs(11, s);
      const [q, k, v, g] = [f64(x.q), f64(x.k), f64(x.v), f64(x.dOut)];
      const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array): number =>
        attentionRef(qq, kk, vv, s).out.reduce((acc, o, i) => acc + o * g[i], 0);
      const grads = attentionBackwardRef(q, k, v, g, s);
      const tol = { atol: 1e-7, rtol: 1e-6 };
      assertClose(
        grads.dq,
        finiteDifference((t) => loss(t, k, v), q),
        tol,
        'fd dq',
      );
      assertClose(
        grads.dk,
        finiteDifference((t) => loss(q, t, v), k),
        tol,
        'fd dk',
      );
      assertClose(
        grads.dv,
        finiteDifference((t) => loss(q, k, t), v),
        tol,
        'fd dv',
      );
    }
  });

  it('forward: one key gives out = v and lse = scale·q·k; equal keys average the values', () => {
    const s = { batch: 1, heads: 1, queryLen: 2, keyLen: 1, headDim: 3, scale: 0.5 };
    const q = Float64Array.of(1, 2, 3, -1, 0, 4);
    const k = Float64Array.of(2, -1, 1);
    const v = Float64Array.of(5, 6, 7);
    const r = attentionRef(q, k, v, s);
    assertClose(r.out, [5, 6, 7, 5, 6, 7], { atol: 1e-12, rtol: 0 }, 'one-key out');
    assertClose(r.lse, [0.5 * 3, 0.5 * 2], { atol: 1e-12, rtol: 0 }, 'one-key lse');
    const s2 = { ...s, keyLen: 2 };
    const r2 = attentionRef(q, Float64Array.of(2, -1, 1, 2, -1, 1), Float64Array.of(1, 2, 3, 3, 4, 5), s2);
    assertClose(r2.out, [2, 3, 4, 2, 3, 4], { atol: 1e-12, rtol: 0 }, 'equal keys out');
  });
});

describe('attention kernels (GPU vs float64 reference)', () => {
  const shapes: (AttentionShape & { name: string })[] = [
    { name: 'cross Nq=1 Nk=3 d=8', batch: 1, heads: 1, queryLen: 1, keyLen: 3, headDim: 8 },
    { name: 'cross Nq=17 Nk=77 d=40', batch: 2, heads: 3, queryLen: 17, keyLen: 77, headDim: 40 },
    { name: 'self N=70 d=64', batch: 1, heads: 2, queryLen: 70, keyLen: 70, headDim: 64 },
    {
      name: 'cross Nq=70 Nk=8 d=64 scale',
      batch: 2,
      heads: 1,
      queryLen: 70,
      keyLen: 8,
      headDim: 64,
      scale: 0.3,
    },
    { name: 'cross Nq=17 Nk=129 d=8', batch: 1, heads: 3, queryLen: 17, keyLen: 129, headDim: 8 },
    { name: 'cross Nq=19 Nk=21 d=160', batch: 1, heads: 1, queryLen: 19, keyLen: 21, headDim: 160 },
    { name: 'self N=45 d=80', batch: 1, heads: 2, queryLen: 45, keyLen: 45, headDim: 80 },
    { name: 'self N=37 d=248', batch: 1, heads: 1, queryLen: 37, keyLen: 37, headDim: 248 },
    // Not a multiple of 4: only the row-wise kernels serve these.
    { name: 'cross Nq=33 Nk=50 d=6', batch: 2, heads: 2, queryLen: 33, keyLen: 50, headDim: 6 },
    { name: 'self N=20 d=3', batch: 1, heads: 1, queryLen: 20, keyLen: 20, headDim: 3 },
  ];
  const tol = tolerance('attention');

  // The row-wise kernels everywhere; the tiled ones where a tiling fits (the default): on the compact grid (this
  // adapter's) for every such shape, and on the wide grid (GPUs') for two with ragged tiles that cover both of
  // its forward tilings here (32×16 and 32×8).
  const wideToo = new Set(['self N=70 d=64', 'self N=45 d=80']);
  const variants = [
    { kernel: 'tiled', grid: 'compact' },
    { kernel: 'tiled', grid: 'wide' },
    { kernel: 'rows', grid: undefined },
  ] as const;
  const runs = shapes.flatMap((s, i) =>
    variants
      .filter((v) => v.kernel === 'rows' || tiledAttentionTiles('forward', s.headDim))
      .filter((v) => v.grid !== 'wide' || wideToo.has(s.name))
      .map((v) => ({ s, i, ...v })),
  );
  for (const { s, i, kernel, grid } of runs) {
    it(`forward and backward (${kernel}${grid ? `, ${grid} grid` : ''}), ${s.name}`, async () => {
      const ctx = kernelContext(await testGpu());
      const x = randomInputs(100 + i, s);
      ctx.attentionGrid = grid;
      let got: GpuResults;
      try {
        got = await runGpu(ctx, s, x, kernel);
      } finally {
        ctx.attentionGrid = undefined;
      }
      const ref = attentionRef(f64(x.q), f64(x.k), f64(x.v), s);
      const grads = attentionBackwardRef(f64(x.q), f64(x.k), f64(x.v), f64(x.dOut), s);
      assertClose(got.out, ref.out, tol, `${s.name} out`);
      assertClose(got.lse, ref.lse, tol, `${s.name} lse`);
      assertClose(got.delta, deltaRef(x.dOut, ref.out, sizes(s).rows, s.headDim), tol, `${s.name} delta`);
      assertClose(got.dq, grads.dq, tol, `${s.name} dq`);
      assertClose(got.dk, grads.dk, tol, `${s.name} dk`);
      assertClose(got.dv, grads.dv, tol, `${s.name} dv`);
    });
  }

  it('probabilities below e^-80 are zero: no subnormal outputs or gradients, still the reference', async () => {
    // Key 0 scores 0 for every query, key j ≥ 1 scores −(80 + j): weights e^−81..e^−87 are normal floats at the
    // bottom of the range, and times the values' 0.01 in dimension 0 (key 0 has 0 there) or a small dOut they
    // would be subnormal. Sums of such products are all out[·, 0] and dv hold.
    const ctx = kernelContext(await testGpu());
    const s = { batch: 1, heads: 1, queryLen: 5, keyLen: 8, headDim: 8, scale: 1 };
    const x = randomInputs(31, s);
    for (let i = 0; i < s.queryLen; i++) x.q.fill(0, i * 8, i * 8 + 8).set([10], i * 8);
    for (let j = 0; j < s.keyLen; j++) {
      x.k.fill(0, j * 8, j * 8 + 8).set([j === 0 ? 0 : -(80 + j) / 10], j * 8);
      x.v[j * 8] = j === 0 ? 0 : 0.01;
    }
    x.dOut.forEach((d, i) => (x.dOut[i] = d * 1e-3));
    const got = await runGpu(ctx, s, x);
    for (const name of ['out', 'dq', 'dk', 'dv'] as const) {
      const sub = subnormalIndices(got[name]).map((i) => `[${i}] ${got[name][i]}`);
      expect(sub, `${name}: subnormal results`).toEqual([]);
    }
    const ref = attentionRef(f64(x.q), f64(x.k), f64(x.v), s);
    const grads = attentionBackwardRef(f64(x.q), f64(x.k), f64(x.v), f64(x.dOut), s);
    assertClose(got.out, ref.out, tol, 'out');
    assertClose(got.dq, grads.dq, tol, 'dq');
    assertClose(got.dk, grads.dk, tol, 'dk');
    assertClose(got.dv, grads.dv, tol, 'dv');
  });

  it('backward with accumulate adds into existing gradients', async () => {
    const ctx = kernelContext(await testGpu());
    const s = { batch: 1, heads: 2, queryLen: 9, keyLen: 13, headDim: 40 };
    const { qn, kn, rows } = sizes(s);
    const x = randomInputs(7, s);
    const rand = rng(8);
    const prior = { dq: randn(rand, qn), dk: randn(rand, kn), dv: randn(rand, kn) };
    const buf = (name: string, data: Float32Array): GPUBuffer => {
      const b = canaryBuffer(ctx, `attention.test.${name}`, data.length);
      ctx.device.queue.writeBuffer(b, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
      return b;
    };
    const [q, k, v, dOut] = [x.q, x.k, x.v, x.dOut].map((a, j) => upload(ctx, `attention.test.in${j}`, a));
    const out = canaryBuffer(ctx, 'attention.test.out', qn);
    const lse = canaryBuffer(ctx, 'attention.test.lse', rows);
    const delta = canaryBuffer(ctx, 'attention.test.delta', rows);
    const [dq, dk, dv] = [buf('dq', prior.dq), buf('dk', prior.dk), buf('dv', prior.dv)];
    await attentionForward(ctx, { ...s, q, k, v, out, lse });
    await attentionBackward(ctx, { ...s, q, k, v, out, lse, dOut, delta, dq, dk, dv, accumulate: true });
    const grads = attentionBackwardRef(f64(x.q), f64(x.k), f64(x.v), f64(x.dOut), s);
    const plus = (a: Float32Array, b: Float64Array): Float64Array => b.map((y, j) => y + a[j]);
    assertClose(await readCanaried(ctx, dq, qn), plus(prior.dq, grads.dq), tol, 'accumulated dq');
    assertClose(await readCanaried(ctx, dk, kn), plus(prior.dk, grads.dk), tol, 'accumulated dk');
    assertClose(await readCanaried(ctx, dv, kn), plus(prior.dv, grads.dv), tol, 'accumulated dv');
  });

  it('rejects shapes and buffers it cannot serve', async () => {
    const ctx = kernelContext(await testGpu());
    const small = upload(ctx, 'attention.test.small', new Float32Array(4));
    const s = { batch: 1, heads: 1, queryLen: 4, keyLen: 4, headDim: 8 };
    const bufs = { q: small, k: small, v: small, out: small, lse: small };
    await expect(attentionForward(ctx, { ...s, ...bufs })).rejects.toThrow(/q holds 16 bytes/);
    await expect(attentionForward(ctx, { ...s, headDim: 300, ...bufs })).rejects.toThrow(
      /head dimension 300/,
    );
    await expect(attentionForward(ctx, { ...s, keyLen: 0, ...bufs })).rejects.toThrow(/bad shape/);
  });

  it('has a tiling for every head dimension up to the maximum', () => {
    for (let d = 1; d <= ATTENTION_MAX_HEAD_DIM; d++) expect(() => attentionTiling(d)).not.toThrow();
    expect(attentionTiling(64).forward.lines).toBe(16);
    expect(tiledAttentionTiles('forward', 64)).toMatchObject({ lines: 32, step: 16 });
    expect(tiledAttentionTiles('forward', 80)).toMatchObject({ lines: 32, step: 8 });
    expect(tiledAttentionTiles('dq', 64)).toMatchObject({ lines: 16, step: 8 });
    expect(tiledAttentionTiles('dkdv', 64)).toMatchObject({ lines: 16, step: 8 });
    for (let d = 4; d <= ATTENTION_MAX_HEAD_DIM; d += 4) {
      expect(tiledAttentionTiles('forward', d)).toBeDefined();
      // The backward kernels hold four d-wide tiles: dQ tiled up to d = 124, dK/dV up to 120, row-wise above.
      expect(tiledAttentionTiles('dq', d) !== undefined).toBe(d <= 124);
      expect(tiledAttentionTiles('dkdv', d) !== undefined).toBe(d <= 120);
    }
    expect(tiledAttentionTiles('forward', 6)).toBeUndefined();
    expect(() => attentionTiling(ATTENTION_MAX_HEAD_DIM + 8)).toThrow(/head dimension/);
  });
});

describe('attention f16 storage (f32 accumulation)', () => {
  it('matches the reference on f16-rounded inputs', async (test) => {
    const gpu = await testGpu();
    if (!gpu.features.shaderF16) test.skip();
    const ctx = kernelContext(gpu);
    const s = { batch: 1, heads: 2, queryLen: 17, keyLen: 77, headDim: 40, dtype: 'f16' as const };
    const { qn, kn, rows } = sizes(s);
    const x = randomInputs(5, s);
    const h = { q: toF16(x.q), k: toF16(x.k), v: toF16(x.v), dOut: toF16(x.dOut) };
    const [q, k, v, dOut] = [h.q, h.k, h.v, h.dOut].map((a) => uploadF16(ctx, a));
    const out = canaryBuffer(ctx, 'attention.test.out16', Math.ceil(qn / 2));
    const lse = canaryBuffer(ctx, 'attention.test.lse', rows);
    const delta = canaryBuffer(ctx, 'attention.test.delta', rows);
    const dq = canaryBuffer(ctx, 'attention.test.dq16', Math.ceil(qn / 2));
    const dk = canaryBuffer(ctx, 'attention.test.dk16', Math.ceil(kn / 2));
    const dv = canaryBuffer(ctx, 'attention.test.dv16', Math.ceil(kn / 2));
    await attentionForward(ctx, { ...s, q, k, v, out, lse });
    await attentionBackward(ctx, { ...s, q, k, v, out, lse, dOut, delta, dq, dk, dv });
    const hx = { q: fromF16(h.q), k: fromF16(h.k), v: fromF16(h.v), dOut: fromF16(h.dOut) };
    const ref = attentionRef(hx.q, hx.k, hx.v, s);
    const grads = attentionBackwardRef(hx.q, hx.k, hx.v, hx.dOut, s);
    const tol16 = tolerance('attention', 'f16');
    assertClose(await readF16Canaried(ctx, out, qn), ref.out, tol16, 'f16 out');
    assertClose(await readCanaried(ctx, lse, rows), ref.lse, tol16, 'f16 lse');
    assertClose(await readF16Canaried(ctx, dq, qn), grads.dq, tol16, 'f16 dq');
    assertClose(await readF16Canaried(ctx, dk, kn), grads.dk, tol16, 'f16 dk');
    assertClose(await readF16Canaried(ctx, dv, kn), grads.dv, tol16, 'f16 dv');
  });
});

describe('head split/merge', () => {
  const shapes = [
    { batch: 1, tokens: 5, heads: 3, headDim: 8 },
    { batch: 2, tokens: 77, heads: 5, headDim: 40 },
  ];
  for (const s of shapes) {
    it(`split, merge and accumulate, B=${s.batch} N=${s.tokens} H=${s.heads} d=${s.headDim}`, async () => {
      const ctx = kernelContext(await testGpu());
      const n = s.batch * s.tokens * s.heads * s.headDim;
      const rand = rng(n);
      const x = randn(rand, n);
      const input = upload(ctx, 'attention.test.heads.in', x);
      const split = canaryBuffer(ctx, 'attention.test.heads.split', n);
      const merged = canaryBuffer(ctx, 'attention.test.heads.merged', n);
      await splitHeads(ctx, { ...s, input, output: split });
      await mergeHeads(ctx, { ...s, input: split, output: merged });
      const exact = { atol: 0, rtol: 0 };
      const want = splitHeadsRef(x, s);
      assertClose(await readCanaried(ctx, split, n), want, exact, 'splitHeads');
      assertClose(await readCanaried(ctx, merged, n), x, exact, 'mergeHeads ∘ splitHeads');
      assertClose(mergeHeadsRef(want, s), x, exact, 'reference round trip');
      // As a backward: merge accumulates the head-major gradient into an existing [B, N, H·d] one.
      await mergeHeads(ctx, { ...s, input: split, output: merged, accumulate: true });
      assertClose(
        await readCanaried(ctx, merged, n),
        x.map((y) => 2 * y),
        exact,
        'mergeHeads accumulate',
      );
    });
  }
});

/**
 * Runs forward + backward at each N (self-attention, d = 64, B = H = 1), counting every buffer created
 * (inputs, outputs, scratch, uniforms), and checks the count against attentionScratchBytes and that it
 * grows linearly: an Nq×Nk scratch would make bytes(4N)/bytes(N) ≈ 16, not ≈ 4.
 */
async function memoryRun(ns: [number, number]): Promise<void> {
  const ctx = kernelContext(await testGpu());
  const bytes: number[] = [];
  for (const n of ns) {
    const s = { batch: 1, heads: 1, queryLen: n, keyLen: n, headDim: 64 };
    const { qn, kn } = sizes(s);
    const x = randomInputs(n, s);
    let allocated = 0;
    const create = ctx.device.createBuffer.bind(ctx.device);
    ctx.device.createBuffer = (desc: GPUBufferDescriptor): GPUBuffer => {
      if (!(desc.usage & GPUBufferUsage.MAP_READ)) allocated += desc.size;
      return create(desc);
    };
    let got: GpuResults;
    const t0 = performance.now();
    try {
      got = await runGpu(ctx, s, x);
    } finally {
      ctx.device.createBuffer = create;
    }
    const seconds = (performance.now() - t0) / 1000;
    bytes.push(allocated);
    // Inputs q, k, v, dOut and outputs out, dq, dk, dv; the six canaried outputs carry a canary tail.
    const tensors = (4 * qn + 4 * kn) * 4 + 6 * CANARY_PAD * 4;
    const scratch = attentionScratchBytes(1, 1, n, n, 64);
    console.log(
      `[attention memory] N=${n}: ${allocated} bytes, scratch ${scratch}, fwd+bwd ${seconds.toFixed(1)} s`,
    );
    expect(allocated).toBe(tensors + scratch);
    checkSampledRows(x, s, got, n <= 1024 ? n : 6);
  }
  expect(bytes[1] / bytes[0]).toBeLessThanOrEqual(4.5);
}

describe('attention memory (no N² scratch)', () => {
  it('forward + backward at N = 128 and 512 allocate bytes linear in N', () => memoryRun([128, 512]));
  // N = 4096 takes minutes on the software adapter (≈ 50 s of CPU), so it runs as a benchmark only.
  it.runIf(process.env.LORA2_BENCH)('benchmark: N = 1024 and 4096 allocate bytes linear in N', () =>
    memoryRun([1024, 4096]),
  );
});

/** Full reference check at small N; at large N, exact per-row checks of out, lse and dq on a few rows. */
function checkSampledRows(x: Inputs, s: AttentionRefShape, got: GpuResults, sampleRows: number): void {
  const tol = tolerance('attention');
  const d = s.headDim;
  const k = f64(x.k);
  const v = f64(x.v);
  const rows = [...Array(sampleRows).keys()].map((i) => Math.floor((i * s.queryLen) / sampleRows));
  const q1 = new Float64Array(rows.length * d);
  const g1 = new Float64Array(rows.length * d);
  rows.forEach((r, i) => {
    q1.set(x.q.subarray(r * d, (r + 1) * d), i * d);
    g1.set(x.dOut.subarray(r * d, (r + 1) * d), i * d);
  });
  // Rows of q are independent: attention of the sampled rows alone gives their out, lse and dq exactly.
  const sub = { ...s, queryLen: rows.length };
  const ref = attentionRef(q1, k, v, sub);
  const grads = attentionBackwardRef(q1, k, v, g1, sub);
  const pick = (a: Float32Array, width: number): Float32Array => {
    const o = new Float32Array(rows.length * width);
    rows.forEach((r, i) => o.set(a.subarray(r * width, (r + 1) * width), i * width));
    return o;
  };
  assertClose(pick(got.out, d), ref.out, tol, 'sampled out');
  assertClose(pick(got.lse, 1), ref.lse, tol, 'sampled lse');
  assertClose(pick(got.dq, d), grads.dq, tol, 'sampled dq');
  if (sampleRows === s.queryLen) {
    assertClose(got.dk, grads.dk, tol, 'dk');
    assertClose(got.dv, grads.dv, tol, 'dv');
  } else {
    for (const a of [got.dk, got.dv]) expect(a.every(Number.isFinite)).toBe(true);
  }
}

// f16 helpers: Node 20 has no Float16Array, so halves travel as Uint16Array bit patterns.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Round-to-nearest-even f32 → f16 bits (normal range; the test data never leaves it). */
function toF16(a: Float32Array): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) {
    f32Scratch[0] = a[i];
    const bits = u32Scratch[0];
    const sign = (bits >>> 16) & 0x8000;
    const exp = ((bits >>> 23) & 0xff) - 127 + 15;
    let mant = bits & 0x7fffff;
    if (exp <= 0) {
      out[i] = sign; // flushes the (vanishingly rare) subnormal halves to zero
      continue;
    }
    const round = mant & 0x1fff;
    mant >>>= 13;
    let h = (exp << 10) | mant;
    if (round > 0x1000 || (round === 0x1000 && (mant & 1) === 1)) h++;
    out[i] = sign | h;
  }
  return out;
}

function fromF16(h: Uint16Array): Float64Array {
  const out = new Float64Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const sign = h[i] & 0x8000 ? -1 : 1;
    const exp = (h[i] >>> 10) & 0x1f;
    const mant = h[i] & 0x3ff;
    if (exp === 0x1f) out[i] = mant ? NaN : sign * Infinity;
    else if (exp === 0) out[i] = sign * mant * 2 ** -24;
    else out[i] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}

function uploadF16(ctx: KernelContext, h: Uint16Array): GPUBuffer {
  const padded = new Uint16Array(Math.ceil(h.length / 2) * 2);
  padded.set(h);
  return upload(ctx, 'attention.test.f16', new Uint32Array(padded.buffer));
}

/** n halves from a canary buffer of ⌈n/2⌉ words; an odd n's spare half must keep the canary's upper half. */
async function readF16Canaried(ctx: KernelContext, buf: GPUBuffer, n: number): Promise<Float64Array> {
  const words = await readCanaried(ctx, buf, Math.ceil(n / 2));
  const halves = new Uint16Array(words.buffer);
  if (n % 2 === 1 && halves[n] !== CANARY_BITS >>> 16)
    throw new Error(`${buf.label}: wrote past ${n} halves`);
  return fromF16(halves.subarray(0, n));
}
