// The subnormal probe against the engine's own kernels on the test adapter: what it reports is what a matmul and
// an elementwise op do with values below the normal f32 range.
import { describe, expect, it } from 'vitest';
import { kernelContext, readF32, upload } from '../kernels/common';
import { unary } from '../kernels/elementwise';
import { matmul } from '../kernels/matmul';
import { describeSubnormals, probeSubnormals } from './subnormals';
import { testGpu } from './testing';

describe('subnormal probe', () => {
  it("reports what the engine's matmul and elementwise kernels do with subnormal results and inputs", async () => {
    const gpu = await testGpu();
    const probe = await probeSubnormals(gpu);
    console.log(`[gpu tier] subnormal floats: ${describeSubnormals(probe)}`);
    const k = kernelContext(gpu);
    // 1×1·1×1 matmul: 1e-20 · 1e-20 = 1e-40 (subnormal) or 0.
    const out = upload(k, 'product', new Float32Array(1));
    await matmul(k, {
      m: 1,
      n: 1,
      k: 1,
      a: upload(k, 'a', Float32Array.of(1e-20)),
      b: upload(k, 'b', Float32Array.of(1e-20)),
      out,
    });
    const product = (await readF32(k, out, 1))[0];
    expect(product === 0 ? 'flushed' : 'kept').toBe(probe.results);
    if (probe.results === 'kept') expect(Math.abs(product - 1e-40)).toBeLessThan(1e-44);
    // scale by 2 of a subnormal input: 2e-40 or 0.
    const y = upload(k, 'scaled', new Float32Array(1));
    await unary(k, { op: 'scale', x: upload(k, 'x', Float32Array.of(1e-40)), y, n: 1, alpha: 2 });
    const scaled = (await readF32(k, y, 1))[0];
    expect(scaled === 0 ? 'flushed' : 'kept').toBe(probe.inputs);
  });
});
