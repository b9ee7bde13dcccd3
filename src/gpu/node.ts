// GPU entry point for Node: Dawn through the npm `webgpu` package. Backend choice and driver notes in README.
import { create, globals } from 'webgpu';
import { acquireGpu, type AcquireOptions, type Gpu } from './device';

let entry: GPU | undefined;

/** How often Dawn's binding checks for finished GPU work while a promise of it is pending (ms). */
export const DAWN_POLL_MS = 1;

const kPollThrottled = Symbol.for('lora2.dawnPollThrottled');

/** A function implemented in C++ (Dawn's binding creates its tick callbacks with N-API). */
function isNativeFunction(fn: unknown): boolean {
  return (
    typeof fn === 'function' &&
    fn.name === '' &&
    Function.prototype.toString.call(fn).includes('[native code]')
  );
}

/**
 * `timer` (default) or `spin` (LORA2_DAWN_POLL=spin: Dawn's own back-to-back ticks, for timing short kernels on a
 * real GPU, where a spare core is cheap and a millisecond per wait is not).
 */
export function dawnPolling(): 'timer' | 'spin' {
  return process.env.LORA2_DAWN_POLL === 'spin' ? 'spin' : 'timer';
}

/**
 * While any mapAsync/onSubmittedWorkDone promise is pending, Dawn's Node binding re-queues a tick with the global
 * `setImmediate` after every tick, which spins the JS thread at 100% until the GPU is done. On a software adapter
 * that thread takes CPU from the driver's shader threads (a batch-4 training step spent ~40% of the process's CPU
 * spinning). Ticks scheduled that way (a native callback, no arguments) go through `setTimeout(…, 1 ms)` instead:
 * each pending GPU wait can end up to a millisecond later, and the thread sleeps in between.
 */
export function throttleDawnPolling(): void {
  const g = globalThis as typeof globalThis & { [kPollThrottled]?: boolean };
  if (g[kPollThrottled]) return;
  const immediate = g.setImmediate;
  const throttled = function (this: unknown, callback: (...a: unknown[]) => void, ...args: unknown[]) {
    if (args.length === 0 && isNativeFunction(callback)) return setTimeout(callback, DAWN_POLL_MS);
    return Reflect.apply(immediate, this, [callback, ...args]) as ReturnType<typeof setImmediate>;
  };
  g.setImmediate = Object.assign(throttled, immediate) as unknown as typeof setImmediate;
  g[kPollThrottled] = true;
}

/**
 * Dawn's GPU object. LORA2_DAWN_BACKEND=vulkan|opengles picks the backend (default: Dawn's choice,
 * which is Vulkan over Mesa lavapipe on our CI machines).
 */
export function nodeGpuEntry(): GPU {
  if (!entry) {
    // WebGPU constants (GPUBufferUsage, GPUShaderStage, ...) are globals in browsers; Dawn ships them here.
    Object.assign(globalThis, globals);
    if (dawnPolling() === 'timer') throttleDawnPolling();
    const flags: string[] = [];
    const backend = process.env.LORA2_DAWN_BACKEND;
    if (backend) flags.push(`backend=${backend}`);
    if (backend === 'opengles') flags.push('adapter=compat');
    entry = create(flags);
  }
  return entry;
}

export function acquireNodeGpu(opts: AcquireOptions = {}): Promise<Gpu> {
  return acquireGpu(nodeGpuEntry(), opts);
}
