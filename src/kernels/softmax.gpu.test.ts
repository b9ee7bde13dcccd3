// Softmax over the last axis against the float64 reference, on row lengths that are and are not powers of
// two, with inputs large enough that an unshifted exp would overflow.
import { describe, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, upload } from './common';
import { softmax, softmaxBackward } from './softmax';
import { softmaxBackwardRef, softmaxRef } from './softmax.ref';
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

describe('softmax reference', () => {
  it('backward matches finite differences', () => {
    const r = rng(3);
    const [rows, cols] = [3, 5];
    const x = Float64Array.from(randn(r, rows * cols, 2));
    const w = Float64Array.from(randn(r, rows * cols));
    const fd = finiteDifference((v) => softmaxRef(v, rows, cols).reduce((s, y, i) => s + y * w[i], 0), x);
    const got = softmaxBackwardRef(softmaxRef(x, rows, cols), w, rows, cols);
    assertClose(got, fd, { atol: 1e-8, rtol: 1e-6 }, 'softmax backward vs FD');
  });
});

describe('softmax kernels (GPU)', () => {
  const tol = tolerance('softmax');

  it.each([
    [1, 1],
    [7, 257],
    [300, 77],
    [3, 4099],
    [5000, 3],
  ])('rows=%i cols=%i forward and backward (accumulate)', async (rows, cols) => {
    const base = kernelContext(await testGpu());
    const k = rows * cols > 10000 ? foldingContext(base) : base;
    const n = rows * cols;
    const r = rng(n);
    const x = randn(r, n, 8);
    x[0] += 1000; // far outside exp's f32 range unless the row max is subtracted
    const dy = randn(r, n);
    const init = randn(r, n);
    const y = canaryBuffer(k, 'softmax.y', n);
    const dx = canaryBufferWith(k, 'softmax.dx', init);
    await softmax(k, { x: upload(k, 'x', x), y, rows, cols });
    const yGot = await readCanaried(k, y, n);
    const yRef = softmaxRef(Float64Array.from(x), rows, cols);
    assertClose(yGot, yRef, tol, `softmax ${rows}x${cols}`);
    // Backward from the GPU's own y, as autograd will call it.
    await softmaxBackward(k, { y, dy: upload(k, 'dy', dy), dx, rows, cols, accumulate: true });
    const want = softmaxBackwardRef(Float64Array.from(yGot), Float64Array.from(dy), rows, cols).map(
      (v, i) => v + init[i],
    );
    assertClose(await readCanaried(k, dx, n), want, tol, `softmax backward ${rows}x${cols}`);
  });
});
