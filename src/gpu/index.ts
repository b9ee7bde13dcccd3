// Public surface of the GPU layer (environment-neutral; Node's entry point is imported from ./node directly).
export * from './device';
export * from './errors';
export { acquireBrowserGpu, browserGpuEntry } from './browser';
