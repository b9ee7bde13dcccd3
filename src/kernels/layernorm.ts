// LayerNorm over the last dimension of [rows, dim] with per-feature affine: the GroupNorm kernels with one
// group per row and the row's features as the channels of a 1×1 image.
import type { KernelContext } from './common';
import {
  segmentNormBackwardAffine,
  segmentNormBackwardInput,
  segmentNormForward,
  type GroupNormShape,
  type NormBackwardAffineBuffers,
  type NormBackwardInputBuffers,
  type NormForwardBuffers,
} from './groupnorm';

export interface LayerNormShape {
  rows: number;
  dim: number;
  eps: number;
}

export function layerNormAsGroupNorm(s: LayerNormShape): GroupNormShape {
  return { batch: s.rows, channels: s.dim, h: 1, w: 1, groups: 1, eps: s.eps };
}

/** out = LayerNorm(x)·gamma + beta; stats receives (mean, rstd) per row, rows·2 floats. */
export function layerNorm(ctx: KernelContext, args: LayerNormShape & NormForwardBuffers): Promise<void> {
  return segmentNormForward(ctx, 'layernorm', layerNormAsGroupNorm(args), args);
}

/** dx (+)= ∂(Σ dy·out)/∂x from the forward's stats. */
export function layerNormBackwardInput(
  ctx: KernelContext,
  args: LayerNormShape & NormBackwardInputBuffers,
): Promise<void> {
  return segmentNormBackwardInput(ctx, 'layernorm', layerNormAsGroupNorm(args), args);
}

/** dgamma[d] (+)= Σ_rows dy·x̂ and dbeta[d] (+)= Σ_rows dy. */
export function layerNormBackwardAffine(
  ctx: KernelContext,
  args: LayerNormShape & NormBackwardAffineBuffers,
): Promise<void> {
  return segmentNormBackwardAffine(ctx, 'layernorm', layerNormAsGroupNorm(args), args);
}
