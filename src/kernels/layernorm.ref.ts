// Float64 CPU reference for LayerNorm over the last dimension with affine: GroupNorm with one group per
// row, the row's D entries as channels of a 1×1 image.
import { groupNormBackwardRef, groupNormRef } from './groupnorm.ref';
import { layerNormAsGroupNorm, type LayerNormShape } from './layernorm';

/** y[r, d] = (x[r, d] − mean_r)·rstd_r·gamma[d] + beta[d]. */
export function layerNormRef(x: Float64Array, gamma: Float64Array, beta: Float64Array, s: LayerNormShape) {
  return groupNormRef(x, gamma, beta, layerNormAsGroupNorm(s));
}

/** Gradients of Σ dy·layerNorm(x) with respect to x, gamma and beta. */
export function layerNormBackwardRef(
  dy: Float64Array,
  x: Float64Array,
  gamma: Float64Array,
  s: LayerNormShape,
) {
  return groupNormBackwardRef(dy, x, gamma, layerNormAsGroupNorm(s));
}
