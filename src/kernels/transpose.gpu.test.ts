// Batched transpose against the reference on odd shapes, with canaries; accumulate adds.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, upload } from './common';
import { transpose } from './transpose';
import { transposeRef } from './transpose.ref';
import { assertClose, canaryBuffer, canaryBufferWith, randn, readCanaried, rng, tolerance } from './testing';

describe('transpose', () => {
  for (const [batch, rows, cols] of [
    [1, 1, 1],
    [2, 17, 33],
    [3, 64, 9],
    [1, 129, 70],
  ]) {
    it(`[${batch}, ${rows}, ${cols}]`, async () => {
      const ctx = kernelContext(await testGpu());
      const n = batch * rows * cols;
      const x = randn(rng(rows * 31 + cols), n);
      const y = canaryBuffer(ctx, 'transpose.y', n);
      await transpose(ctx, { x: upload(ctx, 'x', x), y, batch, rows, cols });
      assertClose(
        await readCanaried(ctx, y, n),
        transposeRef(x, batch, rows, cols),
        tolerance('elementwise'),
        'transpose',
      );
      // Transposing back restores x.
      const back = canaryBuffer(ctx, 'transpose.back', n);
      await transpose(ctx, { x: y, y: back, batch, rows: cols, cols: rows });
      expect(Array.from(await readCanaried(ctx, back, n))).toEqual(Array.from(x));
    });
  }

  it('accumulates', async () => {
    const ctx = kernelContext(await testGpu());
    const x = randn(rng(5), 2 * 5 * 7);
    const init = randn(rng(6), 2 * 5 * 7);
    const y = canaryBufferWith(ctx, 'transpose.acc', init);
    await transpose(ctx, { x: upload(ctx, 'x', x), y, batch: 2, rows: 5, cols: 7, accumulate: true });
    const want = transposeRef(x, 2, 5, 7).map((v, i) => v + init[i]);
    assertClose(await readCanaried(ctx, y, x.length), want, tolerance('elementwise'), 'transpose accumulate');
  });
});
