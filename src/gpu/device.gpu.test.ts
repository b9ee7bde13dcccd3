// The GPU layer on a real adapter (Dawn in Node): capabilities, typed compile errors, device loss, OOM.
import { describe, expect, it, vi } from 'vitest';
import { acquireGpu, adapterName, compileShader, withGpuErrorScopes } from './device';
import { DeviceLostError, GpuOutOfMemoryError, WebGpuUnavailableError, WgslCompileError } from './errors';
import { acquireNodeGpu, DAWN_POLL_MS } from './node';
import { cpuTicks, NODE_TIER_NICE, ownThreadIds, ownThreadNices } from '../../scripts/thread-nice';
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

  it.runIf(process.platform === 'linux')(
    'sleeps, rather than spins, the JS thread while it awaits GPU work (Dawn ticks throttled)',
    async () => {
      const { device } = await testGpu();
      // One long-running dispatch: every invocation loops `n` times on a value the compiler cannot fold.
      const module = await compileShader(
        device,
        'busy-loop',
        `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
         @group(0) @binding(1) var<uniform> n: u32;
         @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
           var x = f32(id.x);
           for (var i = 0u; i < n; i++) { x = fract(x * 1.0001 + 0.37); }
           out[id.x] = x;
         }`,
      );
      const pipeline = device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
      });
      const out = device.createBuffer({ size: 4096 * 4, usage: GPUBufferUsage.STORAGE });
      const n = device.createBuffer({ size: 4, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      const bind = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: out } },
          { binding: 1, resource: { buffer: n } },
        ],
      });
      // CPU time (clock ticks) of this process's JS thread and of all its threads (the driver's included).
      const cpu = () => ({
        js: cpuTicks(`/proc/self/task/${process.pid}`),
        all: ownThreadIds().reduce((sum, tid) => sum + cpuTicks(`/proc/self/task/${tid}`), 0),
      });
      const run = async (iterations: number) => {
        device.queue.writeBuffer(n, 0, new Uint32Array([iterations]));
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bind);
        pass.dispatchWorkgroups(4096 / 64);
        pass.end();
        device.queue.submit([enc.finish()]);
        // The throttle sends Dawn's ticks on to the global setTimeout: count those.
        const spy = vi.spyOn(globalThis, 'setTimeout');
        const t0 = performance.now();
        const c0 = cpu();
        let polls: number;
        try {
          await device.queue.onSubmittedWorkDone();
        } finally {
          // Count before the restore, which clears the record.
          polls = spy.mock.calls.filter((args) => args[1] === DAWN_POLL_MS && args.length === 2).length;
          spy.mockRestore();
        }
        const c1 = cpu();
        return {
          ms: performance.now() - t0,
          polls,
          js: c1.js - c0.js,
          driver: c1.all - c1.js - (c0.all - c0.js),
        };
      };
      // Grow the loop until one wait lasts at least a second (clock ticks are 10 ms).
      let iterations = 1 << 14;
      let r = await run(iterations);
      while (r.ms < 1000 && iterations < 1 << 30) {
        iterations *= Math.min(16, Math.max(2, Math.ceil(1200 / Math.max(r.ms, 1))));
        r = await run(iterations);
      }
      console.log(
        `[gpu tier] a ${r.ms.toFixed(0)} ms GPU wait: ${r.polls} Dawn ticks; CPU: JS thread ${r.js * 10} ms, ` +
          `the driver's threads ${r.driver * 10} ms`,
      );
      out.destroy();
      n.destroy();
      expect(r.ms).toBeGreaterThanOrEqual(1000);
      // The wait was polled on the timer, at most about once a millisecond...
      expect(r.polls).toBeGreaterThan(0);
      expect(r.polls / r.ms).toBeLessThan(1.5);
      // ...so the JS thread mostly slept. Back-to-back setImmediate ticks keep it busy for most of the wait
      // when the machine is otherwise idle (under load from other processes both figures drop).
      expect((r.js * 10) / r.ms).toBeLessThan(0.25);
    },
  );
});
