// LoRA² importance and rank (DESIGN.md §5): f(i) = e^{−λi}(1 − e^{−λ}) with λ = softplus(ρ); the effective
// rank is the k-quantile of that discretized exponential; a Gaussian prior on λ centred on the rate whose
// quantile is the prior rank r₀. All float64 on the CPU: one scalar per layer.

export function softplus(x: number): number {
  return x > 30 ? x : Math.log1p(Math.exp(x));
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Inverse of softplus, for initialising ρ from a target rate. */
export function softplusInverse(y: number): number {
  return y > 30 ? y : Math.log(Math.expm1(y));
}

/** f(i) for i = 0..n−1: decreasing, independent of D, sums to 1 − e^{−λn}. */
export function importance(rate: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const c = -Math.expm1(-rate); // 1 − e^{−λ}, accurate for small λ
  for (let i = 0; i < n; i++) out[i] = Math.exp(-rate * i) * c;
  return out;
}

/** ∂f(i)/∂λ = e^{−λi}·(e^{−λ} − i·(1 − e^{−λ})). */
export function importanceGradRate(rate: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const e1 = Math.exp(-rate);
  const c = -Math.expm1(-rate);
  for (let i = 0; i < n; i++) out[i] = Math.exp(-rate * i) * (e1 - i * c);
  return out;
}

/** Smallest D with Σ_{i<D} f(i) ≥ k, i.e. ⌈ln(1/(1−k))/λ⌉, clamped to [1, maxRank]. */
export function effectiveRank(rate: number, quantile: number, maxRank: number): number {
  const d = Math.ceil(Math.log(1 / (1 - quantile)) / rate - 1e-9);
  return Math.max(1, Math.min(maxRank, Number.isFinite(d) ? d : maxRank));
}

/** The rate whose k-quantile rank is r₀: μ = ln(1/(1−k))/r₀. */
export function priorRate(priorRank: number, quantile: number): number {
  return Math.log(1 / (1 - quantile)) / priorRank;
}

/** Rate at which the effective rank is exactly `rank` (the middle of its quantile bucket), for init. */
export function rateForRank(rank: number, quantile: number): number {
  return Math.log(1 / (1 - quantile)) / (rank - 0.5);
}

export interface RatePrior {
  /** μ: prior mean of λ. */
  mean: number;
  /** σ: prior width of λ. */
  sigma: number;
  /** N: number of training images (the prior is scaled by 1/N). */
  datasetSize: number;
}

/** (1/N)(λ − μ)²/(2σ²) and its derivative with respect to ρ (through λ = softplus(ρ)). */
export function ratePriorLoss(rho: number, prior: RatePrior): { loss: number; gradRho: number } {
  const lambda = softplus(rho);
  const z = (lambda - prior.mean) / prior.sigma;
  return {
    loss: (0.5 * z * z) / prior.datasetSize,
    gradRho: (z / prior.sigma / prior.datasetSize) * sigmoid(rho),
  };
}

/**
 * ∂L/∂ρ from ∂L/∂f (the gradient the GPU computes for the importance vector used in forward, length D):
 * Σ_i ∂L/∂f_i · ∂f_i/∂λ · σ(ρ).
 */
export function rateGradFromImportanceGrad(rho: number, gradF: ArrayLike<number>): number {
  const lambda = softplus(rho);
  const dfdl = importanceGradRate(lambda, gradF.length);
  let s = 0;
  for (let i = 0; i < gradF.length; i++) s += gradF[i] * dfdl[i];
  return s * sigmoid(rho);
}

/**
 * The scale-free variant of rateGradFromImportanceGrad. ∂f_i/∂λ = f_i·(e^{−λ}/(1 − e^{−λ}) − i): the first
 * term is the same for every position, so part of ∂L/∂λ only says "all of f larger" — which an underfit
 * adapter always wants, and which raising λ delivers by shrinking the rank (f(0) = 1 − e^{−λ}). With the
 * mean of that factor over the D positions taken out, the factor becomes (D − 1)/2 − i and the gradient
 * only compares later positions with earlier ones: more rank when the later ones would pay more.
 * The output scale stays with B (and s). Zero at D = 1 (nothing to compare): the rank prior decides there.
 */
export function scaleFreeRateGrad(rho: number, gradF: ArrayLike<number>): number {
  const lambda = softplus(rho);
  const D = gradF.length;
  const f = importance(lambda, D);
  let s = 0;
  for (let i = 0; i < D; i++) s += gradF[i] * f[i] * ((D - 1) / 2 - i);
  return s * sigmoid(rho);
}
