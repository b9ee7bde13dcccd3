// The studio's training settings (what a person edits) as the trainer's config (what the loop and the
// adapters read): LoRA² prior and learning rates, or the fixed-rank baseline.
import type { TrainSettings } from '../../workers/api';
import { lora2Settings, TARGET_PRESETS } from '../lora/adapter';
import { DEFAULT_TRAINER_CONFIG, type TrainerConfig } from './trainer';

/** Contribution snapshots (they read every A and B back) about 100 times a run, at most every step. */
export function contributionsInterval(steps: number): number {
  return Math.max(1, Math.ceil(steps / 100));
}

export function trainerConfig(sessionId: string, s: TrainSettings): TrainerConfig {
  return {
    ...DEFAULT_TRAINER_CONFIG,
    sessionId,
    steps: s.steps,
    batchSize: s.batchSize,
    seed: s.seed,
    checkpointEvery: s.checkpointEvery,
    contributionsEvery: contributionsInterval(s.steps),
    gradientAccumulation: s.gradientAccumulation,
    gradientCheckpointing: s.gradientCheckpointing ?? false,
    lrSchedule: { kind: s.lrSchedule, warmupSteps: s.warmupSteps },
    augment: { flip: s.flip, minCrop: s.minCrop },
    priorLossWeight: s.priorLossWeight,
    lora: lora2Settings({
      lr: s.learningRate,
      lrB: s.learningRateB,
      rateLr: s.rateLearningRate,
      maxRank: s.maxRank,
      initialRank: Math.min(s.initialRank, s.maxRank),
      priorRank: s.priorRank,
      rateSigma: s.priorSigma,
      quantile: s.quantile,
      targets: TARGET_PRESETS[s.layers ?? 'attention'],
      ...(s.mode === 'fixed' ? { fixedRank: s.fixedRank } : {}),
    }),
  };
}
