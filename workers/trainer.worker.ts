// The trainer worker: owns the GPU device and exposes the typed TrainerApi through comlink.
import * as Comlink from 'comlink';
import { acquireBrowserGpu } from '../src/gpu/browser';
import { adapterName, compileShader, type Gpu } from '../src/gpu/device';
import { serializeGpuError } from '../src/gpu/errors';
import type { GpuInfo, InitResult, SelfTestResult, TrainerImplementation, TrainerMethod } from './api';
import { matmulSelfTest } from './selftest';

let gpuPromise: Promise<Gpu> | undefined;

function gpu(): Promise<Gpu> {
  if (!gpuPromise) {
    gpuPromise = acquireBrowserGpu({ label: 'trainer-worker' });
    // A failed acquisition may succeed later (e.g. after the user enables WebGPU); don't cache failure.
    gpuPromise.catch(() => (gpuPromise = undefined));
  }
  return gpuPromise;
}

function describe(g: Gpu): GpuInfo {
  return { adapter: g.adapter, name: adapterName(g.adapter), features: g.features, limits: g.limits };
}

function toPlainError(e: unknown): NonNullable<SelfTestResult['error']> {
  return (
    serializeGpuError(e) ?? {
      name: (e as Error)?.name ?? 'Error',
      message: String((e as Error)?.message ?? e),
    }
  );
}

const api: TrainerImplementation = {
  async init(): Promise<InitResult> {
    try {
      return { ok: true, gpu: describe(await gpu()) };
    } catch (e) {
      const error = serializeGpuError(e);
      if (error) return { ok: false, error };
      throw e;
    }
  },

  async selfTest(): Promise<SelfTestResult> {
    try {
      const r = await matmulSelfTest(await gpu());
      return {
        ok: r.maxAbsError < 1e-4,
        what: `matmul ${r.m}×${r.k} · ${r.k}×${r.n} on WebGPU in a worker`,
        maxAbsError: r.maxAbsError,
        elapsedMs: r.elapsedMs,
      };
    } catch (e) {
      return { ok: false, what: 'matmul self-test', maxAbsError: NaN, elapsedMs: 0, error: toPlainError(e) };
    }
  },

  async loseDevice() {
    const g = await gpu();
    gpuPromise = undefined;
    g.destroy();
    return serializeGpuError(await g.lost);
  },

  async compileCheck(code: string) {
    try {
      await compileShader((await gpu()).device, 'compile-check', code);
      return undefined;
    } catch (e) {
      return toPlainError(e) as ReturnType<typeof serializeGpuError>;
    }
  },

  async capabilities() {
    return (Object.keys(api) as TrainerMethod[]).filter((k) => typeof api[k] === 'function');
  },
};

Comlink.expose(api);
