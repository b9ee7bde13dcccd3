// The GPU layer on a real adapter (Dawn in Node): capabilities, typed compile errors, device loss, OOM.
import { describe, expect, it } from 'vitest';
import { acquireGpu, adapterName, compileShader, withGpuErrorScopes } from './device';
import { DeviceLostError, GpuOutOfMemoryError, WebGpuUnavailableError, WgslCompileError } from './errors';
import { acquireNodeGpu } from './node';
import { NODE_TIER_NICE, ownThreadNices } from '../../scripts/thread-nice';
import { testGpu } from './testing';

describe('gpu device (Node, Dawn)', () => {
  it('gets a real adapter and reports its name, features and limits', async () => {
    const gpu = await testGpu();
    const name = adapterName(gpu.adapter);
    console.log(`adapter: ${name}; features: ${JSON.stringify(gpu.features)}`);
    expect(name).not.toBe('unknown adapter');
    expect(gpu.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(gpu.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
  });

  it.runIf(process.platform === 'linux' && !process.env.LORA2_NO_YIELD)(
    'runs every thread of the tier, Dawn and the driver included, below the browser the e2e tier measures',
    async () => {
      await testGpu();
      // The setup file re-checks each second for threads the device started.
      await new Promise((r) => setTimeout(r, 1500));
      const nices = ownThreadNices();
      console.log(`[gpu tier] ${nices.length} threads, nice ${Math.min(...nices)}..${Math.max(...nices)}`);
      expect(nices.length).toBeGreaterThan(1);
      expect(nices.filter((n) => n < NODE_TIER_NICE)).toEqual([]);
    },
  );

  it('turns a broken WGSL shader into WgslCompileError with the compiler message and line', async () => {
    const gpu = await testGpu();
    const code = `@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = undefined_symbol + 1.0;\n}\n`;
    const err = await compileShader(gpu.device, 'broken-test', code).catch((e) => e);
    expect(err).toBeInstanceOf(WgslCompileError);
    const e = err as WgslCompileError;
    expect(e.messages.some((m) => m.type === 'error' && m.lineNum === 3)).toBe(true);
    expect(e.message).toMatch(/undefined_symbol/);
    expect(e.message).toMatch(/line 3/);
  });

  it('reports a destroyed device as DeviceLostError', async () => {
    const gpu = await acquireNodeGpu({ label: 'doomed' });
    gpu.destroy();
    const lost = await gpu.lost;
    expect(lost).toBeInstanceOf(DeviceLostError);
    expect(lost.reason).toBe('destroyed');
    expect(gpu.lostError).toBe(lost);
  });

  it('turns an impossible allocation into GpuOutOfMemoryError or a validation error, not silence', async () => {
    const gpu = await testGpu();
    const err = await withGpuErrorScopes(gpu.device, 'huge-alloc', () =>
      gpu.device.createBuffer({
        size: gpu.limits.maxBufferSize,
        usage: GPUBufferUsage.STORAGE,
        mappedAtCreation: false,
      }),
    )
      .then((b) => {
        b.destroy();
        return undefined;
      })
      .catch((e) => e);
    // lavapipe may actually satisfy maxBufferSize; then there is nothing to report. If it fails, it is typed.
    if (err !== undefined) expect(err.kind === 'out-of-memory' || err.kind === 'validation').toBe(true);
    const over = await withGpuErrorScopes(gpu.device, 'over-limit', () =>
      gpu.device.createBuffer({ size: gpu.limits.maxBufferSize * 2 + 4, usage: GPUBufferUsage.STORAGE }),
    ).catch((e) => e);
    expect(over instanceof GpuOutOfMemoryError || over.kind === 'validation').toBe(true);
  });

  it('explains a missing navigator.gpu and a missing adapter', async () => {
    await expect(acquireGpu(undefined)).rejects.toBeInstanceOf(WebGpuUnavailableError);
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    const err = await acquireGpu(noAdapter).catch((e) => e);
    expect(err).toBeInstanceOf(WebGpuUnavailableError);
    expect(err.reason).toBe('no-adapter');
    expect(err.advice).toMatch(/driver/);
  });
});
