// One way to get a GPU device for the page, a dedicated worker and Node: adapter, features, limits,
// lost-device tracking and typed errors. Callers pass the GPU entry point (navigator.gpu or Dawn's).
import {
  DeviceLostError,
  GpuLimitError,
  GpuOutOfMemoryError,
  GpuValidationError,
  WebGpuUnavailableError,
  WgslCompileError,
  type WgslMessage,
} from './errors';

/** Limits below these and the engine cannot run at all. */
export const REQUIRED_LIMITS = {
  maxStorageBuffersPerShaderStage: 8,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16384,
  maxStorageBufferBindingSize: 128 * 1024 * 1024,
} as const;

/** Limits we raise to whatever the adapter allows: big models need big buffers. */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxBindGroups',
] as const;

const OPTIONAL_FEATURES = ['shader-f16', 'timestamp-query', 'subgroups'] as const;

export interface GpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for software rasterizers (SwiftShader, lavapipe, llvmpipe). */
  isFallback: boolean;
}

export interface GpuCapabilities {
  shaderF16: boolean;
  timestampQuery: boolean;
  subgroups: boolean;
}

export interface Gpu {
  device: GPUDevice;
  adapter: GpuAdapterSummary;
  features: GpuCapabilities;
  limits: Record<string, number>;
  /** Resolves when the device is lost, with the typed error. Never rejects. */
  lost: Promise<DeviceLostError>;
  /** Set once the device is lost; check before queuing work. */
  lostError: DeviceLostError | undefined;
  destroy(): void;
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Skip optional features (e.g. to test the f32-only path on an f16-capable adapter). */
  disableFeatures?: readonly string[];
  label?: string;
}

export function summarizeAdapter(adapter: GPUAdapter): GpuAdapterSummary {
  const info = adapter.info;
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const text = `${vendor} ${architecture} ${device} ${description}`.toLowerCase();
  const isFallback =
    Boolean((info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter) ||
    /swiftshader|llvmpipe|lavapipe|software/.test(text);
  return { vendor, architecture, device, description, isFallback };
}

/** A human name for the adapter, e.g. "google swiftshader (subzero)". */
export function adapterName(a: GpuAdapterSummary): string {
  return [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' ') || 'unknown adapter';
}

export async function acquireGpu(entry: GPU | undefined, opts: AcquireOptions = {}): Promise<Gpu> {
  if (!entry) throw new WebGpuUnavailableError('no-navigator-gpu');
  let adapter: GPUAdapter | null;
  try {
    adapter = await entry.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  } catch (e) {
    throw new WebGpuUnavailableError('no-adapter', String(e));
  }
  if (!adapter) throw new WebGpuUnavailableError('no-adapter');

  for (const [name, need] of Object.entries(REQUIRED_LIMITS)) {
    const have = (adapter.limits as unknown as Record<string, number>)[name];
    if (have < need) throw new GpuLimitError(name, need, have);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const disabled = new Set(opts.disableFeatures ?? []);
  const requiredFeatures = OPTIONAL_FEATURES.filter(
    (f) => adapter.features.has(f) && !disabled.has(f),
  ) as GPUFeatureName[];

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      label: opts.label ?? 'lora2-device',
      requiredFeatures,
      requiredLimits,
    });
  } catch (e) {
    throw new WebGpuUnavailableError('request-device-failed', String(e));
  }

  const features: GpuCapabilities = {
    shaderF16: device.features.has('shader-f16'),
    timestampQuery: device.features.has('timestamp-query'),
    subgroups: device.features.has('subgroups'),
  };
  const limits: Record<string, number> = {};
  for (const name of Object.keys(REQUIRED_LIMITS).concat(RAISED_LIMITS)) {
    limits[name] = (device.limits as unknown as Record<string, number>)[name];
  }

  const gpu: Gpu = {
    device,
    adapter: summarizeAdapter(adapter),
    features,
    limits,
    lostError: undefined,
    lost: device.lost.then((info) => {
      const err = new DeviceLostError(info.reason ?? 'unknown', info.message ?? '');
      gpu.lostError = err;
      return err;
    }),
    destroy: () => device.destroy(),
  };
  return gpu;
}

/**
 * Compiles WGSL and turns compiler diagnostics into a WgslCompileError carrying the compiler's own
 * messages and line numbers, instead of the opaque "invalid pipeline" that surfaces later.
 */
export async function compileShader(
  device: GPUDevice,
  label: string,
  code: string,
): Promise<GPUShaderModule> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label, code });
  const info = await module.getCompilationInfo();
  const scopeError = await device.popErrorScope();
  const messages: WgslMessage[] = info.messages.map((m) => ({
    type: m.type,
    message: m.message,
    lineNum: m.lineNum,
    linePos: m.linePos,
  }));
  if (messages.some((m) => m.type === 'error')) throw new WgslCompileError(label, messages, code);
  if (scopeError) {
    throw new WgslCompileError(
      label,
      [{ type: 'error', message: scopeError.message, lineNum: 0, linePos: 0 }],
      code,
    );
  }
  return module;
}

/**
 * Runs GPU work inside out-of-memory and validation error scopes and throws the typed error.
 * Use around allocations and pipeline creation, where failure must be explained, not swallowed.
 */
export async function withGpuErrorScopes<T>(
  device: GPUDevice,
  label: string,
  fn: () => T | Promise<T>,
): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T;
  let validation: GPUError | null;
  let oom: GPUError | null;
  try {
    result = await fn();
  } finally {
    // Scopes must be popped even when fn throws, in reverse order of pushing.
    validation = await device.popErrorScope();
    oom = await device.popErrorScope();
  }
  if (oom) throw new GpuOutOfMemoryError(label, oom.message);
  if (validation) throw new GpuValidationError(label, validation.message);
  return result;
}

/** Throws the device-lost error if the device is gone, so work is not queued into the void. */
export function assertAlive(gpu: Gpu): void {
  if (gpu.lostError) throw gpu.lostError;
}
