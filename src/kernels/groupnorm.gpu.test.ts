// GroupNorm: reference backward against finite differences, then the WGSL kernels against the reference on
// odd shapes, a 1×1-ish image (channel-tiled affine gradient) and a large group (32 channels × 64×64).
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, upload } from './common';
import { groupNorm, groupNormBackwardAffine, groupNormBackwardInput, type GroupNormShape } from './groupnorm';
import { checkOnGpu, checkReferenceBackward } from './norm.testing';

describe('groupnorm reference backward', () => {
  it.each([
    { batch: 2, channels: 4, h: 3, w: 2, groups: 2, eps: 1e-5 },
    { batch: 1, channels: 3, h: 2, w: 3, groups: 1, eps: 1e-3 },
  ])('matches finite differences for %j', (s) => checkReferenceBackward(s, 5));
});

describe('groupnorm on the GPU', () => {
  const shapes: GroupNormShape[] = [
    { batch: 2, channels: 6, h: 9, w: 7, groups: 3, eps: 1e-5 },
    { batch: 1, channels: 32, h: 9, w: 7, groups: 8, eps: 1e-6 },
    { batch: 3, channels: 10, h: 5, w: 3, groups: 5, eps: 1e-5 },
    { batch: 1, channels: 64, h: 64, w: 64, groups: 2, eps: 1e-5 },
  ];
  it.each(shapes)('forward, dx, dgamma, dbeta match the reference for %j', (s) =>
    checkOnGpu(
      'groupnorm',
      s,
      {
        forward: (ctx, b) => groupNorm(ctx, { ...s, ...b }),
        backwardInput: (ctx, b) => groupNormBackwardInput(ctx, { ...s, ...b }),
        backwardAffine: (ctx, b) => groupNormBackwardAffine(ctx, { ...s, ...b }),
      },
      17,
    ),
  );

  it('rejects channels that do not divide into groups', async () => {
    const ctx = kernelContext(await testGpu());
    const b = upload(ctx, 'groupnorm.test.tiny', new Float32Array(4));
    const s = { batch: 1, channels: 6, h: 1, w: 1, groups: 4, eps: 1e-5 };
    await expect(groupNorm(ctx, { ...s, x: b, gamma: b, beta: b, out: b, stats: b })).rejects.toThrow(
      /groups/,
    );
    b.destroy();
  });
});
