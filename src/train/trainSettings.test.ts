// Settings checks: identifier and class word in the prompt, ranges, and the σ/k warnings from DESIGN.md §5.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_TRAIN_SETTINGS,
  identifiersIn,
  previewPromptOf,
  validateTrainSettings,
  withDefaultSettings,
} from './trainSettings';

const errors = (s = {}, ids?: string[]) =>
  validateTrainSettings({ ...DEFAULT_TRAIN_SETTINGS, ...s }, ids).filter((i) => i.level === 'error');
const warnings = (s = {}) =>
  validateTrainSettings({ ...DEFAULT_TRAIN_SETTINGS, ...s }).filter((i) => i.level === 'warning');

describe('train settings', () => {
  it('accepts the defaults', () => {
    expect(validateTrainSettings(DEFAULT_TRAIN_SETTINGS)).toEqual([]);
  });

  it('requires an identifier token in the prompt', () => {
    expect(errors({ prompt: 'a photo of my dog' })).toEqual([
      expect.objectContaining({ field: 'prompt', message: expect.stringMatching(/identifier/) }),
    ]);
    expect(errors({ prompt: 'a <v2> cat' })).toEqual([]);
    expect(identifiersIn('a <v1> and <v2> dog')).toEqual(['<v1>', '<v2>']);
  });

  it('refuses random crops for a latent model only', () => {
    const crop = { ...DEFAULT_TRAIN_SETTINGS, minCrop: 0.8 };
    expect(validateTrainSettings(crop, undefined, 'vae')).toEqual([
      {
        field: 'minCrop',
        level: 'error',
        message: expect.stringMatching(/Random crops need a pixel-space model/),
      },
    ]);
    expect(validateTrainSettings(crop, undefined, 'pixel')).toEqual([]);
    expect(validateTrainSettings({ ...crop, minCrop: 1 }, undefined, 'vae')).toEqual([]);
  });

  it('checks the identifier against the tokens the model reserves', () => {
    expect(errors({ prompt: 'a <sks> dog' }, ['<v1>', '<v2>'])[0].message).toMatch(/<sks>.*<v1>/);
    expect(errors({ prompt: 'a <v2> dog' }, ['<v1>', '<v2>'])).toEqual([]);
  });

  it('previews draw the preview prompt, else the training prompt; its identifiers are checked', () => {
    expect(previewPromptOf({ prompt: '<v1> dog', previewPrompt: '' })).toBe('<v1> dog');
    expect(previewPromptOf({ prompt: '<v1> dog', previewPrompt: ' <v1> dog in the snow ' })).toBe(
      '<v1> dog in the snow',
    );
    expect(errors({ previewPrompt: '<v1> dog in the snow' }, ['<v1>', '<v2>'])).toEqual([]);
    expect(errors({ previewPrompt: '<v9> dog' }, ['<v1>', '<v2>'])).toEqual([
      expect.objectContaining({
        field: 'previewPrompt',
        message: expect.stringMatching(/<v9> is not an identifier/),
      }),
    ]);
    expect(warnings({ previewPrompt: 'a dog in the snow' })).toEqual([
      expect.objectContaining({
        field: 'previewPrompt',
        message: expect.stringMatching(/base model’s idea/),
      }),
    ]);
    // Sessions saved before the field existed preview the training prompt.
    expect(withDefaultSettings({ prompt: '<v1> mug' }).previewPrompt).toBe('');
  });

  it('warns when the class word is missing', () => {
    expect(warnings({ prompt: 'a photo of <v1>' })[0]).toMatchObject({ field: 'prompt' });
    expect(warnings({ prompt: '<v1> teapot' })).toEqual([]);
  });

  it('rejects out-of-range numbers and names the field', () => {
    expect(errors({ steps: 0 }).map((i) => i.field)).toEqual(['steps']);
    expect(errors({ steps: 2.5 }).map((i) => i.field)).toEqual(['steps']);
    expect(errors({ priorRank: 80 }).map((i) => i.field)).toEqual(['priorRank']);
    expect(errors({ initialRank: 65 }).map((i) => i.field)).toEqual(['initialRank']);
    expect(errors({ priorSigma: 0 }).map((i) => i.field)).toEqual(['priorSigma']);
    expect(errors({ learningRate: Number.NaN }).map((i) => i.field)).toEqual(['learningRate']);
    expect(errors({ learningRateB: 0 }).map((i) => i.field)).toEqual(['learningRateB']);
    expect(errors({ gradientAccumulation: 0 }).map((i) => i.field)).toEqual(['gradientAccumulation']);
    expect(errors({ warmupSteps: -1 }).map((i) => i.field)).toEqual(['warmupSteps']);
    expect(warnings({ warmupSteps: 400 }).map((i) => i.field)).toEqual(['warmupSteps']);
    expect(errors({ minCrop: 0 }).map((i) => i.field)).toEqual(['minCrop']);
    // Prior preservation is checked only when a class prompt is set.
    expect(errors({ classImages: 0, priorLossWeight: -1 })).toEqual([]);
    expect(
      errors({ classPrompt: '<v1> dog', classImages: 0, priorLossWeight: -1 }).map((i) => i.field),
    ).toEqual(['classPrompt', 'classImages', 'priorLossWeight']);
    expect(errors({ classPrompt: 'dog', classImages: 12, priorLossWeight: 0.5 })).toEqual([]);
  });

  it('skips LoRA² fields for the fixed-rank baseline but checks its rank', () => {
    expect(errors({ mode: 'fixed', priorSigma: -1 })).toEqual([]);
    expect(errors({ mode: 'fixed', fixedRank: 0 }).map((i) => i.field)).toEqual(['fixedRank']);
  });

  it('warns below the σ cliff and for a weak prior', () => {
    expect(warnings({ priorSigma: 0.15 })[0].message).toMatch(/collapse/);
    expect(warnings({ priorSigma: 2 })[0].message).toMatch(/run away/);
    expect(warnings({ quantile: 0.8 })[0].field).toBe('quantile');
  });

  it('fills missing or mistyped fields with defaults', () => {
    const s = withDefaultSettings({
      prompt: 'a <v1> mug',
      steps: 'many',
      maxRank: 32,
      mode: 'weird',
      layers: 'everything',
    });
    expect(s).toEqual({ ...DEFAULT_TRAIN_SETTINGS, prompt: 'a <v1> mug', maxRank: 32 });
    expect(withDefaultSettings(undefined)).toEqual(DEFAULT_TRAIN_SETTINGS);
    expect(withDefaultSettings({ layers: 'attention+conv' }).layers).toBe('attention+conv');
    expect(withDefaultSettings({ layers: 'toString' }).layers).toBe('attention');
  });

  it('gives older sessions, which had one rate for A and B, their A rate for B', () => {
    expect(withDefaultSettings({ learningRate: 0.01 })).toMatchObject({
      learningRate: 0.01,
      learningRateB: 0.01,
    });
    expect(withDefaultSettings({ learningRate: 0.01, learningRateB: 0.02 }).learningRateB).toBe(0.02);
    expect(withDefaultSettings({ learningRateB: 'fast' }).learningRateB).toBe(
      DEFAULT_TRAIN_SETTINGS.learningRate,
    );
    expect(withDefaultSettings({ lrSchedule: 'linear' }).lrSchedule).toBe('constant');
    expect(withDefaultSettings({ lrSchedule: 'cosine', flip: true })).toMatchObject({
      lrSchedule: 'cosine',
      flip: true,
    });
  });
});
