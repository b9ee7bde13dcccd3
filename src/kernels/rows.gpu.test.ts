// Row gather/scatter and block copies against the float64 reference: repeated and out-of-range indices,
// scatter-add summing repeats, gather's backward, and the LoRA capacity-growth copies (rows and columns).
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, upload, type KernelContext } from './common';
import { copyBlock, gatherRows, gatherRowsBackward, scatterRows, type RowCol } from './rows';
import { copyBlockRef, gatherRowsRef, scatterRowsRef } from './rows.ref';
import {
  assertClose,
  canaryBuffer,
  canaryBufferWith,
  finiteDifference,
  foldingContext,
  randInt,
  randn,
  readCanaried,
  rng,
  tolerance,
} from './testing';

const EXACT = { atol: 0, rtol: 0 };

async function context(n: number): Promise<KernelContext> {
  const k = kernelContext(await testGpu());
  return n > 10000 ? foldingContext(k) : k;
}

/** `count` indices below `bound`, the last one past it (out of range) when `outOfRange`. */
function indices(r: () => number, count: number, bound: number, outOfRange: boolean): Uint32Array {
  const idx = Uint32Array.from({ length: count }, () => randInt(r, 0, bound - 1));
  if (outOfRange) idx[count - 1] = bound + 3;
  return idx;
}

describe('rows reference', () => {
  it('gather backward (scatter-add) matches finite differences', () => {
    const r = rng(2);
    const [srcRows, cols] = [4, 3];
    const idx = Uint32Array.from([2, 0, 2, 3, 2]);
    const src = Float64Array.from(randn(r, srcRows * cols));
    const w = Float64Array.from(randn(r, idx.length * cols));
    const fd = finiteDifference((v) => gatherRowsRef(v, idx, cols).reduce((s, y, i) => s + y * w[i], 0), src);
    const got = scatterRowsRef(w, idx, new Float64Array(srcRows * cols), cols, true);
    assertClose(got, fd, { atol: 1e-8, rtol: 1e-6 }, 'gather backward vs FD');
  });
});

describe('rows kernels (GPU)', () => {
  it.each([
    [20, 1, 13],
    [20, 7, 13],
    [300, 257, 40],
  ])('gather %i rows of %i from %i rows, forward and backward', async (rows, cols, srcRows) => {
    const k = await context(rows * cols);
    const r = rng(rows * cols);
    const idx = indices(r, rows, srcRows, true);
    const src = randn(r, srcRows * cols);
    const dst = canaryBuffer(k, 'gather.dst', rows * cols);
    const ib = upload(k, 'index', idx);
    await gatherRows(k, { src: upload(k, 'src', src), index: ib, dst, rows, cols, srcRows });
    const want = gatherRowsRef(Float64Array.from(src), idx, cols);
    assertClose(await readCanaried(k, dst, rows * cols), want, EXACT, 'gather');

    const dDst = randn(r, rows * cols);
    const zeroGrad = Float64Array.from({ length: srcRows * cols }, () => 0);
    const wantGrad = scatterRowsRef(Float64Array.from(dDst), idx, zeroGrad, cols, true);
    const init = randn(r, srcRows * cols);
    for (const accumulate of [false, true]) {
      const dSrc = accumulate
        ? canaryBufferWith(k, 'gather.dSrc', init)
        : canaryBuffer(k, 'gather.dSrc', srcRows * cols);
      await gatherRowsBackward(k, {
        dDst: upload(k, 'dDst', dDst),
        index: ib,
        dSrc,
        rows,
        cols,
        srcRows,
        accumulate,
      });
      const w = accumulate ? wantGrad.map((v, i) => v + init[i]) : wantGrad;
      assertClose(
        await readCanaried(k, dSrc, srcRows * cols),
        w,
        tolerance('elementwise'),
        `gather backward acc=${accumulate}`,
      );
    }
  });

  it.each([
    [7, 1, 9],
    [50, 7, 9],
    [300, 257, 40],
  ])(
    'scatter %i rows of %i into %i rows (set with unique indices, add with repeats)',
    async (rows, cols, dstRows) => {
      const k = await context(rows * cols);
      const r = rng(rows + cols);
      const src = randn(r, rows * cols);
      const init = randn(r, dstRows * cols);
      const src64 = Float64Array.from(src);
      const init64 = Float64Array.from(init);
      // Unique indices for the plain scatter (a repeat would keep an unspecified one of its rows).
      const unique = Uint32Array.from({ length: Math.min(rows, dstRows) }, (_, i) => (i * 7 + 3) % dstRows);
      const set = canaryBufferWith(k, 'scatter.dst', init);
      const srcB = upload(k, 'src', src);
      await scatterRows(k, {
        src: srcB,
        index: upload(k, 'index', unique),
        dst: set,
        rows: unique.length,
        cols,
        dstRows,
      });
      const wantSet = scatterRowsRef(src64.subarray(0, unique.length * cols), unique, init64, cols, false);
      assertClose(await readCanaried(k, set, dstRows * cols), wantSet, EXACT, 'scatter');

      const idx = indices(r, rows, dstRows, true);
      const sum = canaryBufferWith(k, 'scatterAdd.dst', init);
      await scatterRows(k, {
        src: srcB,
        index: upload(k, 'index', idx),
        dst: sum,
        rows,
        cols,
        dstRows,
        add: true,
      });
      const wantAdd = scatterRowsRef(src64, idx, init64, cols, true);
      assertClose(
        await readCanaried(k, sum, dstRows * cols),
        wantAdd,
        tolerance('elementwise'),
        'scatter-add',
      );
    },
  );

  const BLOCKS: {
    what: string;
    src: RowCol;
    srcAt?: RowCol;
    dst: RowCol;
    dstAt?: RowCol;
    block: RowCol;
    acc: boolean;
  }[] = [
    { what: 'A gains rows', src: [5, 33], dst: [13, 33], block: [5, 33], acc: false },
    { what: 'B gains columns', src: [33, 5], dst: [33, 13], block: [33, 5], acc: false },
    { what: 'capacity shrinks', src: [13, 33], dst: [5, 33], block: [5, 33], acc: false },
    {
      what: 'offset block, accumulating',
      src: [9, 11],
      srcAt: [1, 2],
      dst: [17, 19],
      dstAt: [6, 7],
      block: [3, 4],
      acc: true,
    },
    { what: 'large block', src: [260, 300], dst: [301, 333], dstAt: [40, 33], block: [260, 300], acc: false },
  ];

  it.each(BLOCKS)('copyBlock: $what', async ({ src, srcAt, dst, dstAt, block, acc }) => {
    const k = await context(block[0] * block[1]);
    const r = rng(block[0] * 31 + block[1]);
    const s = randn(r, src[0] * src[1]);
    const init = randn(r, dst[0] * dst[1]);
    const out = canaryBufferWith(k, 'copyBlock.dst', init);
    await copyBlock(k, {
      src: upload(k, 'src', s),
      srcShape: src,
      srcAt,
      dst: out,
      dstShape: dst,
      dstAt,
      block,
      accumulate: acc,
    });
    const want = copyBlockRef(
      Float64Array.from(s),
      src[1],
      srcAt ?? [0, 0],
      Float64Array.from(init),
      dst[1],
      dstAt ?? [0, 0],
      block,
      acc,
    );
    assertClose(
      await readCanaried(k, out, dst[0] * dst[1]),
      want,
      acc ? tolerance('elementwise') : EXACT,
      'copyBlock',
    );
  });

  it('copyBlock refuses a block that leaves either matrix', async () => {
    const k = kernelContext(await testGpu());
    const b = canaryBuffer(k, 'copyBlock.any', 64);
    const args = {
      src: b,
      dst: canaryBuffer(k, 'copyBlock.other', 64),
      srcShape: [4, 4] as const,
      dstShape: [8, 8] as const,
    };
    await expect(copyBlock(k, { ...args, block: [4, 5] })).rejects.toThrow(/leaves the source/);
    await expect(copyBlock(k, { ...args, block: [4, 4], dstAt: [5, 0] })).rejects.toThrow(
      /leaves the destination/,
    );
  });
});
