// Every engine allocation goes through this pool: buffers are handed out by size class, released ones are
// reused, and live/peak bytes are counted so the trainer can report GPU memory.

/** Usage of every pooled buffer: kernels bind them as storage; uploads, readbacks and copies need COPY_*. */
export const POOL_USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

const MIN_CLASS_BYTES = 256;

/**
 * The size class for a request of `bytes`: at least 256 bytes, then four classes per power of two
 * (p, 1.25p, 1.5p, 1.75p), so a reused buffer wastes under 25%. Past `maxBufferSize` the exact
 * (4-aligned) size is used instead.
 */
export function sizeClass(bytes: number, maxBufferSize = Infinity): number {
  const exact = Math.max(4, Math.ceil(bytes / 4) * 4);
  const n = Math.max(MIN_CLASS_BYTES, exact);
  const step = 2 ** Math.floor(Math.log2(n)) / 4;
  const c = Math.ceil(n / step) * step;
  return c > maxBufferSize ? exact : c;
}

export interface PoolStats {
  /** Bytes of buffers handed out and not yet released (by size class, i.e. real GPU bytes). */
  liveBytes: number;
  /** Highest liveBytes since creation or the last resetPeak(). */
  peakLiveBytes: number;
  /** Bytes of released buffers kept for reuse. */
  cachedBytes: number;
  /** live + cached: what the pool holds on the GPU. */
  allocatedBytes: number;
  /** Highest allocatedBytes since creation or the last resetPeak(). */
  peakAllocatedBytes: number;
  liveBuffers: number;
  /** Buffers created on the device (misses) and requests served from the cache (hits), ever. */
  created: number;
  reused: number;
  /** Of the hits, requests served by a cached buffer of a larger class (instead of growing the pool). */
  reusedLarger: number;
  /** Cached buffers destroyed to make room for a new one (instead of growing the pool). */
  evicted: number;
}

export interface BufferPoolOptions {
  /** Released buffers past this many cached bytes are destroyed instead of kept (default: no limit). */
  maxCachedBytes?: number;
  /**
   * True while commands are being recorded into an unsubmitted encoder: a buffer such commands use may
   * not be destroyed yet, so destruction is postponed until this returns false.
   */
  isRecording?: () => boolean;
  /**
   * Keep the pool's footprint (live + cached bytes) from growing past its high-water mark while released
   * buffers sit unused (default true): a miss that would grow it takes a cached buffer of a larger class (up to
   * twice the size) or, outside a recording, destroys cached buffers first. Without this, buffers freed early
   * in a step and never asked for in their size again add to the peak (0.72 GiB of SD 1.5's 4.96 at 512 px
   * with checkpointing, session 21).
   */
  trimOnGrowth?: boolean;
}

/** A request may take a cached buffer of a larger class up to this many times its own size. */
const MAX_STRETCH = 2;

export class PoolError extends Error {
  override name = 'PoolError';
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly live = new Map<GPUBuffer, number>();
  private readonly doomed: GPUBuffer[] = [];
  /** Live buffers acquired with `exact`: not reused, destroyed on release. */
  private readonly exact = new Set<GPUBuffer>();
  private readonly maxCachedBytes: number;
  private readonly isRecording: () => boolean;
  private readonly maxBufferSize: number;
  private readonly trimOnGrowth: boolean;
  /** The most live + cached bytes the pool has held (never reset: the footprint the device has granted). */
  private highWater = 0;
  private liveBytes = 0;
  private cachedBytes = 0;
  private peakLiveBytes = 0;
  private peakAllocatedBytes = 0;
  private created = 0;
  private reused = 0;
  private reusedLarger = 0;
  private evicted = 0;

  constructor(
    readonly device: GPUDevice,
    opts: BufferPoolOptions = {},
  ) {
    this.maxCachedBytes = opts.maxCachedBytes ?? Infinity;
    this.isRecording = opts.isRecording ?? (() => false);
    this.maxBufferSize = device.limits.maxBufferSize;
    this.trimOnGrowth = opts.trimOnGrowth ?? true;
  }

  /**
   * A storage buffer of at least `bytes` bytes (contents undefined), labelled for its use. `exact`: a buffer
   * that lives as long as the model (frozen weights) gets its own 4-aligned size instead of a size class,
   * which would waste ~12% of it on average (0.4 GiB of SD 1.5's UNet), and is destroyed when released.
   */
  acquire(bytes: number, label: string, exact = false): GPUBuffer {
    this.flush();
    if (exact) {
      const size = Math.max(4, Math.ceil(bytes / 4) * 4);
      this.makeRoom(size);
      const buf = this.device.createBuffer({ label, size, usage: POOL_USAGE });
      this.created++;
      this.exact.add(buf);
      this.hold(buf, size);
      return buf;
    }
    const size = sizeClass(bytes, this.maxBufferSize);
    let cls = this.free.get(size)?.length ? size : undefined;
    if (cls === undefined && this.wouldGrow(size)) {
      cls = this.largerClass(size);
      if (cls !== undefined) this.reusedLarger++;
    }
    let buf: GPUBuffer;
    if (cls !== undefined) {
      buf = this.takeCached(cls);
      this.reused++;
      buf.label = label;
    } else {
      this.makeRoom(size);
      buf = this.device.createBuffer({ label, size, usage: POOL_USAGE });
      this.created++;
    }
    this.hold(buf, cls ?? size);
    return buf;
  }

  private hold(buf: GPUBuffer, size: number): void {
    this.live.set(buf, size);
    this.liveBytes += size;
    this.peakLiveBytes = Math.max(this.peakLiveBytes, this.liveBytes);
    const footprint = this.liveBytes + this.cachedBytes;
    this.peakAllocatedBytes = Math.max(this.peakAllocatedBytes, footprint);
    this.highWater = Math.max(this.highWater, footprint);
  }

  /** True when a new buffer of `size` bytes would take the footprint past its high-water mark. */
  private wouldGrow(size: number): boolean {
    return this.trimOnGrowth && this.liveBytes + this.cachedBytes + size > this.highWater;
  }

  /** The smallest cached class above `size` and at most MAX_STRETCH times it, if any. */
  private largerClass(size: number): number | undefined {
    let best: number | undefined;
    for (const [cls, list] of this.free) {
      if (cls > size && cls <= MAX_STRETCH * size && list.length > 0 && (best === undefined || cls < best))
        best = cls;
    }
    return best;
  }

  private takeCached(cls: number): GPUBuffer {
    const list = this.free.get(cls)!;
    const buf = list.pop()!;
    if (list.length === 0) this.free.delete(cls);
    this.cachedBytes -= cls;
    return buf;
  }

  /**
   * Before creating `size` bytes that would grow the footprint: destroys cached buffers until it would not
   * (the smallest class that covers the excess alone, else the largest first). Not while recording: a buffer
   * an unsubmitted encoder may use is only destroyed after the submit, so nothing would be freed in time.
   */
  private makeRoom(size: number): void {
    if (!this.wouldGrow(size) || this.cachedBytes === 0 || this.isRecording()) return;
    let excess = this.liveBytes + this.cachedBytes + size - this.highWater;
    const classes = [...this.free.keys()].sort((a, b) => a - b);
    const one = classes.find((c) => c >= excess);
    for (const cls of one !== undefined ? [one] : classes.reverse()) {
      while (excess > 0 && this.free.has(cls)) {
        this.destroyLater(this.takeCached(cls));
        this.evicted++;
        excess -= cls;
      }
      if (excess <= 0) break;
    }
  }

  /** Returns a buffer from acquire() for reuse. Releasing twice, or a foreign buffer, throws. */
  release(buf: GPUBuffer): void {
    const size = this.live.get(buf);
    if (size === undefined)
      throw new PoolError(`release of a buffer the pool does not hold live: ${buf.label}`);
    this.live.delete(buf);
    this.liveBytes -= size;
    if (this.exact.delete(buf) || this.cachedBytes + size > this.maxCachedBytes) {
      this.destroyLater(buf);
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.cachedBytes += size;
  }

  /** True while `buf` is handed out. */
  holds(buf: GPUBuffer): boolean {
    return this.live.has(buf);
  }

  /** Destroys every cached (released) buffer; live ones are untouched. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) this.destroyLater(b);
    this.free.clear();
    this.cachedBytes = 0;
    this.flush();
  }

  /** Starts a new peak measurement from the current level. */
  resetPeak(): void {
    this.peakLiveBytes = this.liveBytes;
    this.peakAllocatedBytes = this.liveBytes + this.cachedBytes;
  }

  stats(): PoolStats {
    return {
      liveBytes: this.liveBytes,
      peakLiveBytes: this.peakLiveBytes,
      cachedBytes: this.cachedBytes,
      allocatedBytes: this.liveBytes + this.cachedBytes,
      peakAllocatedBytes: this.peakAllocatedBytes,
      liveBuffers: this.live.size,
      created: this.created,
      reused: this.reused,
      reusedLarger: this.reusedLarger,
      evicted: this.evicted,
    };
  }

  /** Destroys live and cached buffers alike: the end of the engine. */
  destroyAll(): void {
    for (const b of this.live.keys()) this.destroyLater(b);
    this.live.clear();
    this.exact.clear();
    this.liveBytes = 0;
    this.trim();
  }

  /** Destroys `buf` now, or once no unsubmitted encoder can still use it. Any buffer, pooled or not. */
  destroyLater(buf: GPUBuffer): void {
    if (this.isRecording()) this.doomed.push(buf);
    else buf.destroy();
  }

  /** Destroys what destroyLater() postponed, unless an encoder is still recording. */
  flush(): void {
    if (this.doomed.length === 0 || this.isRecording()) return;
    for (const b of this.doomed.splice(0)) b.destroy();
  }
}
