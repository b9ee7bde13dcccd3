// Float64 CPU reference for GroupNorm (NCHW, per-channel affine, biased variance as in PyTorch); LayerNorm's
// reference is this with one group and a 1×1 image.
import type { GroupNormShape } from './groupnorm';

/** Elements of group g of sample n are contiguous in NCHW: channels g·C/G … (g+1)·C/G − 1, all pixels. */
function segments(s: GroupNormShape) {
  const hw = s.h * s.w;
  const cpg = s.channels / s.groups;
  return { hw, cpg, len: cpg * hw, count: s.batch * s.groups };
}

/** y = (x − mean)·rstd·gamma[c] + beta[c]; mean and rstd per (n, g), rstd = 1/√(var + eps). */
export function groupNormRef(
  x: Float64Array,
  gamma: Float64Array,
  beta: Float64Array,
  s: GroupNormShape,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const { hw, cpg, len, count } = segments(s);
  const y = new Float64Array(x.length);
  const mean = new Float64Array(count);
  const rstd = new Float64Array(count);
  for (let seg = 0; seg < count; seg++) {
    const base = seg * len;
    let sum = 0;
    for (let i = 0; i < len; i++) sum += x[base + i];
    const m = sum / len;
    let sq = 0;
    for (let i = 0; i < len; i++) sq += (x[base + i] - m) ** 2;
    const r = 1 / Math.sqrt(sq / len + s.eps);
    mean[seg] = m;
    rstd[seg] = r;
    const c0 = (seg % s.groups) * cpg;
    for (let i = 0; i < len; i++) {
      const c = c0 + Math.floor(i / hw);
      y[base + i] = (x[base + i] - m) * r * gamma[c] + beta[c];
    }
  }
  return { y, mean, rstd };
}

/** Gradients of Σ dy·groupNorm(x) with respect to x, gamma and beta. */
export function groupNormBackwardRef(
  dy: Float64Array,
  x: Float64Array,
  gamma: Float64Array,
  s: GroupNormShape,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { hw, cpg, len, count } = segments(s);
  const { mean, rstd } = groupNormRef(x, gamma, new Float64Array(s.channels), s);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(s.channels);
  const dbeta = new Float64Array(s.channels);
  for (let seg = 0; seg < count; seg++) {
    const base = seg * len;
    const c0 = (seg % s.groups) * cpg;
    const xhat = (i: number) => (x[base + i] - mean[seg]) * rstd[seg];
    const g = (i: number) => dy[base + i] * gamma[c0 + Math.floor(i / hw)];
    let meanG = 0;
    let meanGX = 0;
    for (let i = 0; i < len; i++) {
      meanG += g(i) / len;
      meanGX += (g(i) * xhat(i)) / len;
      const c = c0 + Math.floor(i / hw);
      dgamma[c] += dy[base + i] * xhat(i);
      dbeta[c] += dy[base + i];
    }
    for (let i = 0; i < len; i++) dx[base + i] = rstd[seg] * (g(i) - meanG - xhat(i) * meanGX);
  }
  return { dx, dgamma, dbeta };
}
