// LayerNorm: reference backward against finite differences, then the WGSL kernels against the reference
// for single and many rows, feature sizes below and above the workgroup.
import { describe, it } from 'vitest';
import {
  layerNorm,
  layerNormAsGroupNorm,
  layerNormBackwardAffine,
  layerNormBackwardInput,
  type LayerNormShape,
} from './layernorm';
import { checkOnGpu, checkReferenceBackward } from './norm.testing';

describe('layernorm reference backward', () => {
  it('matches finite differences', () =>
    checkReferenceBackward(layerNormAsGroupNorm({ rows: 3, dim: 5, eps: 1e-5 }), 3));
});

describe('layernorm on the GPU', () => {
  const shapes: LayerNormShape[] = [
    { rows: 1, dim: 17, eps: 1e-5 },
    { rows: 33, dim: 320, eps: 1e-5 },
    { rows: 33, dim: 17, eps: 1e-6 },
    { rows: 5, dim: 1031, eps: 1e-5 },
  ];
  it.each(shapes)('forward, dx, dgamma, dbeta match the reference for %j', (s) =>
    checkOnGpu(
      'layernorm',
      layerNormAsGroupNorm(s),
      {
        forward: (ctx, b) => layerNorm(ctx, { ...s, ...b }),
        backwardInput: (ctx, b) => layerNormBackwardInput(ctx, { ...s, ...b }),
        backwardAffine: (ctx, b) => layerNormBackwardAffine(ctx, { ...s, ...b }),
      },
      29,
    ),
  );
});
