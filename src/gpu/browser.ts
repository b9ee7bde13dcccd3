// GPU entry point for the page and for dedicated workers: navigator.gpu, or a typed error saying why not.
import { acquireGpu, type AcquireOptions, type Gpu } from './device';
import { WebGpuUnavailableError } from './errors';

export function browserGpuEntry(): GPU | undefined {
  const nav = (globalThis as { navigator?: Navigator }).navigator;
  return nav && 'gpu' in nav ? (nav.gpu as GPU) : undefined;
}

export async function acquireBrowserGpu(opts: AcquireOptions = {}): Promise<Gpu> {
  const entry = browserGpuEntry();
  if (!entry) throw new WebGpuUnavailableError('no-navigator-gpu');
  return acquireGpu(entry, opts);
}
