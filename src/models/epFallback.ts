// onnxruntime-web sessions that start on the WebGPU EP and move to WASM when that EP fails: at load (no adapter
// for it, an op it lacks) or later, while running (an op that fails on this adapter, its device lost). WASM runs
// every op, only slower, so a run that failed on WebGPU is retried there once and the sessions stay on WASM.

export type EpBackend = 'webgpu' | 'wasm';

/** Where the sessions run now, and why not on WebGPU when that was asked for. */
export interface EpStatus {
  backend: EpBackend;
  fallbackReason?: string;
}

/** The first line of an error's message. */
function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}

export class EpFallback<P> {
  private constructor(
    private parts: P,
    private state: EpStatus,
    private readonly open: (ep: EpBackend) => Promise<P>,
    private readonly release: (parts: P) => Promise<void>,
  ) {}

  /** Opens the parts on `want`; asked for WebGPU and that fails, on WASM with the reason kept. */
  static async start<P>(
    want: EpBackend,
    open: (ep: EpBackend) => Promise<P>,
    release: (parts: P) => Promise<void>,
  ): Promise<EpFallback<P>> {
    let fallbackReason: string | undefined;
    if (want === 'webgpu') {
      try {
        return new EpFallback(await open('webgpu'), { backend: 'webgpu' }, open, release);
      } catch (e) {
        fallbackReason = `onnxruntime-web's WebGPU EP did not start (${firstLine(e)})`;
      }
    }
    const status: EpStatus = fallbackReason ? { backend: 'wasm', fallbackReason } : { backend: 'wasm' };
    return new EpFallback(await open('wasm'), status, open, release);
  }

  get backend(): EpBackend {
    return this.state.backend;
  }

  get fallbackReason(): string | undefined {
    return this.state.fallbackReason;
  }

  /** Both, as a copy (the worker sends it to the page). */
  get status(): EpStatus {
    return { ...this.state };
  }

  /** The parts as they are now (for what does not run them: names, shapes). */
  get current(): P {
    return this.parts;
  }

  /**
   * Runs `fn` on the parts. On WebGPU a failure reopens them on WASM (releasing the WebGPU ones) and runs `fn`
   * there once; what fails on WASM is thrown as it is. `what` names the work in the reason ("decoding").
   */
  async run<T>(what: string, fn: (parts: P) => Promise<T>): Promise<T> {
    const used = this.parts;
    try {
      return await fn(used);
    } catch (e) {
      // Another run already moved the parts while this one failed: retry on what is there now.
      if (used !== this.parts) return fn(this.parts);
      if (this.state.backend !== 'webgpu') throw e;
      // Runs that fail together share one move.
      this.moving ??= this.moveToWasm(
        used,
        `onnxruntime-web's WebGPU EP failed while ${what} (${firstLine(e)})`,
      );
      return fn(await this.moving);
    }
  }

  private moving: Promise<P> | undefined;

  private async moveToWasm(used: P, reason: string): Promise<P> {
    try {
      const wasm = await this.open('wasm');
      this.parts = wasm;
      this.state = { backend: 'wasm', fallbackReason: reason };
      await this.release(used).catch(() => undefined);
      return wasm;
    } finally {
      this.moving = undefined;
    }
  }

  async dispose(): Promise<void> {
    await this.release(this.parts);
  }
}
