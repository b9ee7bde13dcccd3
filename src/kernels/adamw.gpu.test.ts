// AdamW against the float64 reference over several steps with a changing learning rate, weight decay and
// a gradient scale; the schedule must not compile new pipelines.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, storageBuffer } from './common';
import { adamw, type AdamWHyper } from './adamw';
import { adamwRef } from './adamw.ref';
import {
  assertClose,
  canaryBufferWith,
  foldingContext,
  randn,
  readCanaried,
  rng,
  tolerance,
} from './testing';

describe('adamw kernel (GPU)', () => {
  it.each([1, 7, 257, 65537])('n=%i matches float64 over 5 steps with an lr schedule', async (n) => {
    const base = kernelContext(await testGpu());
    const k = n > 10000 ? foldingContext(base) : base;
    const r = rng(n);
    const param0 = randn(r, n);
    // Moments start nonzero, as after a capacity growth that kept existing positions' moments.
    const m0 = randn(r, n, 0.1);
    const v0 = randn(r, n, 0.1).map((x) => x * x);
    const gpu = {
      param: canaryBufferWith(k, 'adamw.param', param0),
      m: canaryBufferWith(k, 'adamw.m', m0),
      v: canaryBufferWith(k, 'adamw.v', v0),
    };
    const ref = { param: Float64Array.from(param0), m: Float64Array.from(m0), v: Float64Array.from(v0) };
    const grad = storageBuffer(k, 'adamw.grad', n * 4);
    const schedule = [1e-3, 3e-3, 2e-3, 5e-4, 1e-2];
    let pipelines = 0;
    for (let step = 1; step <= schedule.length; step++) {
      const g = randn(r, n, step === 3 ? 1e-4 : 1);
      k.device.queue.writeBuffer(grad, 0, g.buffer as ArrayBuffer, g.byteOffset, g.byteLength);
      const hyper: AdamWHyper = { lr: schedule[step - 1], weightDecay: 0.1, beta2: 0.99 };
      const gradScale = step === 4 ? 0.5 : 1;
      await adamw(k, { ...gpu, grad, n, step, gradScale, ...hyper });
      adamwRef(ref, Float64Array.from(g), hyper, step, gradScale);
      if (step === 1) pipelines = k.pipelines.size;
    }
    expect(k.pipelines.size).toBe(pipelines);
    const tol = tolerance('adamw');
    assertClose(await readCanaried(k, gpu.param, n), ref.param, tol, `param n=${n}`);
    assertClose(await readCanaried(k, gpu.m, n), ref.m, tol, `m n=${n}`);
    assertClose(await readCanaried(k, gpu.v, n), ref.v, tol, `v n=${n}`);
  });

  it('refuses step 0 (bias correction would divide by zero)', async () => {
    const k = kernelContext(await testGpu());
    const b = storageBuffer(k, 'adamw.any', 4);
    await expect(adamw(k, { param: b, grad: b, m: b, v: b, n: 1, step: 0, lr: 1e-3 })).rejects.toThrow(
      /step 0/,
    );
  });
});
