// Reductions against the float64 reference: sums/means over the last axis, the leading axes, general
// keepdims shapes and everything (incl. lengths that need several grid-stride rounds), with their backwards.
import { describe, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, storageBuffer, upload, type KernelContext } from './common';
import {
  reduceAllScratchLength,
  sumAll,
  sumAllBackward,
  sumLastAxis,
  sumLastAxisBackward,
  sumLeadingAxes,
  sumLeadingAxesBackward,
  sumToShape,
  sumToShapeBackward,
} from './reduce';
import { sumToShapeBackwardRef, sumToShapeRef } from './reduce.ref';
import {
  assertClose,
  canaryBuffer,
  canaryBufferWith,
  finiteDifference,
  foldingContext,
  randn,
  readCanaried,
  rng,
  tolerance,
} from './testing';

const tol = tolerance('reduction');

function numel(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

describe('reduction reference', () => {
  it('sumToShape backward matches finite differences', () => {
    const r = rng(5);
    for (const [shape, outShape] of [
      [
        [3, 4],
        [3, 1],
      ],
      [
        [2, 3, 4],
        [1, 3, 1],
      ],
      [[5], [1]],
    ]) {
      const x = Float64Array.from(randn(r, numel(shape)));
      const w = Float64Array.from(randn(r, numel(outShape)));
      const f = (v: Float64Array) =>
        sumToShapeRef(v, shape, outShape, 0.7).reduce((s, y, i) => s + y * w[i], 0);
      const fd = finiteDifference(f, x);
      assertClose(
        sumToShapeBackwardRef(w, shape, outShape, 0.7),
        fd,
        { atol: 1e-8, rtol: 1e-7 },
        `[${shape}]→[${outShape}]`,
      );
    }
  });
});

describe('reduction kernels (GPU)', () => {
  async function ctx(): Promise<KernelContext> {
    return kernelContext(await testGpu());
  }

  /** Runs forward (accumulating onto random prior values) and backward of one keepdims reduction. */
  async function check(
    k: KernelContext,
    shape: number[],
    outShape: number[],
    scale: number,
    run: (x: GPUBuffer, out: GPUBuffer) => Promise<void>,
    runBackward: (dOut: GPUBuffer, dx: GPUBuffer) => Promise<void>,
    accumulate: boolean,
  ): Promise<void> {
    const r = rng(numel(shape) + outShape.length);
    const [n, m] = [numel(shape), numel(outShape)];
    const x = randn(r, n);
    const init = accumulate ? randn(r, m) : new Float32Array(m);
    const out = accumulate ? canaryBufferWith(k, 'out', init) : canaryBuffer(k, 'out', m);
    await run(upload(k, 'x', x), out);
    const want = sumToShapeRef(Float64Array.from(x), shape, outShape, scale).map((v, i) => v + init[i]);
    assertClose(await readCanaried(k, out, m), want, tol, `[${shape}]→[${outShape}] forward`);
    const dOut = randn(r, m);
    const dx = canaryBuffer(k, 'dx', n);
    await runBackward(upload(k, 'dOut', dOut), dx);
    const wantDx = sumToShapeBackwardRef(Float64Array.from(dOut), shape, outShape, scale);
    assertClose(await readCanaried(k, dx, n), wantDx, tol, `[${shape}]→[${outShape}] backward`);
  }

  it('sum and mean over the last axis', async () => {
    const k = await ctx();
    for (const [rows, cols] of [
      [1, 1],
      [7, 257],
      [3, 65537],
      [3000, 5],
      [700, 300],
    ]) {
      const kk = rows * cols > 10000 ? foldingContext(k) : k;
      for (const mean of [false, true]) {
        await check(
          k,
          [rows, cols],
          [rows, 1],
          mean ? 1 / cols : 1,
          (x, out) => sumLastAxis(kk, { x, out, rows, cols, mean, accumulate: mean }),
          (dOut, dx) => sumLastAxisBackward(kk, { dOut, dx, rows, cols, mean }),
          mean,
        );
      }
    }
  });

  it('sum over the leading axes (column sums)', async () => {
    const k = await ctx();
    for (const [rows, cols] of [
      [1, 1],
      [257, 7],
      [1000, 33],
      [65537, 3],
    ]) {
      const kk = rows * cols > 10000 ? foldingContext(k) : k;
      await check(
        k,
        [rows, cols],
        [1, cols],
        1,
        (x, out) => sumLeadingAxes(kk, { x, out, rows, cols, accumulate: true }),
        (dOut, dx) => sumLeadingAxesBackward(kk, { dOut, dx, rows, cols }),
        true,
      );
    }
  });

  it('sum to a general keepdims shape', async () => {
    const k = await ctx();
    for (const [shape, outShape] of [
      [
        [2, 5, 4, 3],
        [2, 1, 4, 1],
      ],
      [
        [3, 7, 11, 13],
        [1, 7, 1, 1],
      ],
      [
        [9, 1, 300],
        [1, 1, 300],
      ],
    ]) {
      await check(
        k,
        shape,
        outShape,
        0.5,
        (x, out) => sumToShape(k, { x, out, shape, outShape, scale: 0.5 }),
        (dOut, dx) => sumToShapeBackward(k, { dOut, dx, shape, outShape, scale: 0.5 }),
        false,
      );
    }
  });

  it('sum and mean over all elements, any length', async () => {
    const k = await ctx();
    // 2_100_001 needs the full 1024 partial sums and several grid-stride rounds per thread.
    for (const [n, mean] of [
      [1, false],
      [7, true],
      [257, false],
      [65537, true],
      [2_100_001, false],
    ] as const) {
      const scratch = storageBuffer(k, 'sumAll.scratch', reduceAllScratchLength(n) * 4);
      await check(
        k,
        [n],
        [1],
        mean ? 1 / n : 1,
        (x, out) => sumAll(k, { x, out, n, scratch, mean, accumulate: mean }),
        (dOut, dx) => sumAllBackward(n < 1e6 ? foldingContext(k) : k, { dOut, dx, n, mean }),
        mean,
      );
      scratch.destroy();
    }
  });
});
