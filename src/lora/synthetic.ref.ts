// Float64 CPU reference of trainSynthetic for LoRA² (DESIGN.md §5 written out by hand): the same random
// streams, forward, gradients, both priors, AdamW, Adam on ρ, rank controller and capacity growth as
// Lora2Adapter, so a GPU run can be compared step by step over many steps (the golden covers one).
import { adamwRef } from '../kernels/adamw.ref';
import { Rng } from '../models/rng';
import type { Lora2Settings } from './adapter';
import { planCapacity } from './capacity';
import {
  effectiveRank,
  importance,
  priorRate,
  rateForRank,
  rateGradFromImportanceGrad,
  scaleFreeRateGrad,
  ratePriorLoss,
  softplus,
  softplusInverse,
} from './importance';
import {
  relativeFitError,
  SYNTHETIC_BATCH,
  SYNTHETIC_DIM,
  SYNTHETIC_SEED,
  syntheticLayers,
  type SyntheticLayerResult,
  type SyntheticOptions,
  type SyntheticStep,
} from './synthetic';

interface RefAdapter {
  capacity: number;
  rank: number;
  rho: number;
  rhoM: number;
  rhoV: number;
  /** [capacity, dim] */
  A: Float64Array;
  /** Bᵀ: [capacity, dim] */
  Bt: Float64Array;
  mA: Float64Array;
  vA: Float64Array;
  mB: Float64Array;
  vB: Float64Array;
  rng: Rng;
}

export interface SyntheticRefResult {
  trace: SyntheticStep[];
  layers: Omit<SyntheticLayerResult, 'params' | 'bytes'>[];
}

function policy(s: Lora2Settings) {
  return { chunk: s.chunk, releaseChunks: s.releaseChunks, maxRank: s.maxRank };
}

function createRef(s: Lora2Settings, seed: number): RefAdapter {
  const n = SYNTHETIC_DIM;
  const rng = new Rng(seed);
  const rank = Math.min(s.initialRank, s.maxRank);
  const capacity = planCapacity(rank, 0, policy(s));
  const zeros = () => new Float64Array(capacity * n);
  return {
    capacity,
    rank,
    rho: softplusInverse(rateForRank(rank, s.quantile)),
    rhoM: 0,
    rhoV: 0,
    A: Float64Array.from(rng.normals(capacity * n, 1 / Math.sqrt(n))),
    Bt: zeros(),
    mA: zeros(),
    vA: zeros(),
    mB: zeros(),
    vB: zeros(),
    rng,
  };
}

/** Keeps the first min(old, new) positions; new A rows come from the adapter's RNG, everything else is 0. */
function resizeRef(a: RefAdapter, capacity: number): void {
  const n = SYNTHETIC_DIM;
  const keep = Math.min(capacity, a.capacity);
  const grown = capacity - keep;
  const fresh = grown > 0 ? a.rng.normals(grown * n, 1 / Math.sqrt(n)) : undefined;
  const remake = (old: Float64Array, rows?: Float32Array) => {
    const t = new Float64Array(capacity * n);
    t.set(old.subarray(0, keep * n));
    if (rows) t.set(rows, keep * n);
    return t;
  };
  a.A = remake(a.A, fresh);
  a.Bt = remake(a.Bt);
  a.mA = remake(a.mA);
  a.vA = remake(a.vA);
  a.mB = remake(a.mB);
  a.vB = remake(a.vB);
  a.capacity = capacity;
}

/**
 * One layer's forward and backward for inputs x [batch, dim] against ΔW* = W − W0: returns the MSE and
 * fills gA, gBt (first D rows) and ∂L/∂f (length D).
 */
function layerStep(
  a: RefAdapter,
  s: Lora2Settings,
  x: Float32Array,
  dW: Float64Array,
  gA: Float64Array,
  gBt: Float64Array,
): { mse: number; gradF: number[] } {
  const n = SYNTHETIC_DIM;
  const b = SYNTHETIC_BATCH;
  const D = a.rank;
  const sf = Array.from(importance(softplus(a.rho), D), (v) => v * s.scale);
  const h = new Float64Array(b * D);
  const r = new Float64Array(b * n);
  let mse = 0;
  for (let k = 0; k < b; k++) {
    for (let i = 0; i < D; i++) {
      let acc = 0;
      for (let j = 0; j < n; j++) acc += a.A[i * n + j] * x[k * n + j];
      h[k * D + i] = acc;
    }
    for (let o = 0; o < n; o++) {
      let acc = 0;
      for (let j = 0; j < n; j++) acc -= dW[o * n + j] * x[k * n + j];
      for (let i = 0; i < D; i++) acc += h[k * D + i] * sf[i] * a.Bt[i * n + o];
      r[k * n + o] = acc;
      mse += acc * acc;
    }
  }
  const scale = 2 / (b * n);
  const gradSf = new Array<number>(D).fill(0);
  for (let k = 0; k < b; k++)
    for (let i = 0; i < D; i++) {
      // dL/dg_ki, g = h ⊙ s·f
      let dg = 0;
      for (let o = 0; o < n; o++) dg += r[k * n + o] * a.Bt[i * n + o];
      dg *= scale;
      const g = h[k * D + i] * sf[i];
      for (let o = 0; o < n; o++) gBt[i * n + o] += g * r[k * n + o] * scale;
      gradSf[i] += dg * h[k * D + i];
      const dh = dg * sf[i];
      for (let j = 0; j < n; j++) gA[i * n + j] += dh * x[k * n + j];
    }
  return { mse: mse / (b * n), gradF: gradSf.map((v) => v * s.scale) };
}

function optimizerStepRef(
  a: RefAdapter,
  s: Lora2Settings,
  t: number,
  gA: Float64Array,
  gBt: Float64Array,
  gradF: number[],
): void {
  // The weight prior: B's in the gradient; A's too, or as AdamW decay at the same lr (weightPriorDecoupledA).
  const wp = s.weightPrior ? 1 / (s.datasetSize * s.weightSigma ** 2) : 0;
  const coupledA = s.weightPriorDecoupledA ? 0 : wp;
  for (let i = 0; i < gA.length; i++) gA[i] += coupledA * a.A[i];
  for (let i = 0; i < gBt.length; i++) gBt[i] += wp * a.Bt[i];
  const hyper = { lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay };
  adamwRef({ param: a.A, m: a.mA, v: a.vA }, gA, { ...hyper, weightDecay: s.weightDecay + wp - coupledA }, t);
  adamwRef({ param: a.Bt, m: a.mB, v: a.vB }, gBt, { ...hyper, lr: s.lrB ?? s.lr }, t);
  if (t <= s.rateWarmup) return;
  let g = s.scaleFreeRate ? scaleFreeRateGrad(a.rho, gradF) : rateGradFromImportanceGrad(a.rho, gradF);
  if (s.rankPrior)
    g += ratePriorLoss(a.rho, {
      mean: priorRate(s.priorRank, s.quantile),
      sigma: s.rateSigma,
      datasetSize: s.datasetSize,
    }).gradRho;
  a.rhoM = s.beta1 * a.rhoM + (1 - s.beta1) * g;
  a.rhoV = s.beta2 * a.rhoV + (1 - s.beta2) * g * g;
  const mHat = a.rhoM / (1 - s.beta1 ** (t - s.rateWarmup));
  const vHat = a.rhoV / (1 - s.beta2 ** (t - s.rateWarmup));
  a.rho -= (s.rateLr * mHat) / (Math.sqrt(vHat) + s.eps);
  a.rank = effectiveRank(softplus(a.rho), s.quantile, s.maxRank);
  const cap = planCapacity(a.rank, a.capacity, policy(s));
  if (cap !== a.capacity) resizeRef(a, cap);
}

/** trainSynthetic for LoRA² in float64 (fixed-rank settings are not modelled). */
export function trainSyntheticRef(s: Lora2Settings, opts: SyntheticOptions): SyntheticRefResult {
  if (s.fixedRank !== undefined) throw new Error('trainSyntheticRef: LoRA² only');
  const n = SYNTHETIC_DIM;
  const rng = new Rng(opts.seed ?? SYNTHETIC_SEED);
  const layers = syntheticLayers(rng);
  const dWs = layers.map((l) => Float64Array.from(l.w, (v, i) => v - l.w0[i]));
  const adapters = layers.map((_, l) => createRef(s, l));
  const trace: SyntheticStep[] = [];
  let losses: number[] = [];
  for (let t = 1; t <= opts.steps; t++) {
    const steps = adapters.map((a, l) => {
      const gA = new Float64Array(a.capacity * n);
      const gBt = new Float64Array(a.capacity * n);
      const { mse, gradF } = layerStep(a, s, rng.normals(SYNTHETIC_BATCH * n), dWs[l], gA, gBt);
      return { mse, gradF, gA, gBt };
    });
    adapters.forEach((a, l) => optimizerStepRef(a, s, t, steps[l].gA, steps[l].gBt, steps[l].gradF));
    losses = steps.map((st) => st.mse);
    if (opts.trace)
      trace.push({ losses, rates: adapters.map((a) => softplus(a.rho)), ranks: adapters.map((a) => a.rank) });
  }
  return {
    trace,
    layers: adapters.map((a, l) => {
      const D = a.rank;
      const f = importance(softplus(a.rho), D);
      const up = new Float64Array(n * D);
      for (let i = 0; i < D; i++)
        for (let o = 0; o < n; o++) up[o * D + i] = a.Bt[i * n + o] * f[i] * s.scale;
      return {
        trueRank: layers[l].trueRank,
        rank: D,
        capacity: a.capacity,
        rate: softplus(a.rho),
        loss: losses[l],
        fitError: relativeFitError(layers[l], { up, down: a.A.subarray(0, D * n), rank: D }),
      };
    }),
  };
}
