// Normalisation ops with autograd: GroupNorm (NCHW) and LayerNorm (last dim), per-channel affine. The
// (mean, rstd) statistics are kept for the backward; frozen gamma/beta launch no affine-gradient kernel.
import {
  groupNorm as groupNormKernel,
  groupNormBackwardAffine,
  groupNormBackwardInput,
  type GroupNormShape,
  type NormBackwardAffineBuffers,
  type NormBackwardInputBuffers,
  type NormForwardBuffers,
} from '../../kernels/groupnorm';
import {
  layerNorm as layerNormKernel,
  layerNormBackwardAffine,
  layerNormBackwardInput,
  type LayerNormShape,
} from '../../kernels/layernorm';
import type { KernelContext } from '../../kernels/common';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';
import { expectDType, expectShape, output } from './util';

type Kernels<S> = {
  forward: (ctx: KernelContext, a: S & NormForwardBuffers) => Promise<void>;
  input: (ctx: KernelContext, a: S & NormBackwardInputBuffers) => Promise<void>;
  affine: (ctx: KernelContext, a: S & NormBackwardAffineBuffers) => Promise<void>;
};

async function normOp<S extends object>(
  op: string,
  k: Kernels<S>,
  s: S,
  segments: number,
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
): Promise<Tensor> {
  const e = x.engine;
  const y = output(x, x.shape, op);
  const stats = e.empty([segments, 2], { label: `${op}.stats` });
  await k.forward(e.ctx, {
    ...s,
    x: x.buffer,
    gamma: gamma.buffer,
    beta: beta.buffer,
    out: y.buffer,
    stats: stats.buffer,
  });
  record({
    name: op,
    inputs: [x, gamma, beta],
    outputs: [y],
    saved: [x, gamma, stats],
    backward: async (g) => {
      const dy = g.grad()!.buffer;
      await g.into(0, (dx, accumulate) =>
        k.input(e.ctx, {
          ...s,
          dy,
          x: x.buffer,
          gamma: gamma.buffer,
          stats: stats.buffer,
          dx: dx.buffer,
          accumulate,
        }),
      );
      // One kernel writes dgamma and dbeta under one accumulate flag.
      await g.jointly([1, 2], ([dgamma, dbeta], accumulate) =>
        k.affine(e.ctx, {
          ...s,
          dy,
          x: x.buffer,
          stats: stats.buffer,
          dgamma: dgamma.buffer,
          dbeta: dbeta.buffer,
          accumulate,
        }),
      );
    },
  });
  stats.release();
  return y;
}

const GROUP_NORM: Kernels<GroupNormShape> = {
  forward: groupNormKernel,
  input: groupNormBackwardInput,
  affine: groupNormBackwardAffine,
};
const LAYER_NORM: Kernels<LayerNormShape> = {
  forward: layerNormKernel,
  input: layerNormBackwardInput,
  affine: layerNormBackwardAffine,
};

export interface GroupNormOptions {
  groups: number;
  /** Default 1e-5 (PyTorch's). */
  eps?: number;
}

/** GroupNorm over x [B, C, ...spatial]; gamma, beta [C]. */
export async function groupNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  opts: GroupNormOptions,
): Promise<Tensor> {
  const { groups, eps = 1e-5 } = opts;
  expectDType('groupNorm', [x, gamma, beta]);
  if (x.rank < 2) throw new Error(`groupNorm: ${x} needs [B, C, ...]`);
  const [batch, channels] = x.shape;
  if (channels % groups !== 0)
    throw new Error(`groupNorm: ${channels} channels do not split into ${groups} groups`);
  expectShape('groupNorm', gamma, [channels]);
  expectShape('groupNorm', beta, [channels]);
  const hw = x.size / (batch * channels);
  const s: GroupNormShape = { batch, channels, h: hw, w: 1, groups, eps };
  return normOp('groupNorm', GROUP_NORM, s, batch * groups, x, gamma, beta);
}

/** LayerNorm over the last dim of x [..., dim]; gamma, beta [dim]; eps defaults to 1e-5 (PyTorch's). */
export async function layerNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  opts: { eps?: number } = {},
): Promise<Tensor> {
  const eps = opts.eps ?? 1e-5;
  expectDType('layerNorm', [x, gamma, beta]);
  const dim = x.shape[x.rank - 1];
  expectShape('layerNorm', gamma, [dim]);
  expectShape('layerNorm', beta, [dim]);
  const rows = x.size / dim;
  return normOp('layerNorm', LAYER_NORM, { rows, dim, eps }, rows, x, gamma, beta);
}
