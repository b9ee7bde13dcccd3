import { describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN_SETTINGS } from './trainSettings';
import { contributionsInterval, trainerConfig } from './trainerConfig';

describe('trainerConfig', () => {
  it('maps every LoRA² setting to the adapters and the loop', () => {
    const c = trainerConfig('s1', {
      ...DEFAULT_TRAIN_SETTINGS,
      steps: 250,
      batchSize: 2,
      seed: 9,
      checkpointEvery: 25,
      learningRate: 1e-3,
      rateLearningRate: 2e-2,
      maxRank: 32,
      initialRank: 6,
      priorRank: 3,
      priorSigma: 0.4,
      quantile: 0.92,
    });
    expect(c).toMatchObject({ sessionId: 's1', steps: 250, batchSize: 2, seed: 9, checkpointEvery: 25 });
    expect(c.contributionsEvery).toBe(3);
    expect(c.lora).toMatchObject({
      lr: 1e-3,
      rateLr: 2e-2,
      maxRank: 32,
      initialRank: 6,
      priorRank: 3,
      rateSigma: 0.4,
      quantile: 0.92,
    });
    expect(c.lora.fixedRank).toBeUndefined();
  });

  it('fixed mode sets the baseline rank; the initial rank never exceeds the cap', () => {
    const fixed = trainerConfig('s', { ...DEFAULT_TRAIN_SETTINGS, mode: 'fixed', fixedRank: 8 });
    expect(fixed.lora.fixedRank).toBe(8);
    const capped = trainerConfig('s', { ...DEFAULT_TRAIN_SETTINGS, maxRank: 3, initialRank: 4 });
    expect(capped.lora.initialRank).toBe(3);
  });

  it('takes about 100 contribution snapshots a run, at most one a step', () => {
    expect(contributionsInterval(16)).toBe(1);
    expect(contributionsInterval(100)).toBe(1);
    expect(contributionsInterval(101)).toBe(2);
    expect(contributionsInterval(400)).toBe(4);
  });
});
