// Diffusion schedules as diffusers defines them: the DDPM training noise schedule (linear / scaled_linear
// betas, epsilon or v prediction) and the DDIM and Euler-ancestral samplers with classifier-free guidance.
// Latents are small (≤ 4·64·64 per image), so scheduler arithmetic runs on the CPU in float64.
import type { Rng } from './rng';

export type BetaSchedule = 'linear' | 'scaled_linear';
export type PredictionType = 'epsilon' | 'v_prediction';
/** How a sampler spreads its steps over the training timesteps (diffusers' `timestep_spacing`). */
export type TimestepSpacing = 'leading' | 'linspace' | 'trailing';
const SPACINGS: readonly TimestepSpacing[] = ['leading', 'linspace', 'trailing'];

export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  prediction_type: PredictionType;
  /** DDIM: timestep offset added to "leading" spacing (SD 1.5 uses 1). */
  steps_offset: number;
  /** DDIM: whether ᾱ before t=0 is 1 (true) or ᾱ₀ (false, SD 1.5). */
  set_alpha_to_one: boolean;
  clip_sample: boolean;
  /** With clip_sample: x₀ is clipped to ±this (diffusers' default 1). */
  clip_sample_range: number;
  /**
   * The sampling steps' spacing. Absent, each sampler takes its diffusers default: "leading" for DDIM, "linspace"
   * for Euler ancestral (SD 1.5's scheduler_config.json has no such key); present, both follow it, as diffusers'
   * `Scheduler.from_config` does.
   */
  timestep_spacing?: TimestepSpacing;
}

export const DEFAULT_SCHEDULER: SchedulerConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  prediction_type: 'epsilon',
  steps_offset: 1,
  set_alpha_to_one: false,
  clip_sample: false,
  clip_sample_range: 1,
};

/** Reads a diffusers scheduler_config.json, filling defaults and rejecting what we don't implement. */
export function parseSchedulerConfig(json: Record<string, unknown>): SchedulerConfig {
  const c = { ...DEFAULT_SCHEDULER, ...json } as SchedulerConfig & Record<string, unknown>;
  if (c.beta_schedule !== 'linear' && c.beta_schedule !== 'scaled_linear') {
    throw new Error(
      `scheduler_config.json: beta_schedule "${String(c.beta_schedule)}" is not supported (linear, scaled_linear)`,
    );
  }
  if (c.prediction_type !== 'epsilon' && c.prediction_type !== 'v_prediction') {
    throw new Error(
      `scheduler_config.json: prediction_type "${String(c.prediction_type)}" is not supported (epsilon, v_prediction)`,
    );
  }
  if (!Number.isInteger(c.num_train_timesteps) || c.num_train_timesteps < 2) {
    throw new Error('scheduler_config.json: num_train_timesteps must be an integer ≥ 2');
  }
  if (
    typeof c.clip_sample_range !== 'number' ||
    !(c.clip_sample_range > 0) ||
    !isFinite(c.clip_sample_range)
  ) {
    throw new Error(
      `scheduler_config.json: clip_sample_range must be a positive number (got ${JSON.stringify(c.clip_sample_range)})`,
    );
  }
  if (c.timestep_spacing !== undefined && !SPACINGS.includes(c.timestep_spacing)) {
    throw new Error(
      `scheduler_config.json: timestep_spacing "${String(c.timestep_spacing)}" is not supported (${SPACINGS.join(', ')})`,
    );
  }
  // Keys that change the schedule or the update itself: ignoring them would sample a different model silently.
  if (c.rescale_betas_zero_snr === true) {
    throw new Error(
      'scheduler_config.json: rescale_betas_zero_snr (a zero-terminal-SNR schedule) is not supported',
    );
  }
  if (c.thresholding === true) {
    throw new Error('scheduler_config.json: thresholding (dynamic x₀ thresholding) is not supported');
  }
  return c;
}

/**
 * The timesteps a sampler visits, noisiest first, as diffusers' `set_timesteps` spreads them: "leading" takes
 * multiples of ⌊T/n⌋ plus steps_offset (so it never visits T−1), "trailing" counts down from T−1 in strides of
 * T/n, "linspace" spans 0…T−1 evenly (fractional: Euler interpolates σ between them; DDIM rounds).
 */
export function spacedTimesteps(config: SchedulerConfig, n: number, spacing: TimestepSpacing): number[] {
  const T = config.num_train_timesteps;
  if (spacing === 'leading') {
    const ratio = Math.floor(T / n);
    return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + config.steps_offset);
  }
  if (spacing === 'trailing') {
    // np.round(np.arange(T, 0, -T/n)) - 1: numpy rounds halves to even.
    return Array.from({ length: n }, (_, i) => roundHalfEven(T - (i * T) / n) - 1);
  }
  return Array.from({ length: n }, (_, i) => (n === 1 ? 0 : ((T - 1) * (n - 1 - i)) / (n - 1)));
}

/** numpy's round: halves go to the even neighbour. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function betas(c: SchedulerConfig): Float64Array {
  const n = c.num_train_timesteps;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const f = i / (n - 1);
    out[i] =
      c.beta_schedule === 'linear'
        ? c.beta_start + f * (c.beta_end - c.beta_start)
        : (Math.sqrt(c.beta_start) + f * (Math.sqrt(c.beta_end) - Math.sqrt(c.beta_start))) ** 2;
  }
  return out;
}

export function alphasCumprod(c: SchedulerConfig): Float64Array {
  const b = betas(c);
  const out = new Float64Array(b.length);
  let p = 1;
  for (let i = 0; i < b.length; i++) out[i] = p *= 1 - b[i];
  return out;
}

/** The training side: noising x₀ at timestep t and the regression target for the UNet. */
export class NoiseSchedule {
  readonly alphasCumprod: Float64Array;
  constructor(readonly config: SchedulerConfig) {
    this.alphasCumprod = alphasCumprod(config);
  }

  /** x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, per batch item (x0 and noise are [batch, per-item] flattened). */
  addNoise(x0: Float32Array, noise: Float32Array, timesteps: ArrayLike<number>): Float32Array {
    const per = x0.length / timesteps.length;
    const out = new Float32Array(x0.length);
    for (let b = 0; b < timesteps.length; b++) {
      const a = this.alphasCumprod[timesteps[b]];
      const sa = Math.sqrt(a);
      const sb = Math.sqrt(1 - a);
      for (let i = b * per; i < (b + 1) * per; i++) out[i] = sa * x0[i] + sb * noise[i];
    }
    return out;
  }

  /** What the UNet should predict: ε, or v = √ᾱ·ε − √(1−ᾱ)·x₀. */
  target(x0: Float32Array, noise: Float32Array, timesteps: ArrayLike<number>): Float32Array {
    if (this.config.prediction_type === 'epsilon') return noise.slice();
    const per = x0.length / timesteps.length;
    const out = new Float32Array(x0.length);
    for (let b = 0; b < timesteps.length; b++) {
      const a = this.alphasCumprod[timesteps[b]];
      for (let i = b * per; i < (b + 1) * per; i++)
        out[i] = Math.sqrt(a) * noise[i] - Math.sqrt(1 - a) * x0[i];
    }
    return out;
  }

  sampleTimesteps(rng: Rng, batch: number): Uint32Array {
    return Uint32Array.from({ length: batch }, () => rng.int(this.config.num_train_timesteps));
  }
}

/** Classifier-free guidance: uncond + g·(cond − uncond). */
export function guide(uncond: Float32Array, cond: Float32Array, guidance: number): Float32Array {
  const out = new Float32Array(cond.length);
  for (let i = 0; i < out.length; i++) out[i] = uncond[i] + guidance * (cond[i] - uncond[i]);
  return out;
}

/**
 * The guidance at timestep t: `guidance`, or 1 (the conditional prediction alone) above `below` when a guidance
 * interval is set. Guidance at the noisiest steps mostly pushes the layout and colours off the training
 * distribution (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval").
 */
export function guidanceAt(t: number, guidance: number, below?: number): number {
  return below === undefined || t <= below ? guidance : 1;
}

/** A sampler: the timesteps to visit, how to scale the model input, and one update step. */
export interface Sampler {
  readonly timesteps: number[];
  /** Scale of the initial noise (1 for DDIM; √(σ_max²+1) for Euler). */
  readonly initNoiseSigma: number;
  scaleModelInput(x: Float32Array, stepIndex: number): Float32Array;
  step(modelOutput: Float32Array, stepIndex: number, x: Float32Array, rng: Rng): Float32Array;
}

/** v clipped to [−range, range] (diffusers' clip_sample). */
function clamp(v: number, range: number): number {
  return Math.max(-range, Math.min(range, v));
}

function predictX0AndEps(
  pred: PredictionType,
  x: number,
  out: number,
  a: number,
): { x0: number; eps: number } {
  if (pred === 'epsilon') return { x0: (x - Math.sqrt(1 - a) * out) / Math.sqrt(a), eps: out };
  return { x0: Math.sqrt(a) * x - Math.sqrt(1 - a) * out, eps: Math.sqrt(a) * out + Math.sqrt(1 - a) * x };
}

export interface SamplerOptions {
  /**
   * With clip_sample: take ε from the clipped x₀ (ε = (x − √ᾱ·x₀)/√(1−ᾱ)), so the step stays on the line between
   * x and the x₀ it clipped to. diffusers' DDIM keeps the model's ε (the default here too); under strong guidance
   * that kept ε carries the part of x₀ the clip removed back into x, and a pixel-space model's samples drift to
   * full-bleed colour. Euler ancestral, which diffusers never clips, clips x₀ with it and takes its derivative
   * from the clipped x₀ (the same ε). A model folder turns it on in sampling.json ("recomputeEpsilon").
   */
  recomputeEpsilon?: boolean;
}

/** DDIM with η = 0 (by default "leading" timestep spacing, as SD 1.5's pipelines use it). */
export class DdimSampler implements Sampler {
  readonly timesteps: number[];
  readonly initNoiseSigma = 1;
  private readonly ac: Float64Array;
  private readonly stepRatio: number;
  private readonly recomputeEpsilon: boolean;

  constructor(
    readonly config: SchedulerConfig,
    numSteps: number,
    opts: SamplerOptions = {},
  ) {
    this.recomputeEpsilon = opts.recomputeEpsilon ?? false;
    if (numSteps < 1 || numSteps > config.num_train_timesteps)
      throw new Error(`DDIM steps must be 1..${config.num_train_timesteps}`);
    this.ac = alphasCumprod(config);
    // diffusers steps back by ⌊T/n⌋ whatever the spacing; below 0 it uses the final ᾱ.
    this.stepRatio = Math.floor(config.num_train_timesteps / numSteps);
    this.timesteps = spacedTimesteps(config, numSteps, config.timestep_spacing ?? 'leading').map((t) =>
      Math.min(config.num_train_timesteps - 1, roundHalfEven(t)),
    );
  }

  scaleModelInput(x: Float32Array): Float32Array {
    return x;
  }

  step(modelOutput: Float32Array, stepIndex: number, x: Float32Array): Float32Array {
    const t = this.timesteps[stepIndex];
    const prev = t - this.stepRatio;
    const a = this.ac[t];
    const aPrev = prev >= 0 ? this.ac[prev] : this.config.set_alpha_to_one ? 1 : this.ac[0];
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const { x0: raw, eps: rawEps } = predictX0AndEps(this.config.prediction_type, x[i], modelOutput[i], a);
      // As diffusers' DDIMScheduler: x₀ is clipped, ε is kept, unless recomputeEpsilon (see SamplerOptions).
      const x0 = this.config.clip_sample ? clamp(raw, this.config.clip_sample_range) : raw;
      const eps =
        this.recomputeEpsilon && x0 !== raw ? (x[i] - Math.sqrt(a) * x0) / Math.sqrt(1 - a) : rawEps;
      out[i] = Math.sqrt(aPrev) * x0 + Math.sqrt(1 - aPrev) * eps;
    }
    return out;
  }
}

/** Euler ancestral (by default "linspace" spacing, as diffusers' EulerAncestralDiscreteScheduler). */
export class EulerAncestralSampler implements Sampler {
  readonly timesteps: number[];
  readonly sigmas: number[];
  readonly initNoiseSigma: number;
  /** clip_sample with recomputeEpsilon: x₀ clipped, the derivative taken from it (diffusers never clips here). */
  private readonly clip: boolean;

  constructor(
    readonly config: SchedulerConfig,
    numSteps: number,
    opts: SamplerOptions = {},
  ) {
    if (numSteps < 1) throw new Error('Euler steps must be ≥ 1');
    this.clip = config.clip_sample && (opts.recomputeEpsilon ?? false);
    const ac = alphasCumprod(config);
    const T = config.num_train_timesteps;
    const allSigmas = Array.from(ac, (a) => Math.sqrt((1 - a) / a));
    const spacing = config.timestep_spacing ?? 'linspace';
    // One linspace step is T−1 (the noisiest), as this sampler always took it; diffusers' np.linspace gives 0.
    const ts =
      spacing === 'linspace' && numSteps === 1 ? [T - 1] : spacedTimesteps(config, numSteps, spacing);
    if (ts[0] > T - 1 || ts[ts.length - 1] < 0)
      throw new Error(`Euler: steps_offset ${config.steps_offset} puts a timestep outside 0…${T - 1}`);
    this.sigmas = ts.map((t) => {
      const lo = Math.floor(t);
      const hi = Math.min(T - 1, lo + 1);
      const w = t - lo;
      return allSigmas[lo] * (1 - w) + allSigmas[hi] * w;
    });
    this.sigmas.push(0);
    this.timesteps = ts;
    this.initNoiseSigma = Math.sqrt(this.sigmas[0] ** 2 + 1);
  }

  scaleModelInput(x: Float32Array, stepIndex: number): Float32Array {
    const s = 1 / Math.sqrt(this.sigmas[stepIndex] ** 2 + 1);
    return x.map((v) => v * s);
  }

  step(modelOutput: Float32Array, stepIndex: number, x: Float32Array, rng: Rng): Float32Array {
    const sigma = this.sigmas[stepIndex];
    const sigmaTo = this.sigmas[stepIndex + 1];
    const sigmaUp = Math.sqrt((sigmaTo ** 2 * (sigma ** 2 - sigmaTo ** 2)) / sigma ** 2);
    const sigmaDown = Math.sqrt(sigmaTo ** 2 - sigmaUp ** 2);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const m = modelOutput[i];
      // In the σ-parameterisation x = x₀ + σ·ε; v-prediction maps back through c_skip/c_out.
      const raw =
        this.config.prediction_type === 'epsilon'
          ? x[i] - sigma * m
          : m * (-sigma / Math.sqrt(sigma ** 2 + 1)) + x[i] / (sigma ** 2 + 1);
      const x0 = this.clip ? clamp(raw, this.config.clip_sample_range) : raw;
      const derivative = (x[i] - x0) / sigma;
      out[i] = x[i] + derivative * (sigmaDown - sigma);
    }
    if (sigmaUp > 0) for (let i = 0; i < out.length; i++) out[i] += rng.normal() * sigmaUp;
    return out;
  }
}

/** A sampler by name. */
export function createSampler(
  kind: 'ddim' | 'euler-a',
  config: SchedulerConfig,
  steps: number,
  opts: SamplerOptions = {},
): Sampler {
  return kind === 'ddim'
    ? new DdimSampler(config, steps, opts)
    : new EulerAncestralSampler(config, steps, opts);
}
