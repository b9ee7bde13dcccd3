// Elementwise kernels against the float64 reference: every unary op on odd sizes (big ones with dispatches
// folded into y/z), broadcasting binary ops forward/backward, GEGLU, fill and accumulation.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, upload, type KernelContext } from './common';
import {
  addInPlace,
  binary,
  binaryBackward,
  BINARY_OPS,
  fill,
  geglu,
  gegluBackward,
  unary,
  unaryBackward,
  UNARY_OPS,
  type BinaryOp,
  type UnaryOp,
} from './elementwise';
import {
  binaryBackwardRef,
  binaryRef,
  broadcastShapeRef,
  erf,
  erfc,
  gegluBackwardRef,
  gegluRef,
  unaryBackwardRef,
  unaryRef,
} from './elementwise.ref';
import {
  assertClose,
  canaryBuffer,
  canaryBufferWith,
  finiteDifference,
  foldingContext,
  randn,
  readCanaried,
  rng,
  subnormalIndices,
  tolerance,
  type Tolerance,
} from './testing';

const UNARY = Object.keys(UNARY_OPS) as UnaryOp[];
const BINARY = Object.keys(BINARY_OPS) as BinaryOp[];
const FD_TOL: Tolerance = { atol: 1e-7, rtol: 1e-6 };
const ALPHA = -1.75;

async function ctx(): Promise<KernelContext> {
  return kernelContext(await testGpu());
}

/** A canaried output buffer holding `init` (for accumulate) or poison. */
function output(k: KernelContext, label: string, n: number, init?: Float32Array): GPUBuffer {
  return init ? canaryBufferWith(k, label, init) : canaryBuffer(k, label, n);
}

/** Big cases run with dispatches folded into y and z, so the kernels' index recovery is checked too. */
function maybeFolded(k: KernelContext, n: number): KernelContext {
  return n > 10000 ? foldingContext(k) : k;
}

function sum(a: Float64Array, w: Float64Array): number {
  return a.reduce((s, v, i) => s + v * w[i], 0);
}

/** Normal samples with the tails and the origin written in, so activations are checked where they bend. */
function activationInputs(seed: number, n: number, op: UnaryOp): Float32Array {
  const x = randn(rng(seed), n, 3);
  const special = op === 'exp' ? [0, -1e-4, 9, -9] : [0, -1e-4, 1e-4, -6, 6, -15, 15, 40, -40, -90];
  special.slice(0, n).forEach((v, i) => (x[i] = v));
  return x;
}

describe('elementwise reference', () => {
  it('erf matches known values', () => {
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(-1.7)).toBeCloseTo(-0.9837904585907746, 14);
    expect(erfc(3) / 2.209049699858544e-5).toBeCloseTo(1, 12);
    expect(erfc(-2.6)).toBeCloseTo(1.9997639655834707, 14);
    expect(erfc(6) / 2.1519736712498913e-17).toBeCloseTo(1, 12);
  });

  it.each(UNARY)('%s backward matches finite differences', (op) => {
    const r = rng(11);
    const x = Float64Array.from(randn(r, 40, 2));
    const w = Float64Array.from(randn(r, 40));
    const fd = finiteDifference((v) => sum(unaryRef(op, v, ALPHA), w), x);
    assertClose(unaryBackwardRef(op, x, w, ALPHA), fd, FD_TOL, `${op} backward vs FD`);
  });

  it.each(BINARY)('%s backward (broadcast) matches finite differences', (op) => {
    const r = rng(12);
    const aShape = [2, 1, 3];
    const bShape = [4, 1];
    const a = Float64Array.from(randn(r, 6));
    const b = Float64Array.from(randn(r, 4));
    const w = Float64Array.from(randn(r, 24));
    const { da, db } = binaryBackwardRef(op, a, aShape, b, bShape, w);
    const fdA = finiteDifference((v) => sum(binaryRef(op, v, aShape, b, bShape), w), a);
    const fdB = finiteDifference((v) => sum(binaryRef(op, a, aShape, v, bShape), w), b);
    assertClose(da, fdA, FD_TOL, `${op} da vs FD`);
    assertClose(db, fdB, FD_TOL, `${op} db vs FD`);
  });

  it('geglu backward matches finite differences', () => {
    const r = rng(13);
    const x = Float64Array.from(randn(r, 3 * 2 * 5, 2));
    const w = Float64Array.from(randn(r, 3 * 5));
    const fd = finiteDifference((v) => sum(gegluRef(v, 3, 5), w), x);
    assertClose(gegluBackwardRef(x, w, 3, 5), fd, FD_TOL, 'geglu backward vs FD');
  });
});

describe('elementwise kernels (GPU)', () => {
  const tol = tolerance('elementwise');

  it.each(UNARY)('%s forward and backward on sizes 1, 7, 257, 65537', async (op) => {
    const k = await ctx();
    for (const n of [1, 7, 257, 65537]) {
      const kk = maybeFolded(k, n);
      const x = activationInputs(n, n, op);
      const dy = randn(rng(n + 1), n);
      const init = randn(rng(n + 2), n);
      const xb = upload(k, 'x', x);
      const y = output(k, `${op}.y`, n);
      const dx = output(k, `${op}.dx`, n, init);
      await unary(kk, { op, x: xb, y, n, alpha: ALPHA });
      await unaryBackward(kk, { op, x: xb, dy: upload(k, 'dy', dy), dx, n, alpha: ALPHA, accumulate: true });
      const x64 = Float64Array.from(x);
      assertClose(await readCanaried(k, y, n), unaryRef(op, x64, ALPHA), tol, `${op} forward n=${n}`);
      const want = unaryBackwardRef(op, x64, Float64Array.from(dy), ALPHA).map((v, i) => v + init[i]);
      assertClose(await readCanaried(k, dx, n), want, tol, `${op} backward (accumulate) n=${n}`);
    }
  });

  it('activations flush exp underflow to zero: no subnormal outputs or gradients, still the reference', async () => {
    // exp(−|x|) for |x| in 81..87 is a normal float near the bottom of the range (e^−87 ≈ 1.6e−38), and so are the
    // GELU tails at x ≈ −13: times a small upstream gradient they become subnormal unless the exp is flushed.
    const k = await ctx();
    const x = Float32Array.from([
      -1000, -100, -87, -86, -85, -83, -81, -40, -13.5, -13, -12.5, 13, 40, 85, 100, 1000,
    ]);
    const n = x.length;
    const dy = new Float32Array(n).fill(1e-4);
    for (const op of ['silu', 'gelu', 'gelu_tanh', 'sigmoid', 'softplus'] as const) {
      const xb = upload(k, 'x', x);
      const y = output(k, `${op}.y`, n);
      const dx = output(k, `${op}.dx`, n);
      await unary(k, { op, x: xb, y, n, alpha: ALPHA });
      await unaryBackward(k, { op, x: xb, dy: upload(k, 'dy', dy), dx, n, alpha: ALPHA });
      const [gotY, gotDx] = [await readCanaried(k, y, n), await readCanaried(k, dx, n)];
      for (const [what, got] of [
        ['forward', gotY],
        ['backward', gotDx],
      ] as const) {
        const sub = subnormalIndices(got).map((i) => `x=${x[i]}: ${got[i]}`);
        expect(sub, `${op} ${what}: subnormal results`).toEqual([]);
      }
      const x64 = Float64Array.from(x);
      assertClose(gotY, unaryRef(op, x64, ALPHA), tol, `${op} forward at extreme inputs`);
      assertClose(
        gotDx,
        unaryBackwardRef(op, x64, Float64Array.from(dy), ALPHA),
        tol,
        `${op} backward at extremes`,
      );
    }
  });

  const SHAPES: [number[], number[]][] = [
    [[7], [7]],
    [
      [2, 3, 5, 7],
      [3, 1, 1],
    ],
    [[1], [257]],
    [
      [4, 1, 6],
      [3, 1],
    ],
    [
      [2, 5, 1, 3],
      [5, 4, 1],
    ],
    [
      [2, 33, 17, 9],
      [1, 33, 1, 1],
    ],
  ];

  it.each(BINARY)('%s with broadcasting, forward and backward', async (op) => {
    const k = await ctx();
    const r = rng(21);
    for (const [aShape, bShape] of SHAPES) {
      const shape = broadcastShapeRef(aShape, bShape);
      const [na, nb, n] = [aShape, bShape, shape].map((s) => s.reduce((p, q) => p * q, 1));
      const [a, b, dy] = [na, nb, n].map((m) => randn(r, m));
      const initA = randn(r, na);
      const [ab, bb, dyb] = [a, b, dy].map((v, i) => upload(k, ['a', 'b', 'dy'][i], v));
      const out = output(k, `${op}.out`, n);
      const da = output(k, `${op}.da`, na, initA);
      const db = output(k, `${op}.db`, nb);
      const kk = maybeFolded(k, n);
      await binary(kk, { op, a: ab, b: bb, out, aShape, bShape });
      await binaryBackward(kk, { op, dy: dyb, a: ab, b: bb, da, aShape, bShape, accumulate: true });
      await binaryBackward(kk, { op, dy: dyb, a: ab, b: bb, db, aShape, bShape });
      const [a64, b64, dy64] = [a, b, dy].map((v) => Float64Array.from(v));
      const what = `${op} [${aShape}]⊕[${bShape}]`;
      assertClose(await readCanaried(k, out, n), binaryRef(op, a64, aShape, b64, bShape), tol, what);
      const want = binaryBackwardRef(op, a64, aShape, b64, bShape, dy64);
      const red = tolerance('reduction');
      const wantA = want.da.map((v, i) => v + initA[i]);
      assertClose(await readCanaried(k, da, na), wantA, red, `${what} da (accumulate)`);
      assertClose(await readCanaried(k, db, nb), want.db, red, `${what} db`);
    }
  });

  it('binary backward refuses a mul gradient without the other operand', async () => {
    const k = await ctx();
    const dy = upload(k, 'dy', new Float32Array(4));
    const da = output(k, 'da', 4);
    await expect(binaryBackward(k, { op: 'mul', dy, da, aShape: [4], bShape: [4] })).rejects.toThrow(
      /needs operand b/,
    );
  });

  it('geglu forward and backward on odd shapes', async () => {
    const k = await ctx();
    for (const [rows, d] of [
      [1, 1],
      [7, 33],
      [65, 257],
    ]) {
      const r = rng(rows * 1000 + d);
      const x = randn(r, rows * 2 * d, 2);
      const dy = randn(r, rows * d);
      const xb = upload(k, 'x', x);
      const y = output(k, 'geglu.y', rows * d);
      const dx = output(k, 'geglu.dx', rows * 2 * d);
      const kk = maybeFolded(k, rows * d);
      await geglu(kk, { x: xb, y, rows, d });
      await gegluBackward(kk, { x: xb, dy: upload(k, 'dy', dy), dx, rows, d });
      const x64 = Float64Array.from(x);
      assertClose(await readCanaried(k, y, rows * d), gegluRef(x64, rows, d), tol, `geglu ${rows}x${d}`);
      const want = gegluBackwardRef(x64, Float64Array.from(dy), rows, d);
      assertClose(await readCanaried(k, dx, rows * 2 * d), want, tol, `geglu backward ${rows}x${d}`);
    }
  });

  it('fill and addInPlace', async () => {
    const k = await ctx();
    for (const n of [1, 257, 65537]) {
      const r = rng(n);
      const [init, src] = [randn(r, n), randn(r, n)];
      const dst = output(k, 'accum.dst', n, init);
      await addInPlace(maybeFolded(k, n), { dst, src: upload(k, 'src', src), n, alpha: 0.25 });
      const want = Float64Array.from(init, (v, i) => v + 0.25 * src[i]);
      assertClose(await readCanaried(k, dst, n), want, tol, `addInPlace n=${n}`);
      await fill(k, { dst, n, value: -3.5 });
      expect(Array.from(await readCanaried(k, dst, n)).every((v) => v === -3.5)).toBe(true);
    }
  });
});
