// LoRA² adapter for one frozen linear map (DESIGN.md §5): y_Δ = s·B[:, :D](f[:D] ⊙ A[:D]x) with f from the
// learned rate λ = softplus(ρ), its own rank controller (grow in chunks, release with hysteresis) and optimizer
// state. A is stored [C, in] and B transposed as Bᵀ [C, out], so the first D positions are prefix row views.
// On a Conv2d (LoCon) the same A [C, Cin·kh·kw] is a kh×kw down convolution to D channels and Bᵀ a 1×1 up
// convolution, so ranks, priors, capacity and export are the linear case's, on flattened kernels.
import * as ops from '../autograd/ops';
import { zeroGrad } from '../autograd/tape';
import { adamw } from '../kernels/adamw';
import type { ConvSizes } from '../kernels/common';
import { addInPlace } from '../kernels/elementwise';
import type { Rng, RngState } from '../models/rng';
import { Rng as RngImpl } from '../models/rng';
import type { LoraLayerWeights } from '../io/lora';
import type { ConvCall, LinearAdapter } from '../nn/params';
import type { Engine } from '../tensor/engine';
import type { Tensor } from '../tensor/tensor';
import { planCapacity, type CapacityPolicy } from './capacity';
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

/** The attention projections (diffusers names), the usual LoRA targets. */
export const DEFAULT_TARGET_PATTERNS: readonly string[] = ['\\.attn[12]\\.(to_q|to_k|to_v|to_out\\.0)$'];

/** The 3×3 convolutions of every ResNet block (LoCon): they carry most of a small UNet's spatial structure. */
export const CONV_TARGET_PATTERNS: readonly string[] = ['\\.resnets\\.\\d+\\.conv[12]$'];

/** Named target sets the CLI and the studio offer. */
export const TARGET_PRESETS = {
  attention: DEFAULT_TARGET_PATTERNS,
  'attention+conv': [...DEFAULT_TARGET_PATTERNS, ...CONV_TARGET_PATTERNS],
} as const satisfies Record<string, readonly string[]>;
export type TargetPreset = keyof typeof TARGET_PRESETS;

export interface Lora2Settings {
  /** Quantile mass k of the effective rank (0.8 fails, 0.95 gives ranks ≈ 1.9× the directions used). */
  quantile: number;
  /** Prior rank r₀: the prior on λ is centred on the rate whose k-quantile is r₀. */
  priorRank: number;
  /** σ of the Gaussian prior on λ (keep ≥ 0.2: smaller collapses layers to D ≈ 2). */
  rateSigma: number;
  /** Off = the paper's ablation: ranks grow without bound. */
  rankPrior: boolean;
  /** σ_θ of the Gaussian prior on every allocated A/B entry. */
  weightSigma: number;
  weightPrior: boolean;
  /**
   * A's share of the weight prior, θ/(Nσ_θ²), is applied as a plain gradient step at the A/B learning rate
   * (AdamW's decoupled decay: A ← A·(1 − lr/(Nσ_θ²))) instead of being added to the gradient Adam normalises;
   * B's share stays in the gradient. Same objective (DESIGN §5), different optimizer. Why: while B = 0, A's
   * task gradient is exactly zero, so Adam turns the tiny prior gradient into a full lr-sized step and shrinks
   * every A entry by lr per step (12% of ‖A‖ in 10 steps on the golden model). On the 32×32 model
   * (N = 18,432) that kept LoRA² from learning the subject. B starts at zero, so its prior grows with it and
   * still prices each position, which is what recovers the synthetic task's ranks (BENCHMARKS.md, "The weight
   * prior and Adam"). Off: both in the gradient, as the PyTorch golden step and checkpoints written before
   * this option have it.
   */
  weightPriorDecoupledA: boolean;
  /** s: output scale of the adapter (larger fits faster: f(i) ≤ λ makes the effective lr ∝ λ·s). */
  scale: number;
  /** AdamW learning rate of A (and of B unless lrB is set). */
  lr: number;
  /** AdamW learning rate of B; undefined = lr. (LoRA+ sets B's higher than A's; our default keeps them equal.) */
  lrB?: number;
  /** Adam learning rate of ρ (f64 on the CPU). */
  rateLr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay of A and B (0: the Gaussian prior is the regularizer). */
  weightDecay: number;
  /** r_init: ρ starts at the rate whose effective rank is this. */
  initialRank: number;
  /**
   * Optimizer steps before ρ starts to move (ranks stay at r_init meanwhile), so that B has grown before ρ
   * follows the task. Default 0: on the default model 50 steps changed nothing (BENCHMARKS.md, "Why the
   * ranks stay flat"), and on the synthetic task it only delays the ranks (`npm run bench:lora:regime`).
   */
  rateWarmup: number;
  /**
   * ρ follows scaleFreeRateGrad instead of the exact task gradient: the part of ∂L/∂λ that only asks for a
   * larger f overall (which lowering the rank also gives) is taken out. Off: the exact gradient (DESIGN §5).
   */
  scaleFreeRate: boolean;
  /** R_max: cap on rank and capacity. */
  maxRank: number;
  /** Capacity grows and shrinks by this many positions. */
  chunk: number;
  /** Capacity is released only when this many whole chunks are unused (hysteresis). */
  releaseChunks: number;
  /** N: training images; both priors are scaled by 1/N. */
  datasetSize: number;
  /** Fixed-rank LoRA baseline: f ≡ 1, D = fixedRank, scale α/r. Undefined = LoRA² (adaptive rank). */
  fixedRank?: number;
  /** α of the fixed-rank baseline (scale α/r); defaults to fixedRank (scale 1). */
  alpha?: number;
  /** Regex sources (diffusers module paths) of the linear maps that get an adapter. */
  targets: readonly string[];
}

/** DESIGN.md §5 "defaults that held up". */
export const DEFAULT_LORA2_SETTINGS: Readonly<Lora2Settings> = Object.freeze({
  quantile: 0.9,
  priorRank: 2,
  rateSigma: 0.3,
  rankPrior: true,
  weightSigma: 1,
  weightPrior: true,
  weightPriorDecoupledA: true,
  scale: 1,
  lr: 3e-3,
  rateLr: 1e-2,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  initialRank: 4,
  rateWarmup: 0,
  scaleFreeRate: false,
  maxRank: 64,
  chunk: 8,
  releaseChunks: 2,
  datasetSize: 1,
  targets: DEFAULT_TARGET_PATTERNS,
});

export function lora2Settings(over: Partial<Lora2Settings> = {}): Lora2Settings {
  return { ...DEFAULT_LORA2_SETTINGS, ...over };
}

/** Numeric settings without a default value, which `--lora2` may still set. */
const OPTIONAL_NUMERIC_SETTINGS = new Set(['lrB', 'alpha']);

/**
 * `--lora2 k=v,k=v`: LoRA² settings that differ from the defaults: numeric ones, and on/off ones as 0/1
 * (e.g. rankPrior=0). Anything else is an error.
 */
export function parseLora2Overrides(spec: string): Partial<Lora2Settings> {
  const out: Record<string, number | boolean> = {};
  const defaults = lora2Settings() as unknown as Record<string, unknown>;
  for (const part of spec.split(',').filter(Boolean)) {
    const [key, value] = part.split('=');
    const numeric = typeof defaults[key] === 'number' || OPTIONAL_NUMERIC_SETTINGS.has(key);
    if (typeof defaults[key] === 'boolean' && (value === '0' || value === '1')) out[key] = value === '1';
    else if (numeric && value !== undefined && Number.isFinite(Number(value))) out[key] = Number(value);
    else
      throw new Error(
        `--lora2 ${part}: expected <LoRA² setting>=<number>, or =0/1 for an on/off one, e.g. rateSigma=1`,
      );
  }
  return out as Partial<Lora2Settings>;
}

/** `--targets`: a preset name (attention, attention+conv) → the regex sources of the adapted layers. */
export function targetPreset(name: string): readonly string[] {
  if (Object.hasOwn(TARGET_PRESETS, name)) return TARGET_PRESETS[name as TargetPreset];
  throw new Error(`--targets ${name}: expected one of ${Object.keys(TARGET_PRESETS).join(', ')}`);
}

/** Shape of the frozen linear (or convolution) an adapter sits on. */
export interface AdapterTarget {
  path: string;
  /** Linear: in features; Conv2d: Cin·kh·kw. */
  inFeatures: number;
  outFeatures: number;
  /** [kh, kw] of a Conv2d target (LoCon); absent for a Linear. */
  kernel?: [number, number];
}

/** The target's own fields (a LinearTarget also carries its block); an adapter keeps this copy as its target. */
function targetOf(t: AdapterTarget): AdapterTarget {
  const { path, inFeatures, outFeatures, kernel } = t;
  return kernel
    ? { path, inFeatures, outFeatures, kernel: [kernel[0], kernel[1]] }
    : { path, inFeatures, outFeatures };
}

/**
 * x·A[:D]ᵀ for a linear target, or A[:D] as a [D, Cin, kh, kw] convolution of x for a conv target (with the
 * frozen convolution's stride and padding). `sizes`: `uniform` when D changes during the run (LoRA²), so the
 * convolution's pipelines serve every rank instead of compiling anew at each one.
 */
async function down(
  x: Tensor,
  A: Tensor,
  kernel: [number, number] | undefined,
  conv?: ConvCall,
  sizes?: ConvSizes,
): Promise<Tensor> {
  if (!kernel) return ops.linear(x, A);
  if (!conv) throw new Error(`a conv adapter needs the convolution's stride and padding`);
  const [kh, kw] = kernel;
  const rows = A.shape[0];
  const w = ops.reshape(A, [rows, A.shape[1] / (kh * kw), kh, kw]);
  return ops.conv2d(x, w, undefined, { stride: conv.stride, padding: conv.padding, sizes });
}

/** Everything needed to resume an adapter exactly (checkpoints): values, moments, controller and RNG. */
export interface AdapterState {
  path: string;
  inFeatures: number;
  outFeatures: number;
  /** [kh, kw] of a conv adapter (LoCon); absent for a linear one (and in checkpoints saved before LoCon). */
  kernel?: [number, number];
  capacity: number;
  rank: number;
  /** Optimizer steps taken (AdamW bias correction). */
  step: number;
  rho: number;
  rhoM: number;
  rhoV: number;
  /** [capacity, in] */
  A: Float32Array;
  /** Bᵀ: [capacity, out] */
  Bt: Float32Array;
  mA: Float32Array;
  vA: Float32Array;
  mB: Float32Array;
  vB: Float32Array;
  rng: { words: RngState; spare: number | undefined };
}

/** Per-step numbers of one layer after its optimizer step. */
export interface AdapterStepInfo {
  gradRho: number;
  rankBefore: number;
  rank: number;
  capacity: number;
}

/** A's weight prior as AdamW decay, 1/(Nσ_θ²), when it is decoupled (else 0: it is in the gradient). */
export function decoupledWeightPriorA(s: Lora2Settings): number {
  return s.weightPrior && s.weightPriorDecoupledA ? 1 / (s.datasetSize * s.weightSigma ** 2) : 0;
}

export function matchesTargets(path: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => new RegExp(p).test(path));
}

/** The per-position multiplier of an adapter with raw rate ρ at rank D: s·f(i), or α/r for fixed rank. */
export function positionScales(settings: Lora2Settings, rho: number, rank: number): Float64Array {
  const s = settings;
  if (s.fixedRank !== undefined) return new Float64Array(rank).fill((s.alpha ?? s.fixedRank) / s.fixedRank);
  return importance(softplus(rho), rank).map((v) => v * s.scale);
}

type PositionRows = Pick<AdapterState, 'inFeatures' | 'outFeatures' | 'rank' | 'A' | 'Bt'>;

/** A [≥D, in] and Bᵀ [≥D, out] → down [D, in] and up [out, D] = Bᵀ[:D]ᵀ·diag(scales). */
function foldScales(w: PositionRows, scales: ArrayLike<number>): { down: Float32Array; up: Float32Array } {
  const { rank: D, inFeatures: inF, outFeatures: outF, A, Bt } = w;
  const up = new Float32Array(outF * D);
  for (let i = 0; i < D; i++) for (let o = 0; o < outF; o++) up[o * D + i] = Bt[i * outF + o] * scales[i];
  return { down: A.slice(0, D * inF), up };
}

/** A saved adapter as a plain LoRA at its rank D with its scales folded in (sampling from a checkpoint). */
export function plainLayerFromState(settings: Lora2Settings, state: AdapterState): LoraLayerWeights {
  const { rank } = state;
  const folded = foldScales(state, positionScales(settings, state.rho, rank));
  return { ...targetOf(state), rank, ...folded };
}

/**
 * The inverse of export: a plain LoRA layer (scale folded into up) as a fresh adapter state at capacity = rank
 * whose exported layer is the same ΔW. LoRA² starts at the rate whose effective rank is the layer's rank;
 * moments are zero, so training can continue from an imported file.
 */
export function adapterStateFromLayer(
  settings: Lora2Settings,
  layer: LoraLayerWeights,
  seed: number,
): AdapterState {
  const { path, inFeatures: inF, outFeatures: outF, rank: D } = layer;
  if (D < 1) throw new Error(`${path}: a LoRA layer needs rank ≥ 1`);
  const rho = softplusInverse(rateForRank(D, settings.quantile));
  const scales = positionScales(settings, rho, D);
  const Bt = new Float32Array(D * outF);
  for (let i = 0; i < D; i++)
    for (let o = 0; o < outF; o++) Bt[i * outF + o] = layer.up[o * D + i] / scales[i];
  return {
    ...targetOf(layer),
    capacity: D,
    rank: D,
    step: 0,
    rho,
    rhoM: 0,
    rhoV: 0,
    A: layer.down.slice(0, D * inF),
    Bt,
    mA: new Float32Array(D * inF),
    vA: new Float32Array(D * inF),
    mB: new Float32Array(D * outF),
    vB: new Float32Array(D * outF),
    rng: new RngImpl(seed).state(),
  };
}

export class Lora2Adapter implements LinearAdapter {
  /** Allocated positions C ≥ D. */
  capacity: number;
  /** Effective rank D (positions that contribute). */
  rank: number;
  rho: number;
  step = 0;
  /** ∂L/∂ρ of the last prepared step (task through f, plus the rank prior). */
  lastGradRho = 0;
  /** Running sums of the task's ∂L/∂ρ since this adapter was created or restored (diagnostics, not saved). */
  readonly taskGradStats = { n: 0, sum: 0, sumSq: 0 };
  A!: Tensor;
  Bt!: Tensor;
  private mA!: Tensor;
  private vA!: Tensor;
  private mB!: Tensor;
  private vB!: Tensor;
  private rhoM = 0;
  private rhoV = 0;
  /** s·f[:D] as a leaf: its gradient comes back as D floats and becomes ∂L/∂ρ. Reused by recomputation. */
  private fLeaf: Tensor | undefined;
  private readonly rng: Rng;

  private constructor(
    readonly engine: Engine,
    readonly target: AdapterTarget,
    readonly settings: Lora2Settings,
    state: Omit<AdapterState, 'path' | 'inFeatures' | 'outFeatures'>,
  ) {
    this.capacity = state.capacity;
    this.rank = state.rank;
    this.rho = state.rho;
    this.rhoM = state.rhoM;
    this.rhoV = state.rhoV;
    this.step = state.step;
    this.rng = RngImpl.restore(state.rng);
  }

  private async upload(state: Omit<AdapterState, 'path' | 'inFeatures' | 'outFeatures'>): Promise<void> {
    const e = this.engine;
    const { inFeatures: inF, outFeatures: outF, path } = this.target;
    const C = this.capacity;
    await e.untracked(() => {
      this.A = e.fromArray(state.A, [C, inF], { label: `${path}.lora_A`, requiresGrad: true });
      this.Bt = e.fromArray(state.Bt, [C, outF], { label: `${path}.lora_Bt`, requiresGrad: true });
      this.mA = e.fromArray(state.mA, [C, inF], { label: `${path}.lora_A.m` });
      this.vA = e.fromArray(state.vA, [C, inF], { label: `${path}.lora_A.v` });
      this.mB = e.fromArray(state.mB, [C, outF], { label: `${path}.lora_Bt.m` });
      this.vB = e.fromArray(state.vB, [C, outF], { label: `${path}.lora_Bt.v` });
    });
  }

  get fixed(): boolean {
    return this.settings.fixedRank !== undefined;
  }

  /** λ = softplus(ρ) (unused by the fixed-rank baseline). */
  get rate(): number {
    return softplus(this.rho);
  }

  get policy(): CapacityPolicy {
    const s = this.settings;
    return { chunk: s.chunk, releaseChunks: s.releaseChunks, maxRank: s.maxRank };
  }

  /** A fresh adapter: A ~ N(0,1)/√in, B = 0 (the model starts unchanged), ρ at the initial rank's rate. */
  static create(
    engine: Engine,
    target: AdapterTarget,
    settings: Lora2Settings,
    seed: number,
  ): Promise<Lora2Adapter> {
    const rng = new RngImpl(seed);
    const s = settings;
    const fixedRank = s.fixedRank;
    const rank = fixedRank ?? Math.min(s.initialRank, s.maxRank);
    const capacity =
      fixedRank ??
      planCapacity(rank, 0, { chunk: s.chunk, releaseChunks: s.releaseChunks, maxRank: s.maxRank });
    const { inFeatures: inF, outFeatures: outF } = target;
    const A = rng.normals(capacity * inF, 1 / Math.sqrt(inF));
    return Lora2Adapter.fromState(engine, settings, {
      ...targetOf(target),
      capacity,
      rank,
      step: 0,
      rho: softplusInverse(rateForRank(rank, s.quantile)),
      rhoM: 0,
      rhoV: 0,
      A,
      Bt: new Float32Array(capacity * outF),
      mA: new Float32Array(capacity * inF),
      vA: new Float32Array(capacity * inF),
      mB: new Float32Array(capacity * outF),
      vB: new Float32Array(capacity * outF),
      rng: rng.state(),
    });
  }

  static async fromState(
    engine: Engine,
    settings: Lora2Settings,
    state: AdapterState,
  ): Promise<Lora2Adapter> {
    const { path, inFeatures, outFeatures, kernel, ...rest } = state;
    if (state.rank < 1 || state.rank > state.capacity)
      throw new Error(`${path}: rank ${state.rank} outside capacity ${state.capacity}`);
    const target = targetOf({ path, inFeatures, outFeatures, kernel });
    const a = new Lora2Adapter(engine, target, settings, rest);
    await a.upload(rest);
    return a;
  }

  async state(): Promise<AdapterState> {
    return {
      ...this.target,
      capacity: this.capacity,
      rank: this.rank,
      step: this.step,
      rho: this.rho,
      rhoM: this.rhoM,
      rhoV: this.rhoV,
      A: await this.A.read(),
      Bt: await this.Bt.read(),
      mA: await this.mA.read(),
      vA: await this.vA.read(),
      mB: await this.mB.read(),
      vB: await this.vB.read(),
      rng: this.rng.state(),
    };
  }

  /** The per-position multiplier s·f(i) (LoRA²) or α/r (fixed rank), i < D. */
  positionScales(): Float64Array {
    return positionScales(this.settings, this.rho, this.rank);
  }

  async forward(x: Tensor, conv?: ConvCall): Promise<Tensor> {
    const e = this.engine;
    if (!this.fLeaf) {
      this.fLeaf = await e.untracked(() =>
        e.fromArray(this.positionScales(), [this.rank], {
          label: `${this.target.path}.importance`,
          requiresGrad: !this.fixed,
        }),
      );
    }
    const D = this.rank;
    const kernel = this.target.kernel;
    const sizes = this.fixed ? 'baked' : 'uniform';
    const h = await down(x, ops.sliceRows(this.A, D), kernel, conv, sizes);
    if (!kernel) return ops.matmul(await ops.mul(h, this.fLeaf), ops.sliceRows(this.Bt, D));
    // h [B, D, H', W']: scale each channel by s·f(i), then a 1×1 convolution with B = Bᵀ[:D]ᵀ.
    const hf = await ops.mul(h, ops.reshape(this.fLeaf, [D, 1, 1]));
    const up = ops.reshape(await ops.transposeLast2(ops.sliceRows(this.Bt, D)), [
      this.target.outFeatures,
      D,
      1,
      1,
    ]);
    return ops.conv2d(hf, up, undefined, { sizes });
  }

  /** ∂L/∂(s·f) on the GPU after backward (LoRA² only; undefined when this adapter took no part). */
  get importanceGrad(): Tensor | undefined {
    return this.fixed ? undefined : this.fLeaf?.grad;
  }

  /**
   * After backward: adds the weight prior's gradient θ/(Nσ_θ²) to every allocated Bᵀ entry (and A entry,
   * unless A's share is decoupled: then applyStep's AdamW decays A instead) and computes
   * ∂L/∂ρ from ∂L/∂f (D floats, read back here unless the caller already did: `stepAdapters`) plus the rank
   * prior. Leaves A.grad/Bt.grad for inspection.
   */
  async prepareGradients(importanceGrad?: Float32Array): Promise<void> {
    const g = this.importanceGrad;
    if (importanceGrad && !g) throw new Error(`${this.target.path}: importance gradient given, none pending`);
    if (importanceGrad && importanceGrad.length !== g!.size)
      throw new Error(
        `${this.target.path}: importance gradient has ${importanceGrad.length} values, expected ${g!.size}`,
      );
    return this.prepare(g ? (importanceGrad ?? (await g.read())) : undefined);
  }

  private async prepare(importanceGrad: Float32Array | undefined): Promise<void> {
    const e = this.engine;
    const s = this.settings;
    await e.untracked(async () => {
      for (const p of [this.A, this.Bt]) {
        if (!p.grad) p.grad = e.zeros(p.shape, { label: `${p.label}.grad` });
        if (s.weightPrior && !(p === this.A && s.weightPriorDecoupledA)) {
          await addInPlace(e.ctx, {
            dst: p.grad.buffer,
            src: p.buffer,
            n: p.size,
            alpha: 1 / (s.datasetSize * s.weightSigma ** 2),
          });
        }
      }
    });
    if (this.fixed) return;
    let task = 0;
    let prior = 0;
    if (importanceGrad) {
      // The leaf is s·f, so ∂L/∂f = s·∂L/∂(s·f).
      const gf = Array.from(importanceGrad, (v) => v * s.scale);
      task = s.scaleFreeRate ? scaleFreeRateGrad(this.rho, gf) : rateGradFromImportanceGrad(this.rho, gf);
    }
    if (s.rankPrior) {
      prior = ratePriorLoss(this.rho, {
        mean: priorRate(s.priorRank, s.quantile),
        sigma: s.rateSigma,
        datasetSize: s.datasetSize,
      }).gradRho;
    }
    this.lastGradRho = task + prior;
    this.taskGradStats.n++;
    this.taskGradStats.sum += task;
    this.taskGradStats.sumSq += task * task;
  }

  /**
   * AdamW on A and Bᵀ (GPU), Adam on ρ (f64), then the rank controller. Clears the gradients. `lrScale`
   * multiplies every learning rate of this step (the trainer's warm-up / cosine schedule).
   */
  async applyStep(lrScale = 1): Promise<AdapterStepInfo> {
    const e = this.engine;
    const s = this.settings;
    const t = ++this.step;
    await e.batch('lora2.step', async () => {
      for (const [p, m, v] of [
        [this.A, this.mA, this.vA],
        [this.Bt, this.mB, this.vB],
      ] as const) {
        await adamw(e.ctx, {
          param: p.buffer,
          grad: p.grad!.buffer,
          m: m.buffer,
          v: v.buffer,
          n: p.size,
          step: t,
          lr: lrScale * (p === this.A ? s.lr : (s.lrB ?? s.lr)),
          beta1: s.beta1,
          beta2: s.beta2,
          eps: s.eps,
          weightDecay: s.weightDecay + (p === this.A ? decoupledWeightPriorA(s) : 0),
        });
      }
    });
    zeroGrad([this.A, this.Bt]);
    this.releaseImportance();
    const rankBefore = this.rank;
    if (!this.fixed && t > s.rateWarmup) {
      const g = this.lastGradRho;
      this.rhoM = s.beta1 * this.rhoM + (1 - s.beta1) * g;
      this.rhoV = s.beta2 * this.rhoV + (1 - s.beta2) * g * g;
      // ρ's own step count starts after the warm-up (its moments are empty until then).
      const tr = t - s.rateWarmup;
      const mHat = this.rhoM / (1 - s.beta1 ** tr);
      const vHat = this.rhoV / (1 - s.beta2 ** tr);
      this.rho -= (lrScale * s.rateLr * mHat) / (Math.sqrt(vHat) + s.eps);
      this.rank = effectiveRank(this.rate, s.quantile, s.maxRank);
      const cap = planCapacity(this.rank, this.capacity, this.policy);
      if (cap !== this.capacity) await this.resize(cap);
    }
    return { gradRho: this.lastGradRho, rankBefore, rank: this.rank, capacity: this.capacity };
  }

  /** prepareGradients + applyStep. */
  async optimizerStep(): Promise<AdapterStepInfo> {
    await this.prepareGradients();
    return this.applyStep();
  }

  /** Drops the importance leaf (and its gradient) so the next forward uploads fresh values. */
  releaseImportance(): void {
    if (!this.fLeaf) return;
    zeroGrad([this.fLeaf]);
    this.fLeaf.release();
    this.fLeaf = undefined;
  }

  /**
   * New capacity: surviving positions keep values and moments; new A rows are drawn like the initial ones,
   * new Bᵀ rows and all new moments are zero, so the adapter's function does not change.
   */
  private async resize(capacity: number): Promise<void> {
    const e = this.engine;
    const { inFeatures: inF, outFeatures: outF, path } = this.target;
    const keep = Math.min(capacity, this.capacity);
    const grown = capacity - keep;
    const fresh = grown > 0 ? this.rng.normals(grown * inF, 1 / Math.sqrt(inF)) : undefined;
    await e.untracked(() => {
      const remake = (old: Tensor, cols: number, label: string, newRows?: Float32Array): Tensor => {
        const t = e.zeros([capacity, cols], { label, requiresGrad: old.requiresGrad });
        e.encode(`${label}.resize`, (enc) =>
          enc.copyBufferToBuffer(old.buffer, 0, t.buffer, 0, keep * cols * 4),
        );
        if (newRows) {
          const tmp = e.fromArray(newRows, [grown, cols], { label: `${label}.new` });
          e.encode(`${label}.grow`, (enc) =>
            enc.copyBufferToBuffer(tmp.buffer, 0, t.buffer, keep * cols * 4, grown * cols * 4),
          );
          tmp.release();
        }
        old.release();
        return t;
      };
      this.A = remake(this.A, inF, `${path}.lora_A`, fresh);
      this.Bt = remake(this.Bt, outF, `${path}.lora_Bt`);
      this.mA = remake(this.mA, inF, `${path}.lora_A.m`);
      this.vA = remake(this.vA, inF, `${path}.lora_A.v`);
      this.mB = remake(this.mB, outF, `${path}.lora_Bt.m`);
      this.vB = remake(this.vB, outF, `${path}.lora_Bt.v`);
    });
    this.capacity = capacity;
  }

  /** Down [D, in] and up [out, D] with s·diag(f[:D]) folded in: a plain LoRA at rank D with scale 1. */
  async exportWeights(): Promise<{ down: Float32Array; up: Float32Array; rank: number }> {
    const { inFeatures, outFeatures } = this.target;
    const [A, Bt] = [await this.A.read(), await this.Bt.read()];
    const { down, up } = foldScales(
      { inFeatures, outFeatures, rank: this.rank, A, Bt },
      this.positionScales(),
    );
    return { down, up, rank: this.rank };
  }

  /** This layer as a plain LoRA at rank D (the input of exportKohya/exportPeft). */
  async exportLayer(): Promise<LoraLayerWeights> {
    return { ...this.target, ...(await this.exportWeights()) };
  }

  /** f(i)·‖B[:,i]‖·‖A[i,:]‖ for i < capacity (positions ≥ D contribute 0: they are masked). */
  async contributions(): Promise<number[]> {
    const { inFeatures: inF, outFeatures: outF } = this.target;
    const A = await this.A.read();
    const Bt = await this.Bt.read();
    const f = this.positionScales();
    const out: number[] = [];
    for (let i = 0; i < this.capacity; i++) {
      if (i >= this.rank) {
        out.push(0);
        continue;
      }
      let a = 0;
      let b = 0;
      for (let j = 0; j < inF; j++) a += A[i * inF + j] ** 2;
      for (let j = 0; j < outF; j++) b += Bt[i * outF + j] ** 2;
      out.push(f[i] * Math.sqrt(a) * Math.sqrt(b));
    }
    return out;
  }

  /** Σθ²/(2σ_θ²) over every allocated entry (reads A and Bᵀ back; for reports, not per step). */
  async weightPriorSum(): Promise<number> {
    let sum = 0;
    for (const t of [this.A, this.Bt]) for (const v of await t.read()) sum += v * v;
    return sum / (2 * this.settings.weightSigma ** 2);
  }

  /** (λ − μ)²/(2σ²), without the 1/N. */
  ratePriorTerm(): number {
    if (this.fixed) return 0;
    const s = this.settings;
    const z = (this.rate - priorRate(s.priorRank, s.quantile)) / s.rateSigma;
    return 0.5 * z * z;
  }

  /** Bytes of the exported adapter (f32 at rank D). */
  get bytes(): number {
    return this.rank * (this.target.inFeatures + this.target.outFeatures) * 4;
  }

  release(): void {
    this.releaseImportance();
    zeroGrad([this.A, this.Bt]);
    for (const t of [this.A, this.Bt, this.mA, this.vA, this.mB, this.vB]) t.release();
  }
}

/**
 * optimizerStep of every adapter in order, with all their ∂L/∂f read back in one GPU wait instead of one
 * per layer (78 on the default model with LoCon). The same numbers as calling optimizerStep one by one.
 */
export async function stepAdapters(
  adapters: readonly Lora2Adapter[],
  lrScale = 1,
): Promise<AdapterStepInfo[]> {
  const pending = adapters.map((a) => a.importanceGrad);
  const tensors = pending.filter((t): t is Tensor => t !== undefined);
  const values = tensors.length > 0 ? await adapters[0].engine.readMany(tensors) : [];
  const out: AdapterStepInfo[] = [];
  let j = 0;
  for (let i = 0; i < adapters.length; i++) {
    await adapters[i].prepareGradients(pending[i] ? values[j++] : undefined);
    out.push(await adapters[i].applyStep(lrScale));
  }
  return out;
}

/** A frozen plain LoRA (ΔW = up·down, scale folded in): imported files, and sampling with a finished adapter. */
export class PlainLoraAdapter implements LinearAdapter {
  private constructor(
    readonly path: string,
    readonly down: Tensor,
    readonly up: Tensor,
    readonly kernel?: [number, number],
  ) {}

  static async create(engine: Engine, layer: LoraLayerWeights, strength = 1): Promise<PlainLoraAdapter> {
    const up = strength === 1 ? layer.up : layer.up.map((v) => v * strength);
    const { path, rank, inFeatures, outFeatures, kernel } = layer;
    return engine.untracked(
      () =>
        new PlainLoraAdapter(
          path,
          engine.fromArray(layer.down, [rank, inFeatures], { label: `${path}.lora_down` }),
          engine.fromArray(up, kernel ? [outFeatures, rank, 1, 1] : [outFeatures, rank], {
            label: `${path}.lora_up`,
          }),
          kernel,
        ),
    );
  }

  async forward(x: Tensor, conv?: ConvCall): Promise<Tensor> {
    const h = await down(x, this.down, this.kernel, conv);
    return this.kernel ? ops.conv2d(h, this.up) : ops.linear(h, this.up);
  }

  release(): void {
    this.down.release();
    this.up.release();
  }
}
