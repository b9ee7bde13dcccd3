// Shared launcher plumbing for every kernel: pipeline cache with typed compile errors, dispatch sizes
// clamped to device limits in one place, bind-group and uniform helpers, labels naming the op.
import { compileShader, type Gpu } from '../gpu/device';

/**
 * How a conv2d pipeline gets its sizes: `baked` into the WGSL (one pipeline per shape, the fastest code) or from a
 * `uniform` (one pipeline per window, stride, padding and tile width, for shapes that change during a run).
 */
export type ConvSizes = 'baked' | 'uniform';
/** The tiled attention kernels' thread grid: 'wide' (8×8, GPUs) or 'compact' (4×4, software adapters). */
export type AttentionGrid = 'wide' | 'compact';
/** Attention kernels: 'tiled' (where a tiling fits) or the row-wise ones. */
export type AttentionKernelChoice = 'tiled' | 'rows';

export interface KernelContext {
  gpu: Gpu;
  device: GPUDevice;
  /** Pipelines keyed by label + source, so a kernel specialised by constants compiles once. */
  pipelines: Map<string, Promise<GPUComputePipeline>>;
  /** When set, kernels record into this encoder instead of submitting their own. */
  encoder: GPUCommandEncoder | undefined;
  /** When set, every conv2d launch takes its sizes this way, whatever the call asked (benchmarks compare them). */
  convSizes?: ConvSizes;
  /** When set, the tiled attention kernels use this thread grid (tests and benchmarks run both). */
  attentionGrid?: AttentionGrid;
  /** When set, attention launches that do not name a kernel use this one (benchmarks compare them). */
  attentionKernel?: AttentionKernelChoice;
}

const contexts = new WeakMap<Gpu, KernelContext>();

export function kernelContext(gpu: Gpu): KernelContext {
  let ctx = contexts.get(gpu);
  if (!ctx) {
    ctx = { gpu, device: gpu.device, pipelines: new Map(), encoder: undefined };
    contexts.set(gpu, ctx);
  }
  return ctx;
}

/** Compiles (once) and returns the compute pipeline for `code`; compile errors are WgslCompileError. */
export function getPipeline(ctx: KernelContext, label: string, code: string): Promise<GPUComputePipeline> {
  const key = `${label}\n${code}`;
  let p = ctx.pipelines.get(key);
  if (!p) {
    p = (async () => {
      const module = await compileShader(ctx.device, label, code);
      return ctx.device.createComputePipelineAsync({
        label,
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
      });
    })();
    // A failed compile must not poison the cache for a corrected retry.
    p.catch(() => ctx.pipelines.delete(key));
    ctx.pipelines.set(key, p);
  }
  return p;
}

export type Workgroups = [number, number, number];

/**
 * Workgroup counts for `count` workgroups in total, folded into y (and z) when x would exceed
 * maxComputeWorkgroupsPerDimension. Kernels recover the flat index with `flatWorkgroupIndex` (WGSL below).
 */
export function dispatchFor(ctx: KernelContext, count: number): Workgroups {
  const max = ctx.gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
  if (count <= max) return [Math.max(1, count), 1, 1];
  const y = Math.ceil(count / max);
  if (y <= max) return [max, y, 1];
  const z = Math.ceil(y / max);
  if (z > max) throw new Error(`dispatch of ${count} workgroups exceeds device limits`);
  return [max, max, z];
}

/** Number of workgroups of `size` threads to cover `n` items. */
export function ceilDiv(n: number, size: number): number {
  return Math.ceil(n / size);
}

/** WGSL: flat workgroup index from a dispatch made by `dispatchFor` (needs @builtin(num_workgroups) nwg). */
export const WGSL_FLAT_WORKGROUP = /* wgsl */ `
fn flatWorkgroupIndex(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x + wid.z * nwg.x * nwg.y;
}`;

/**
 * WGSL: exp(x), flushed to zero below e^−80 ≈ 1.8e−35 (zero next to anything it is added to). Weights between e^−87
 * and e^−80 are normal floats at the bottom of the range, and their products with values or small gradients are
 * subnormal. lavapipe keeps subnormals and computes with them slowly (SwiftShader and GPUs flush them, and compute
 * the same values as this): with the shipped model's sharp attention, a LoRA training step on lavapipe took about
 * 1.5× as long (BENCHMARKS.md, "Subnormal floats on CPU adapters"; `npm run gpu:info` says what an adapter does).
 */
export const WGSL_EXP_FTZ = /* wgsl */ `
fn expFtz(x: f32) -> f32 {
  return select(0.0, exp(max(x, -80.0)), x >= -80.0);
}`;

/** Packs numbers into a uniform buffer: entries are u32 unless listed in `floats`, 16-byte padded. */
export function uniformBuffer(
  ctx: KernelContext,
  label: string,
  values: number[],
  floats: ReadonlySet<number> = new Set(),
): GPUBuffer {
  const n = Math.max(4, Math.ceil(values.length / 4) * 4);
  const data = new ArrayBuffer(n * 4);
  const u = new Uint32Array(data);
  const f = new Float32Array(data);
  values.forEach((v, i) => {
    if (floats.has(i)) f[i] = v;
    else {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
        throw new Error(`${label}: uniform ${i}=${v} is not a u32`);
      u[i] = v;
    }
  });
  const buf = ctx.device.createBuffer({
    label: `${label}.params`,
    size: data.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  ctx.device.queue.writeBuffer(buf, 0, data);
  return buf;
}

export interface Launch {
  label: string;
  pipeline: GPUComputePipeline;
  /** Bound in order at @binding(0..n-1) of @group(0); a GPUBufferBinding binds a sub-range. */
  buffers: (GPUBuffer | GPUBufferBinding)[];
  workgroups: Workgroups;
}

/**
 * Encodes one compute dispatch. Records into ctx.encoder when a batch is open, else submits at once.
 * Uniform buffers created for this launch can be passed in `transient` to be destroyed after submit.
 */
export function launch(ctx: KernelContext, l: Launch, transient: GPUBuffer[] = []): void {
  const bindGroup = ctx.device.createBindGroup({
    label: l.label,
    layout: l.pipeline.getBindGroupLayout(0),
    entries: l.buffers.map((b, binding) => ({ binding, resource: 'buffer' in b ? b : { buffer: b } })),
  });
  const own = ctx.encoder === undefined;
  const encoder = ctx.encoder ?? ctx.device.createCommandEncoder({ label: l.label });
  const pass = encoder.beginComputePass({ label: l.label });
  pass.setPipeline(l.pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(l.workgroups[0], l.workgroups[1], l.workgroups[2]);
  pass.end();
  if (own) {
    ctx.device.queue.submit([encoder.finish()]);
    for (const b of transient) b.destroy();
  } else {
    pendingTransient.set(encoder, (pendingTransient.get(encoder) ?? []).concat(transient));
  }
}

const pendingTransient = new WeakMap<GPUCommandEncoder, GPUBuffer[]>();

/** Records every launch inside `fn` into one command buffer and submits it once. */
export async function batch<T>(ctx: KernelContext, label: string, fn: () => Promise<T> | T): Promise<T> {
  if (ctx.encoder) return fn();
  const encoder = ctx.device.createCommandEncoder({ label });
  ctx.encoder = encoder;
  try {
    const r = await fn();
    ctx.device.queue.submit([encoder.finish()]);
    return r;
  } finally {
    ctx.encoder = undefined;
    for (const b of pendingTransient.get(encoder) ?? []) b.destroy();
  }
}

/** Creates a storage buffer (4-byte aligned size) with an op label. */
export function storageBuffer(
  ctx: KernelContext,
  label: string,
  byteLength: number,
  extraUsage = 0,
): GPUBuffer {
  return ctx.device.createBuffer({
    label,
    size: Math.max(4, Math.ceil(byteLength / 4) * 4),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | extraUsage,
  });
}

/** Uploads a typed array into a new storage buffer. */
export function upload(
  ctx: KernelContext,
  label: string,
  data: Float32Array | Uint32Array | Int32Array,
): GPUBuffer {
  const buf = storageBuffer(ctx, label, data.byteLength);
  ctx.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  return buf;
}

/** Reads `byteLength` bytes of a storage buffer back to the CPU. */
export async function readBuffer(
  ctx: KernelContext,
  src: GPUBuffer,
  byteLength = src.size,
  offset = 0,
): Promise<ArrayBuffer> {
  return (await readBuffers(ctx, [{ src, byteLength, offset }]))[0];
}

/**
 * Reads several storage-buffer ranges back with one submit and one map (one GPU wait instead of one per
 * range). Results are in the order given.
 */
export async function readBuffers(
  ctx: KernelContext,
  ranges: readonly { src: GPUBuffer; byteLength: number; offset?: number }[],
): Promise<ArrayBuffer[]> {
  const sizes = ranges.map((r) => Math.ceil(r.byteLength / 4) * 4);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total === 0) return ranges.map(() => new ArrayBuffer(0));
  const staging = ctx.device.createBuffer({
    label: ranges.length === 1 ? `${ranges[0].src.label}.readback` : 'readBuffers.staging',
    size: total,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = ctx.device.createCommandEncoder({ label: 'readBuffers' });
  let at = 0;
  ranges.forEach((r, i) => {
    if (sizes[i] > 0) encoder.copyBufferToBuffer(r.src, r.offset ?? 0, staging, at, sizes[i]);
    at += sizes[i];
  });
  ctx.device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const mapped = staging.getMappedRange();
  at = 0;
  const out = ranges.map((r, i) => {
    const slice = mapped.slice(at, at + r.byteLength);
    at += sizes[i];
    return slice;
  });
  staging.unmap();
  staging.destroy();
  return out;
}

export async function readF32(
  ctx: KernelContext,
  src: GPUBuffer,
  count?: number,
  offsetElems = 0,
): Promise<Float32Array> {
  const n = count ?? src.size / 4 - offsetElems;
  return new Float32Array(await readBuffer(ctx, src, n * 4, offsetElems * 4));
}
