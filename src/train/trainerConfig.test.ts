import { describe, expect, it } from 'vitest';
import { matchesTargets, TARGET_PRESETS, targetPreset } from '../lora/adapter';
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
      learningRateB: 4e-3,
      rateLearningRate: 2e-2,
      maxRank: 32,
      initialRank: 6,
      priorRank: 3,
      priorSigma: 0.4,
      quantile: 0.92,
      gradientAccumulation: 3,
      gradientCheckpointing: true,
      lrSchedule: 'cosine',
      warmupSteps: 20,
      flip: true,
      minCrop: 0.8,
      priorLossWeight: 0.5,
    });
    expect(c).toMatchObject({
      sessionId: 's1',
      steps: 250,
      batchSize: 2,
      seed: 9,
      checkpointEvery: 25,
      gradientAccumulation: 3,
      gradientCheckpointing: true,
      lrSchedule: { kind: 'cosine', warmupSteps: 20 },
      augment: { flip: true, minCrop: 0.8 },
      priorLossWeight: 0.5,
    });
    expect(c.contributionsEvery).toBe(3);
    expect(c.lora).toMatchObject({
      lr: 1e-3,
      lrB: 4e-3,
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

  it('layers: attention by default (and for sessions saved without the field), or attention + ResNet convs', () => {
    const { layers: _omit, ...old } = DEFAULT_TRAIN_SETTINGS;
    expect(trainerConfig('s', old).lora.targets).toEqual(TARGET_PRESETS.attention);
    expect(trainerConfig('s', DEFAULT_TRAIN_SETTINGS).lora.targets).toEqual(TARGET_PRESETS.attention);
    const locon = trainerConfig('s', { ...DEFAULT_TRAIN_SETTINGS, layers: 'attention+conv' }).lora.targets;
    expect(locon).toEqual(TARGET_PRESETS['attention+conv']);
    expect(matchesTargets('down_blocks.0.resnets.1.conv2', locon)).toBe(true);
    expect(matchesTargets('down_blocks.0.resnets.1.conv_shortcut', locon)).toBe(false);
    expect(matchesTargets('down_blocks.0.resnets.1.conv2', TARGET_PRESETS.attention)).toBe(false);
    expect(targetPreset('attention+conv')).toEqual(locon);
    expect(() => targetPreset('toString')).toThrow(/expected one of attention, attention\+conv/);
  });

  it('takes about 100 contribution snapshots a run, at most one a step', () => {
    expect(contributionsInterval(16)).toBe(1);
    expect(contributionsInterval(100)).toBe(1);
    expect(contributionsInterval(101)).toBe(2);
    expect(contributionsInterval(400)).toBe(4);
  });
});
