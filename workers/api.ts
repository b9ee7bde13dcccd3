// The typed surface between the UI and the trainer worker (comlink). Everything crossing it is plain data.
import type { GpuAdapterSummary, GpuCapabilities } from '../src/gpu/device';
import type { SerializedGpuError } from '../src/gpu/errors';

export interface GpuInfo {
  adapter: GpuAdapterSummary;
  name: string;
  features: GpuCapabilities;
  limits: Record<string, number>;
}

export type InitResult = { ok: true; gpu: GpuInfo } | { ok: false; error: SerializedGpuError };

export interface SelfTestResult {
  ok: boolean;
  /** What ran, e.g. "matmul 37×29 · 29×41 on WebGPU in a worker". */
  what: string;
  maxAbsError: number;
  elapsedMs: number;
  error?: SerializedGpuError | { name: string; message: string };
}

export interface TrainerApi {
  /** Acquires the worker's GPU device (idempotent). */
  init(): Promise<InitResult>;
  /** Runs a small compute shader on the worker's device and checks it against JavaScript. */
  selfTest(): Promise<SelfTestResult>;
  /** Destroys the device and reports the resulting device-lost error (diagnostics and tests). */
  loseDevice(): Promise<SerializedGpuError | undefined>;
  /** Compiles a WGSL module and reports compile errors as the typed error (diagnostics and tests). */
  compileCheck(code: string): Promise<SerializedGpuError | undefined>;
}
