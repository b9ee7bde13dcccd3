// MSE loss against the float64 reference: the scalar forward on odd lengths (several grid-stride rounds at
// the largest) and both gradients scaled by an upstream gradient held in a GPU buffer.
import { describe, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, storageBuffer, upload } from './common';
import { mseLoss, mseLossBackward, mseLossScratchLength } from './loss';
import { mseLossBackwardRef, mseLossRef } from './loss.ref';
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

describe('mse loss reference', () => {
  it('gradients match finite differences', () => {
    const r = rng(1);
    const a = Float64Array.from(randn(r, 9));
    const b = Float64Array.from(randn(r, 9));
    const { da, db } = mseLossBackwardRef(a, b, 0.6);
    const fdA = finiteDifference((v) => 0.6 * mseLossRef(v, b), a);
    const fdB = finiteDifference((v) => 0.6 * mseLossRef(a, v), b);
    assertClose(da, fdA, { atol: 1e-8, rtol: 1e-6 }, 'da vs FD');
    assertClose(db, fdB, { atol: 1e-8, rtol: 1e-6 }, 'db vs FD');
  });
});

describe('mse loss kernels (GPU)', () => {
  it.each([1, 7, 257, 65537, 300001])('n=%i forward and backward', async (n) => {
    const base = kernelContext(await testGpu());
    const k = n > 10000 && n < 1e5 ? foldingContext(base) : base;
    const r = rng(n);
    const [a, b, init] = [randn(r, n), randn(r, n), randn(r, n)];
    const dLoss = 0.37;
    const [ab, bb] = [upload(k, 'a', a), upload(k, 'b', b)];
    const out = canaryBuffer(k, 'mse.out', 1);
    const scratch = storageBuffer(k, 'mse.scratch', mseLossScratchLength(n) * 4);
    await mseLoss(k, { a: ab, b: bb, out, n, scratch });
    const [a64, b64] = [Float64Array.from(a), Float64Array.from(b)];
    assertClose(await readCanaried(k, out, 1), [mseLossRef(a64, b64)], tolerance('reduction'), `mse n=${n}`);

    const da = canaryBufferWith(k, 'mse.da', init);
    const db = canaryBuffer(k, 'mse.db', n);
    const g = upload(k, 'dLoss', new Float32Array([dLoss]));
    await mseLossBackward(k, { a: ab, b: bb, dLoss: g, da, n, accumulate: true });
    await mseLossBackward(k, { a: ab, b: bb, dLoss: g, db, n });
    const want = mseLossBackwardRef(a64, b64, Math.fround(dLoss));
    const tol = tolerance('elementwise');
    assertClose(
      await readCanaried(k, da, n),
      want.da.map((v, i) => v + init[i]),
      tol,
      `mse da n=${n}`,
    );
    assertClose(await readCanaried(k, db, n), want.db, tol, `mse db n=${n}`);
  });
});
