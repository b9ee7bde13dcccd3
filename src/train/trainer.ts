// DreamBooth-style LoRA² training loop: instance images + one prompt embedding (and, with prior preservation,
// class images + the class prompt's), optional crop/flip augmentation, noise and timestep from the
// serializable Rng, UNet forward with adapters, MSE (+ priors in the adapters' gradients), backward over
// `gradientAccumulation` micro-batches, AdamW at the scheduled learning rate, rank controller; progress
// events, pause/stop, atomic checkpoints that resume bit for bit.
import * as ops from '../autograd/ops';
import { backward } from '../autograd/tape';
import type { LoraLayerWeights } from '../io/lora';
import {
  DEFAULT_LORA2_SETTINGS,
  Lora2Adapter,
  matchesTargets,
  stepAdapters,
  type Lora2Settings,
} from '../lora/adapter';
import { Rng } from '../models/rng';
import type { NoiseSchedule } from '../models/schedulers';
import type { UNet2DConditionModel } from '../models/unet';
import type { Engine } from '../tensor/engine';
import type { LayerRankState, TrainProgress } from '../../workers/api';
import { augmentImage, checkAugment, NO_AUGMENT, type AugmentSettings } from './augment';
import { CHECKPOINT_SCHEMA_VERSION, type CheckpointStore, type TrainerCheckpoint } from './checkpoint';
import { StepClock } from './eta';
import { checkLrSchedule, CONSTANT_LR, lrScale, type LrSchedule } from './lrSchedule';

export interface TrainerConfig {
  sessionId: string;
  steps: number;
  batchSize: number;
  seed: number;
  lora: Lora2Settings;
  /** Save every N steps (0 = only on pause/stop/end). */
  checkpointEvery: number;
  /** Send per-position contributions every N steps (they read A and B back). */
  contributionsEvery: number;
  /** Recompute block activations in backward (less memory, ~1.3× the time). */
  gradientCheckpointing: boolean;
  /**
   * N in the priors' 1/N (DESIGN.md §5). Default: photos × values per photo (C·H·W). The diffusion loss is a
   * per-element mean, so the data's log-likelihood it stands for sums over every element of every photo; with
   * N = photos alone (3–20) the weight prior's θ/N outweighs the data gradient and, while B is still zero,
   * decays A to nothing within tens of steps (see src/lora/synthetic.ts for the same arithmetic).
   */
  priorCount?: number;
  /** Micro-batches of batchSize whose gradients add up to one optimizer step (the loss is their mean). */
  gradientAccumulation: number;
  /** Warm-up and constant/cosine decay; scales the learning rates of A, B and ρ. */
  lrSchedule: LrSchedule;
  /** Random crop and flip of every image drawn (instance and class). */
  augment: AugmentSettings;
  /** λ of prior preservation: loss = instance MSE + λ·class MSE (used when the data has class images). */
  priorLossWeight: number;
}

export const DEFAULT_TRAINER_CONFIG: Omit<TrainerConfig, 'sessionId' | 'lora'> = {
  steps: 400,
  batchSize: 1,
  seed: 0,
  checkpointEvery: 50,
  contributionsEvery: 10,
  gradientCheckpointing: false,
  gradientAccumulation: 1,
  lrSchedule: CONSTANT_LR,
  augment: NO_AUGMENT,
  priorLossWeight: 1,
};

/** Instance images in model space ([C, H, W], pixel models: [−1, 1]) and the prompt's embedding [1, S, D]. */
export interface TrainData {
  images: Float32Array[];
  imageShape: [number, number, number];
  embedding: Embedding;
  /**
   * Per-image embeddings (photos with captions of their own), aligned with `images`; absent: every image
   * trains with `embedding`.
   */
  embeddings?: Embedding[];
  /**
   * Prior preservation (DreamBooth): images the base model drew for the class prompt, and that prompt's
   * embedding (same S, D). Every optimizer step also fits a batch of these with the adapters on.
   */
  classImages?: Float32Array[];
  classEmbedding?: Embedding;
}

/** A prompt's text-encoder output [1, S, D]. */
export type Embedding = { data: Float32Array; shape: [number, number, number] };

/** The batch's conditioning [B, S, D]: the embedding of each drawn image, in batch order. */
export function batchConditioning(embeddings: readonly Embedding[], picks: readonly number[]): Float32Array {
  const [, S, D] = embeddings[0].shape;
  const out = new Float32Array(picks.length * S * D);
  picks.forEach((i, b) => out.set(embeddings[i].data.subarray(0, S * D), b * S * D));
  return out;
}

/** RGBA bytes → [3, H, W] in [−1, 1] over white (src/models/codec.ts; kept here for the trainer's callers). */
export { rgbaToModelInput } from '../models/codec';

export class Trainer {
  step = 0;
  /** Instance loss of every optimizer step (mean over its micro-batches). */
  readonly lossHistory: number[] = [];
  /** Class (prior-preservation) loss of every step; empty without class images. */
  readonly classLossHistory: number[] = [];
  readonly rankHistory: number[][] = [];
  private elapsedMs = 0;
  private readonly clock = new StepClock();
  private request: 'pause' | 'stop' | undefined;

  private constructor(
    readonly engine: Engine,
    readonly unet: UNet2DConditionModel,
    readonly schedule: NoiseSchedule,
    readonly data: TrainData,
    readonly config: TrainerConfig,
    readonly adapters: Lora2Adapter[],
    private rng: Rng,
    readonly store?: CheckpointStore,
  ) {
    for (const a of adapters) unet.params.adapters.set(a.target.path, a);
  }

  /** New adapters on every target of the UNet, or the session's latest checkpoint when the store has one. */
  static async create(
    engine: Engine,
    unet: UNet2DConditionModel,
    schedule: NoiseSchedule,
    data: TrainData,
    config: TrainerConfig,
    store?: CheckpointStore,
  ): Promise<Trainer> {
    const perImage = data.imageShape[0] * data.imageShape[1] * data.imageShape[2];
    // Defaults first: settings saved by an older version lack the fields added since.
    const lora = {
      ...DEFAULT_LORA2_SETTINGS,
      ...config.lora,
      datasetSize: config.priorCount ?? data.images.length * perImage,
    };
    const saved = await store?.get(config.sessionId);
    // A checkpoint from before weightPriorDecoupledA existed trained with A's weight prior in the gradient:
    // it resumes with that rule, so its run continues as it started.
    if (saved && saved.settings.lora.weightPriorDecoupledA === undefined) lora.weightPriorDecoupledA = false;
    const cfg: TrainerConfig = { ...DEFAULT_TRAINER_CONFIG, ...config, lora };
    checkTrainerConfig(cfg, data);
    if (saved) {
      const adapters: Lora2Adapter[] = [];
      for (const s of saved.layers) adapters.push(await Lora2Adapter.fromState(engine, lora, s));
      const t = new Trainer(engine, unet, schedule, data, cfg, adapters, Rng.restore(saved.rng), store);
      t.step = saved.step;
      t.elapsedMs = saved.elapsedMs;
      t.lossHistory.push(...saved.lossHistory);
      t.classLossHistory.push(...(saved.classLossHistory ?? []));
      t.rankHistory.push(...saved.rankHistory);
      return t;
    }
    const targets = unet.linearTargets([/./]).filter((t) => matchesTargets(t.path, lora.targets));
    if (targets.length === 0)
      throw new Error(`no UNet linear or conv matches the LoRA targets ${lora.targets.join(', ')}`);
    const init = new Rng(config.seed ^ 0x5eed1e55);
    const adapters: Lora2Adapter[] = [];
    for (const t of targets) adapters.push(await Lora2Adapter.create(engine, t, lora, init.nextU32()));
    return new Trainer(engine, unet, schedule, data, cfg, adapters, new Rng(config.seed), store);
  }

  pause(): void {
    this.request = 'pause';
  }

  stop(): void {
    this.request = 'stop';
  }

  /**
   * One optimizer step: `gradientAccumulation` micro-batches of instance images (and as many of class images
   * with prior preservation), their gradients summed with weight 1/k (class: λ/k), then AdamW at the
   * scheduled learning rate. Returns the instance loss (mean over the micro-batches).
   */
  async trainStep(): Promise<number> {
    const { images, embedding, embeddings, classImages, classEmbedding } = this.data;
    const k = this.config.gradientAccumulation;
    const prior = classImages?.length && classEmbedding ? this.config.priorLossWeight : 0;
    let loss = 0;
    let classLoss = 0;
    for (let m = 0; m < k; m++) {
      loss += (await this.microBatch(images, embeddings ?? [embedding], 1 / k)) / k;
      if (prior > 0) classLoss += (await this.microBatch(classImages!, [classEmbedding!], prior / k)) / k;
    }
    await stepAdapters(this.adapters, lrScale(this.config.lrSchedule, this.step, this.config.steps));
    this.step++;
    this.lossHistory.push(loss);
    if (prior > 0) this.classLossHistory.push(classLoss);
    this.rankHistory.push(this.adapters.map((a) => a.rank));
    return loss;
  }

  /**
   * Forward and backward of one batch drawn from `pool`, its MSE's gradient scaled by `weight`; the MSE.
   * `embeddings` holds one per image of the pool, or one for all.
   */
  private async microBatch(
    pool: readonly Float32Array[],
    embeddings: readonly Embedding[],
    weight: number,
  ): Promise<number> {
    const e = this.engine;
    const { imageShape } = this.data;
    const B = this.config.batchSize;
    const per = imageShape[0] * imageShape[1] * imageShape[2];
    const x0 = new Float32Array(B * per);
    const picks: number[] = [];
    for (let b = 0; b < B; b++) {
      const i = this.rng.int(pool.length);
      picks.push(embeddings.length > 1 ? i : 0);
      x0.set(augmentImage(pool[i], imageShape, this.rng, this.config.augment), b * per);
    }
    const timesteps = this.schedule.sampleTimesteps(this.rng, B);
    const noise = this.rng.normals(B * per);
    const noisy = this.schedule.addNoise(x0, noise, timesteps);
    const target = this.schedule.target(x0, noise, timesteps);
    const [, S, D] = embeddings[0].shape;
    const ehs = batchConditioning(embeddings, picks);
    return e.scope(async () => {
      const sample = e.fromArray(noisy, [B, ...imageShape], { label: 'noisy' });
      const cond = e.fromArray(ehs, [B, S, D], { label: 'ehs' });
      const want = e.fromArray(target, [B, ...imageShape], { label: 'target' });
      const out = await this.unet.forward(sample, Array.from(timesteps), cond, {
        gradientCheckpointing: this.config.gradientCheckpointing,
      });
      const l = await ops.mseLoss(out, want);
      if (weight === 1) await backward(l);
      else await backward(l, { grad: e.fromArray(new Float32Array(l.size).fill(weight), l.shape) });
      return (await l.read())[0];
    });
  }

  layerStates(): LayerRankState[] {
    return this.adapters.map((a) => ({
      name: a.target.path,
      rank: a.rank,
      capacity: a.capacity,
      rate: a.fixed ? 0 : a.rate,
    }));
  }

  get adapterBytes(): number {
    return this.adapters.reduce((s, a) => s + a.bytes, 0);
  }

  /** A fixed-rank LoRA at R_max (or the baseline's own rank) on the same layers. */
  get fixedRankBytes(): number {
    const r = this.config.lora.fixedRank ?? this.config.lora.maxRank;
    return this.adapters.reduce((s, a) => s + r * (a.target.inFeatures + a.target.outFeatures) * 4, 0);
  }

  /**
   * Trains until `config.steps`, a pause/stop request, or `untilStep`; a checkpoint is written every
   * checkpointEvery steps and when the run ends.
   */
  async run(
    onProgress: (p: TrainProgress) => void = () => undefined,
    opts: { untilStep?: number } = {},
  ): Promise<TrainProgress['state']> {
    const total = this.config.steps;
    const until = Math.min(total, opts.untilStep ?? total);
    this.request = undefined;
    let state: TrainProgress['state'] = 'running';
    this.engine.pool.resetPeak();
    while (this.step < until) {
      const t0 = performance.now();
      const pipelines = this.engine.ctx.pipelines.size;
      const loss = await this.trainStep();
      const stepMs = performance.now() - t0;
      this.elapsedMs += stepMs;
      this.clock.record(stepMs, this.engine.ctx.pipelines.size > pipelines);
      const every = this.config.contributionsEvery;
      const contributions =
        every > 0 && (this.step % every === 0 || this.step === until)
          ? await Promise.all(this.adapters.map((a) => a.contributions()))
          : undefined;
      if (this.request) state = this.request === 'pause' ? 'paused' : 'stopped';
      else if (this.step >= total) state = 'done';
      const ended = state !== 'running' || this.step >= until;
      if (
        this.store &&
        (ended || (this.config.checkpointEvery > 0 && this.step % this.config.checkpointEvery === 0))
      )
        await this.save();
      onProgress(this.progress(state, { loss, stepMs, contributions }));
      if (state !== 'running') break;
    }
    return state;
  }

  /** The progress event for the current step (the last step's loss unless given). */
  progress(
    state: TrainProgress['state'],
    at: { loss?: number; stepMs?: number; contributions?: number[][] } = {},
  ): TrainProgress {
    const total = this.config.steps;
    return {
      sessionId: this.config.sessionId,
      step: this.step,
      total,
      loss: at.loss ?? this.lossHistory.at(-1) ?? NaN,
      ...(this.classLossHistory.length ? { classLoss: this.classLossHistory.at(-1) } : {}),
      layers: this.layerStates(),
      contributions: at.contributions,
      importance: at.contributions ? this.adapters.map((a) => Array.from(a.positionScales())) : undefined,
      adapterBytes: this.adapterBytes,
      fixedRankBytes: this.fixedRankBytes,
      peakGpuBytes: this.engine.stats().peakAllocatedBytes,
      stepMs: at.stepMs ?? 0,
      elapsedMs: this.elapsedMs,
      etaMs: this.clock.etaMs(total - this.step),
      state,
    };
  }

  async checkpoint(): Promise<TrainerCheckpoint> {
    const layers = [];
    for (const a of this.adapters) layers.push(await a.state());
    return {
      schemaVersion: CHECKPOINT_SCHEMA_VERSION,
      sessionId: this.config.sessionId,
      step: this.step,
      settings: { ...this.config },
      rng: this.rng.state(),
      layers,
      rankHistory: this.rankHistory.map((r) => [...r]),
      lossHistory: [...this.lossHistory],
      ...(this.classLossHistory.length ? { classLossHistory: [...this.classLossHistory] } : {}),
      elapsedMs: this.elapsedMs,
    };
  }

  async save(): Promise<void> {
    if (!this.store) throw new Error('this trainer has no checkpoint store');
    await this.store.put(await this.checkpoint());
  }

  /** Every layer at its own rank with s·diag(f) folded in (the input of exportKohya/exportPeft). */
  async exportLayers(): Promise<LoraLayerWeights[]> {
    const out: LoraLayerWeights[] = [];
    for (const a of this.adapters) out.push(await a.exportLayer());
    return out;
  }

  /** Detaches the adapters from the UNet and frees their GPU memory. */
  release(): void {
    for (const a of this.adapters) {
      this.unet.params.adapters.delete(a.target.path);
      a.release();
    }
  }
}

/** Throws when the loop could not follow `c` on `data` (bad numbers, class images without their prompt). */
function checkTrainerConfig(c: TrainerConfig, data: TrainData): void {
  if (!(Number.isInteger(c.gradientAccumulation) && c.gradientAccumulation >= 1))
    throw new Error(`gradient accumulation ${c.gradientAccumulation}: expected a whole number ≥ 1`);
  checkLrSchedule(c.lrSchedule);
  checkAugment(c.augment);
  if (!(c.priorLossWeight >= 0)) throw new Error(`prior loss weight ${c.priorLossWeight}: expected ≥ 0`);
  if (data.embeddings) {
    if (data.embeddings.length !== data.images.length)
      throw new Error(`${data.embeddings.length} caption embeddings for ${data.images.length} images`);
    const bad = data.embeddings.findIndex((x) => x.shape.join() !== data.embedding.shape.join());
    if (bad >= 0)
      throw new Error(
        `image ${bad}'s caption embedding is ${data.embeddings[bad].shape.join('×')}, the prompt's ${data.embedding.shape.join('×')}`,
      );
  }
  if (data.classImages?.length) {
    const ce = data.classEmbedding;
    if (!ce) throw new Error('class images need the class prompt’s embedding (classEmbedding)');
    if (ce.shape[1] !== data.embedding.shape[1] || ce.shape[2] !== data.embedding.shape[2])
      throw new Error(
        `class prompt embedding ${ce.shape.join('×')} does not match the instance prompt's ${data.embedding.shape.join('×')}`,
      );
    const per = data.imageShape[0] * data.imageShape[1] * data.imageShape[2];
    const bad = data.classImages.findIndex((img) => img.length !== per);
    if (bad >= 0)
      throw new Error(`class image ${bad} has ${data.classImages[bad].length} values, expected ${per}`);
  }
}
