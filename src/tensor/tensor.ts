// Tensor: a shaped, typed view of a pooled GPU buffer with explicit, reference-counted lifetime, plus the
// autograd fields (requiresGrad, grad) the tape reads and writes.
import type { Engine } from './engine';
import { bytesPerElement, type DType } from './dtype';
import { assertValidShape, formatShape, numel, type Shape } from './shape';

/** Use of a tensor whose storage went back to the pool: a lifetime bug in the caller. */
export class TensorReleasedError extends Error {
  override name = 'TensorReleasedError';
}

/**
 * A GPU buffer shared by a tensor and its views. `refs` counts owners (each tensor's own reference) and
 * holders (the autograd tape keeping a saved activation); at zero the buffer returns to the pool.
 */
export class Storage {
  refs = 0;
  constructor(
    readonly engine: Engine,
    readonly buffer: GPUBuffer,
    /** Bytes the data occupies (the buffer itself may be larger: size classes). */
    readonly bytes: number,
  ) {}

  ref(): void {
    if (this.refs <= 0) throw new TensorReleasedError(`reference to released storage ${this.buffer.label}`);
    this.refs++;
  }

  unref(): void {
    if (this.refs <= 0) throw new TensorReleasedError(`over-release of storage ${this.buffer.label}`);
    if (--this.refs === 0) this.engine.pool.release(this.buffer);
  }
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  /** Number of elements. */
  readonly size: number;
  requiresGrad = false;
  /** Accumulated gradient of a leaf with requiresGrad (owned by this tensor; see autograd zeroGrad). */
  grad: Tensor | undefined = undefined;
  /** False for outputs of recorded ops: their gradient flows on to the inputs instead of into .grad. */
  isLeaf = true;
  private owned = true;

  /** Use Engine factories (empty, zeros, fromArray) or ops; this wraps an already-referenced storage. */
  constructor(
    readonly engine: Engine,
    readonly storage: Storage,
    shape: Shape,
    readonly dtype: DType,
    public label: string,
  ) {
    assertValidShape(shape, label);
    this.shape = Object.freeze([...shape]);
    this.size = numel(shape);
    if (this.byteSize > storage.bytes) {
      throw new Error(
        `${label}: shape ${formatShape(shape)} needs ${this.byteSize} bytes, storage has ${storage.bytes}`,
      );
    }
    storage.refs++;
    engine.track(this);
  }

  get buffer(): GPUBuffer {
    if (this.storage.refs <= 0) throw new TensorReleasedError(`${this.label}: buffer of a released tensor`);
    return this.storage.buffer;
  }

  /** Bytes of the elements (not of the pooled buffer, which may be larger). */
  get byteSize(): number {
    return this.size * bytesPerElement(this.dtype);
  }

  get rank(): number {
    return this.shape.length;
  }

  /** True once this tensor gave up its reference (its storage may live on in views or the tape). */
  get released(): boolean {
    return !this.owned;
  }

  /** True while the storage is still allocated (someone holds it). */
  get alive(): boolean {
    return this.storage.refs > 0;
  }

  /** Drops this tensor's reference; the buffer returns to the pool when no view or tape holds it. Idempotent. */
  release(): void {
    if (!this.owned) return;
    this.owned = false;
    this.storage.unref();
  }

  /** An extra reference (e.g. the tape saving an activation); pair with drop(). */
  hold(): void {
    this.storage.ref();
  }

  drop(): void {
    this.storage.unref();
  }

  /**
   * A tensor of another shape over the same buffer, no copy (autograd-unaware: ops.reshape records it).
   * One dimension may be -1. A view with fewer elements (a prefix) is allowed only with `prefix`.
   */
  view(shape: Shape, opts: { label?: string; prefix?: boolean } = {}): Tensor {
    const resolved = resolveShape(shape, this.size, this.label);
    const n = numel(resolved);
    if (opts.prefix ? n > this.size : n !== this.size) {
      throw new Error(`${this.label}: cannot view ${formatShape(this.shape)} as ${formatShape(resolved)}`);
    }
    void this.buffer; // throws if released
    return new Tensor(this.engine, this.storage, resolved, this.dtype, opts.label ?? this.label);
  }

  /** Copies the elements back to the CPU as f32. Not allowed inside an open batch (nothing submitted yet). */
  read(): Promise<Float32Array> {
    return this.engine.read(this);
  }

  toString(): string {
    return `Tensor(${this.label}, ${formatShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/** Resolves one -1 dimension against `size` elements. */
export function resolveShape(shape: Shape, size: number, what: string): number[] {
  const free = shape.indexOf(-1);
  if (free < 0) return [...shape];
  if (shape.indexOf(-1, free + 1) >= 0) throw new Error(`${what}: more than one -1 in ${formatShape(shape)}`);
  const rest = numel(shape.filter((_, i) => i !== free));
  if (rest === 0 || size % rest !== 0)
    throw new Error(`${what}: cannot infer -1 in ${formatShape(shape)} for ${size}`);
  const out = [...shape];
  out[free] = size / rest;
  return out;
}
