// How the frozen UNet weights are stored on the GPU: the modes, in a module of their own so the studio's page can
// name them without loading the model code.

/**
 * How the frozen weights of linear maps and convolutions are stored on the GPU (everything else, and all
 * computation, stays f32; the kernels read f16 weights as f32). `auto`: f16 when the file stores them in 16
 * bits (F16, or BF16 within f16's range), so an F16 checkpoint takes half the memory of f32 with the same
 * values; `f16`: also rounds F32 files (half the memory, weights rounded to 11 significant bits); `f32`: always
 * widened.
 */
export const WEIGHT_STORAGES = ['auto', 'f16', 'f32'] as const;
export type WeightStorage = (typeof WEIGHT_STORAGES)[number];
