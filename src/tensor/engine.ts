// The engine a model runs on: one device, its kernel context and buffer pool, tensor factories, and
// scopes that release the tensors made inside them. One computation at a time (scopes are a stack).
import type { Gpu } from '../gpu/device';
import { batch, kernelContext, readBuffers, type KernelContext } from '../kernels/common';
import { bytesPerElement, fromF16Array, toF16Array, type DType } from './dtype';
import { BufferPool, type BufferPoolOptions, type PoolStats } from './pool';
import { numel, type Shape } from './shape';
import { Storage, Tensor } from './tensor';

export interface TensorOptions {
  dtype?: DType;
  label?: string;
  requiresGrad?: boolean;
  /**
   * Lives as long as the model (frozen weights): its buffer has the exact size rather than a pooled size
   * class, and is destroyed, not kept for reuse, when the tensor is released.
   */
  exact?: boolean;
}

/** Anything a scope may return: tensors inside arrays and plain objects are found and kept. */
type Collected = Set<Tensor>;

export class Engine {
  readonly ctx: KernelContext;
  readonly pool: BufferPool;
  /** Open scopes, innermost last; `null` is an untracked region (tensors made there belong to the caller). */
  private readonly scopes: (Set<Tensor> | null)[] = [];

  constructor(
    readonly gpu: Gpu,
    poolOptions: Omit<BufferPoolOptions, 'isRecording'> = {},
  ) {
    this.ctx = kernelContext(gpu);
    this.pool = new BufferPool(gpu.device, { ...poolOptions, isRecording: () => this.recording });
  }

  get device(): GPUDevice {
    return this.gpu.device;
  }

  /** True while a batch is open: commands are recorded, not yet submitted. */
  get recording(): boolean {
    return this.ctx.encoder !== undefined;
  }

  stats(): PoolStats {
    return this.pool.stats();
  }

  // ---- scopes ----------------------------------------------------------------------------------------

  /** Called by the Tensor constructor: the innermost scope takes ownership of new tensors. */
  track(t: Tensor): void {
    this.scopes[this.scopes.length - 1]?.add(t);
  }

  /**
   * Runs fn and releases every tensor created inside it except those it returns (found in the result,
   * its arrays and plain objects) and those passed to keep(); returned tensors pass to the enclosing scope.
   * Tensors the autograd tape saved stay alive through the tape's own reference.
   */
  async scope<T>(fn: () => Promise<T> | T): Promise<T> {
    const own = new Set<Tensor>();
    this.scopes.push(own);
    let result: T;
    try {
      result = await fn();
    } catch (e) {
      this.popScope(own);
      for (const t of own) t.release();
      throw e;
    }
    this.popScope(own);
    const keep: Collected = new Set();
    collectTensors(result, keep, 0);
    for (const t of own) {
      if (keep.has(t)) this.track(t);
      else t.release();
    }
    return result;
  }

  /** Runs fn with no scope tracking: tensors created inside belong to the caller, whatever scope is open. */
  async untracked<T>(fn: () => Promise<T> | T): Promise<T> {
    this.scopes.push(null);
    try {
      return await fn();
    } finally {
      this.popScope(null);
    }
  }

  /** Takes tensors out of every open scope: the caller now owns (and must release) them. */
  keep<T extends Tensor | Tensor[]>(t: T): T {
    for (const x of Array.isArray(t) ? t : [t]) for (const s of this.scopes) s?.delete(x);
    return t;
  }

  private popScope(s: Set<Tensor> | null): void {
    if (this.scopes.pop() !== s)
      throw new Error('engine scopes closed out of order (concurrent computations?)');
  }

  // ---- factories -------------------------------------------------------------------------------------

  /** A tensor with uninitialised contents (outputs of kernels). */
  empty(shape: Shape, opts: TensorOptions = {}): Tensor {
    const dtype = opts.dtype ?? 'f32';
    const label = opts.label ?? 'tensor';
    const bytes = numel(shape) * bytesPerElement(dtype);
    const storage = new Storage(this, this.pool.acquire(bytes, label, opts.exact), bytes);
    const t = new Tensor(this, storage, shape, dtype, label);
    t.requiresGrad = opts.requiresGrad ?? false;
    return t;
  }

  /** An uninitialised tensor with the shape and dtype of `like`. */
  emptyLike(like: Tensor, label = `${like.label}.like`): Tensor {
    return this.empty(like.shape, { dtype: like.dtype, label });
  }

  zeros(shape: Shape, opts: TensorOptions = {}): Tensor {
    const t = this.empty(shape, { label: 'zeros', ...opts });
    this.clear(t);
    return t;
  }

  /** A tensor holding `data` (f32 values, converted when dtype is f16). */
  fromArray(data: ArrayLike<number>, shape: Shape, opts: TensorOptions = {}): Tensor {
    if (data.length !== numel(shape))
      throw new Error(`fromArray: ${data.length} values for shape [${shape}]`);
    const t = this.empty(shape, { label: 'data', ...opts });
    this.write(t, data);
    return t;
  }

  /** An f16 tensor holding IEEE half bits as they are (e.g. an F16 safetensors tensor): no conversion. */
  fromHalves(bits: Uint16Array, shape: Shape, opts: Omit<TensorOptions, 'dtype'> = {}): Tensor {
    if (bits.length !== numel(shape))
      throw new Error(`fromHalves: ${bits.length} halves for shape [${shape}]`);
    const t = this.empty(shape, { label: 'data', ...opts, dtype: 'f16' });
    this.writeBytes(t, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
    return t;
  }

  full(shape: Shape, value: number, opts: TensorOptions = {}): Tensor {
    return this.fromArray(new Float32Array(numel(shape)).fill(value), shape, { label: 'full', ...opts });
  }

  scalar(value: number, opts: TensorOptions = {}): Tensor {
    return this.fromArray([value], [1], { label: 'scalar', ...opts });
  }

  // ---- transfers -------------------------------------------------------------------------------------

  /**
   * Writes values into `t`. Inside a batch the write is recorded as a copy from a staging buffer, so it is
   * ordered after earlier recorded work that may still read this (reused) buffer; queue.writeBuffer would
   * overtake it.
   */
  write(t: Tensor, data: ArrayLike<number>): void {
    if (data.length !== t.size) throw new Error(`${t.label}: writing ${data.length} values into ${t.size}`);
    const typed =
      t.dtype === 'f16' ? toF16Array(data) : data instanceof Float32Array ? data : Float32Array.from(data);
    this.writeBytes(t, new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength));
  }

  /** Writes the raw element bytes of `t` (4-byte padded; ordered after recorded work inside a batch). */
  private writeBytes(t: Tensor, src: Uint8Array): void {
    const bytes = Math.ceil(src.byteLength / 4) * 4;
    const padded = bytes === src.byteLength ? src : padTo(src, bytes);
    if (!this.recording) {
      this.device.queue.writeBuffer(t.buffer, 0, padded.buffer, padded.byteOffset, bytes);
      return;
    }
    const staging = this.device.createBuffer({
      label: `${t.label}.upload`,
      size: Math.max(4, bytes),
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(staging.getMappedRange()).set(padded);
    staging.unmap();
    this.ctx.encoder!.copyBufferToBuffer(staging, 0, t.buffer, 0, bytes);
    this.pool.destroyLater(staging);
  }

  /** Zeroes the whole buffer of `t` (recorded into the open batch if any). */
  clear(t: Tensor): void {
    this.encode(`${t.label}.clear`, (enc) => enc.clearBuffer(t.buffer));
  }

  /** Copies all elements of `src` into `dst` (same byte size). */
  copy(src: Tensor, dst: Tensor): void {
    if (src.byteSize !== dst.byteSize)
      throw new Error(`copy ${src.label} -> ${dst.label}: byte sizes differ`);
    const bytes = Math.ceil(src.byteSize / 4) * 4;
    this.encode(`${dst.label}.copy`, (enc) => enc.copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, bytes));
  }

  /** Records non-dispatch commands into the open batch, or submits them at once. */
  encode(label: string, fn: (encoder: GPUCommandEncoder) => void): void {
    if (this.ctx.encoder) {
      fn(this.ctx.encoder);
      return;
    }
    const enc = this.device.createCommandEncoder({ label });
    fn(enc);
    this.device.queue.submit([enc.finish()]);
  }

  async read(t: Tensor): Promise<Float32Array> {
    return (await this.readTensors([t]))[0];
  }

  /** read() of several tensors with one GPU wait (one staging buffer, one submit, one map). */
  async readMany(ts: readonly Tensor[]): Promise<Float32Array[]> {
    return this.readTensors(ts);
  }

  // Shared by read and readMany so that a spy on readMany counts only the callers that batch their reads.
  private async readTensors(ts: readonly Tensor[]): Promise<Float32Array[]> {
    if (this.recording && ts.length > 0)
      throw new Error(`${ts[0].label}: read inside an open batch (its work is not submitted yet)`);
    const bytes = await readBuffers(
      this.ctx,
      ts.map((t) => ({ src: t.buffer, byteLength: Math.ceil(t.byteSize / 4) * 4 })),
    );
    return ts.map((t, i) =>
      t.dtype === 'f32' ? new Float32Array(bytes[i]) : fromF16Array(new Uint16Array(bytes[i], 0, t.size)),
    );
  }

  /** Records every launch inside fn into one command buffer (nested batches join the outer one). */
  async batch<T>(label: string, fn: () => Promise<T> | T): Promise<T> {
    try {
      return await batch(this.ctx, label, fn);
    } finally {
      this.pool.flush();
    }
  }

  /** Destroys every pooled buffer. Tensors of this engine are unusable afterwards. */
  destroy(): void {
    this.pool.destroyAll();
  }
}

function padTo(src: Uint8Array, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out.set(src);
  return out;
}

function collectTensors(v: unknown, out: Collected, depth: number): void {
  if (depth > 8 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) collectTensors(x, out, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(v) === Object.prototype || v instanceof Map) {
    for (const x of v instanceof Map ? v.values() : Object.values(v)) collectTensors(x, out, depth + 1);
  }
}
