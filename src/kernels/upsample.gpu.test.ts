// Nearest 2× upsampling against the float64 reference on odd plane counts and spatial sizes.
import { describe, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, upload } from './common';
import { upsampleNearest2x, upsampleNearest2xBackward } from './upsample';
import { upsampleNearest2xBackwardRef, upsampleNearest2xRef } from './upsample.ref';
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

describe('upsample reference', () => {
  it('backward matches finite differences', () => {
    const r = rng(8);
    const [planes, h, w] = [2, 3, 5];
    const x = Float64Array.from(randn(r, planes * h * w));
    const g = Float64Array.from(randn(r, planes * 4 * h * w));
    const fd = finiteDifference(
      (v) => upsampleNearest2xRef(v, planes, h, w).reduce((s, y, i) => s + y * g[i], 0),
      x,
    );
    assertClose(
      upsampleNearest2xBackwardRef(g, planes, h, w),
      fd,
      { atol: 1e-8, rtol: 1e-6 },
      'upsample backward vs FD',
    );
  });
});

describe('upsample kernels (GPU)', () => {
  it.each([
    [1, 1, 1],
    [3, 5, 7],
    [2 * 33, 9, 17],
    [40, 16, 16],
  ])('planes=%i h=%i w=%i forward and backward (accumulate)', async (planes, h, w) => {
    const n = planes * h * w;
    const base = kernelContext(await testGpu());
    const k = 4 * n > 10000 ? foldingContext(base) : base;
    const r = rng(n);
    const x = randn(r, n);
    const dy = randn(r, 4 * n);
    const init = randn(r, n);
    const y = canaryBuffer(k, 'upsample.y', 4 * n);
    const dx = canaryBufferWith(k, 'upsample.dx', init);
    await upsampleNearest2x(k, { x: upload(k, 'x', x), y, planes, h, w });
    await upsampleNearest2xBackward(k, { dy: upload(k, 'dy', dy), dx, planes, h, w, accumulate: true });
    const want = upsampleNearest2xRef(Float64Array.from(x), planes, h, w);
    assertClose(await readCanaried(k, y, 4 * n), want, { atol: 0, rtol: 0 }, 'upsample');
    const wantDx = upsampleNearest2xBackwardRef(Float64Array.from(dy), planes, h, w).map(
      (v, i) => v + init[i],
    );
    assertClose(await readCanaried(k, dx, n), wantDx, tolerance('elementwise'), 'upsample backward');
  });
});
