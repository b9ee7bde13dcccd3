// Every differentiable op the models are built from, one import: each wraps a kernel launcher and records
// a backward that calls the kernel's backward launchers.
export * from './ops/attention';
export * from './ops/conv';
export * from './ops/elementwise';
export * from './ops/reduce';
export * from './ops/shape';
export * from './ops/transpose';
