// Every differentiable op the models are built from, one import: each wraps a kernel launcher and records
// a backward that calls the kernel's backward launchers.
export * from './ops/attention';
export * from './ops/concat';
export * from './ops/conv';
export * from './ops/elementwise';
export * from './ops/linear';
export * from './ops/loss';
export * from './ops/norm';
export * from './ops/reduce';
export * from './ops/shape';
export * from './ops/softmax';
export * from './ops/timestep';
export * from './ops/transpose';
export * from './ops/upsample';
