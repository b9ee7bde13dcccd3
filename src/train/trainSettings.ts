// Training settings as the studio offers them: the defaults of DESIGN.md §5 and the checks a person sees
// next to each field before a run starts.
import type { TrainSettings } from '../../workers/api';
import { TARGET_PRESETS } from '../lora/adapter';

/** DESIGN.md §5 "defaults that held up": k = 0.9, r₀ = 2, σ = 0.3, r_init = 4, R_max = 64, lr 3e-3 / 1e-2. */
export const DEFAULT_TRAIN_SETTINGS: Readonly<TrainSettings> = Object.freeze({
  prompt: 'a photo of <v1> dog',
  steps: 400,
  batchSize: 1,
  learningRate: 3e-3,
  learningRateB: 3e-3,
  rateLearningRate: 1e-2,
  mode: 'lora2',
  fixedRank: 16,
  maxRank: 64,
  initialRank: 4,
  priorRank: 2,
  priorSigma: 0.3,
  quantile: 0.9,
  seed: 0,
  previewEvery: 100,
  previewPrompt: '',
  checkpointEvery: 50,
  layers: 'attention',
  gradientAccumulation: 1,
  gradientCheckpointing: false,
  lrSchedule: 'constant',
  warmupSteps: 0,
  flip: false,
  minCrop: 1,
  classPrompt: '',
  classImages: 8,
  priorLossWeight: 1,
});

export type SettingsField = keyof TrainSettings;
export interface SettingsIssue {
  field: SettingsField;
  level: 'error' | 'warning';
  message: string;
}

/** Identifier tokens look like `<v1>`; a model may reserve its own list. */
export const IDENTIFIER_PATTERN = /<[A-Za-z][\w-]*>/g;
const FILLER_WORDS = new Set(['a', 'an', 'the', 'photo', 'picture', 'image', 'of', 'in', 'on', 'with', 'my']);

/** The identifier tokens a prompt uses, in order. */
export function identifiersIn(prompt: string): string[] {
  return prompt.match(IDENTIFIER_PATTERN) ?? [];
}

/** The prompt's problems (no identifier, one the model does not reserve, no class word), as settings issues. */
export function checkPrompt(prompt: string, reserved: readonly string[] | undefined): SettingsIssue[] {
  const ids = identifiersIn(prompt);
  const example = reserved?.[0] ?? '<v1>';
  if (ids.length === 0) {
    return [
      {
        field: 'prompt',
        level: 'error',
        message: `The prompt needs an identifier token for your subject, e.g. "a photo of ${example} dog".`,
      },
    ];
  }
  const issues: SettingsIssue[] = [];
  const unknown = reserved && reserved.length > 0 ? ids.filter((t) => !reserved.includes(t)) : [];
  if (unknown.length > 0) {
    issues.push({
      field: 'prompt',
      level: 'error',
      message: `${unknown.join(', ')} is not an identifier this model reserves (use ${reserved!.slice(0, 3).join(', ')}).`,
    });
  }
  const words = prompt
    .replace(IDENTIFIER_PATTERN, ' ')
    .toLowerCase()
    .split(/[^a-z]+/)
    .filter((w) => w && !FILLER_WORDS.has(w));
  if (words.length === 0) {
    issues.push({
      field: 'prompt',
      level: 'warning',
      message: `Add a class word after the identifier (${ids[0]} dog, ${ids[0]} person, ${ids[0]} mug): it anchors what the subject is.`,
    });
  }
  return issues;
}

function isInt(x: number, lo: number, hi: number): boolean {
  return Number.isInteger(x) && x >= lo && x <= hi;
}

/** Why a latent model cannot train with random crops (the UI's check and the worker's say the same). */
export const LATENT_CROP_MESSAGE =
  'Random crops need a pixel-space model: a latent model encodes each photo with its VAE once, before the ' +
  'first step. Set the smallest crop to 1 (off); flips still work.';

/**
 * Everything wrong or risky about `s`; training may start when no issue has level 'error'. `codec` is the
 * model's (ModelInfo.codec): a latent model cannot take random crops.
 */
export function validateTrainSettings(
  s: TrainSettings,
  identifierTokens?: readonly string[],
  codec?: 'pixel' | 'vae',
): SettingsIssue[] {
  const issues = checkPrompt(s.prompt, identifierTokens);
  const err = (field: SettingsField, message: string) => issues.push({ field, level: 'error', message });
  const warn = (field: SettingsField, message: string) => issues.push({ field, level: 'warning', message });

  if (!isInt(s.steps, 1, 100_000)) err('steps', 'Steps must be a whole number from 1 to 100000.');
  if (!isInt(s.batchSize, 1, 64)) err('batchSize', 'Batch size must be a whole number from 1 to 64.');
  if (!(s.learningRate > 0 && s.learningRate < 1)) err('learningRate', 'Learning rate must be in (0, 1).');
  if (!(s.learningRateB > 0 && s.learningRateB < 1))
    err('learningRateB', 'The B learning rate must be in (0, 1).');
  if (!(s.rateLearningRate > 0 && s.rateLearningRate < 1))
    err('rateLearningRate', 'The ρ learning rate must be in (0, 1).');
  if (!isInt(s.maxRank, 1, 256)) err('maxRank', 'Max rank must be a whole number from 1 to 256.');
  if (s.mode === 'fixed') {
    if (!isInt(s.fixedRank, 1, 256)) err('fixedRank', 'Fixed rank must be a whole number from 1 to 256.');
  } else {
    if (!isInt(s.initialRank, 1, s.maxRank)) err('initialRank', `Initial rank must be from 1 to max rank.`);
    if (!(s.priorRank >= 1 && s.priorRank <= s.maxRank))
      err('priorRank', 'Prior rank r₀ must be from 1 to max rank.');
    if (!(s.priorSigma > 0)) err('priorSigma', 'Prior width σ must be positive.');
    else if (s.priorSigma < 0.2)
      warn('priorSigma', 'σ below 0.2 tends to collapse every layer to rank ≈ 2 whatever the data.');
    else if (s.priorSigma > 1)
      warn('priorSigma', 'A weak prior (σ > 1) lets ranks run away on noisy losses.');
    if (!(s.quantile > 0.5 && s.quantile < 1)) err('quantile', 'Quantile k must be in (0.5, 1).');
    else if (s.quantile < 0.85) warn('quantile', 'k below 0.85 keeps layers that start small stuck small.');
  }
  if (!isInt(s.seed, 0, 2 ** 32 - 1)) err('seed', 'Seed must be a whole number ≥ 0.');
  if (!isInt(s.gradientAccumulation, 1, 64))
    err('gradientAccumulation', 'Gradient accumulation must be a whole number from 1 to 64.');
  if (!isInt(s.warmupSteps, 0, 100_000)) err('warmupSteps', 'Warm-up must be a whole number of steps ≥ 0.');
  else if (s.warmupSteps >= s.steps) warn('warmupSteps', 'The warm-up lasts the whole run.');
  if (!(s.minCrop > 0 && s.minCrop <= 1)) err('minCrop', 'The smallest crop must be a fraction in (0, 1].');
  else if (codec === 'vae' && s.minCrop < 1) err('minCrop', LATENT_CROP_MESSAGE);
  if (s.classPrompt.trim()) {
    if (identifiersIn(s.classPrompt).length > 0)
      err('classPrompt', 'The class prompt is the plain class word(s), without an identifier like <v1>.');
    if (!isInt(s.classImages, 1, 1000))
      err('classImages', 'Class images must be a whole number from 1 to 1000.');
    if (!(s.priorLossWeight >= 0 && s.priorLossWeight <= 10))
      err('priorLossWeight', 'The prior loss weight must be from 0 to 10.');
  }
  if (!isInt(s.previewEvery, 0, 100_000)) err('previewEvery', 'Preview interval must be 0 (never) or more.');
  if (s.previewPrompt.trim()) {
    const ids = identifiersIn(s.previewPrompt);
    const unknown = identifierTokens?.length ? ids.filter((t) => !identifierTokens.includes(t)) : [];
    if (unknown.length)
      err('previewPrompt', `${unknown.join(', ')} is not an identifier this model reserves.`);
    else if (ids.length === 0)
      warn(
        'previewPrompt',
        'Without an identifier the previews show the base model’s idea, not your subject.',
      );
  }
  if (!isInt(s.checkpointEvery, 1, 100_000))
    err('checkpointEvery', 'Checkpoint interval must be at least 1.');
  return issues;
}

/** What the training previews draw: the preview prompt, else the training prompt. */
export function previewPromptOf(s: Pick<TrainSettings, 'prompt' | 'previewPrompt'>): string {
  return s.previewPrompt?.trim() || s.prompt;
}

/** `raw` completed with defaults for fields it lacks or holds with the wrong type (older records, imports). */
export function withDefaultSettings(raw: Partial<Record<string, unknown>> | undefined): TrainSettings {
  const out: Record<string, unknown> = { ...DEFAULT_TRAIN_SETTINGS };
  for (const [k, def] of Object.entries(DEFAULT_TRAIN_SETTINGS)) {
    const v = raw?.[k];
    if (typeof v === typeof def && (typeof v !== 'number' || Number.isFinite(v))) out[k] = v;
  }
  // Sessions from before B had its own rate trained both factors at learningRate.
  if (!Number.isFinite(raw?.learningRateB)) out.learningRateB = out.learningRate;
  if (out.mode !== 'lora2' && out.mode !== 'fixed') out.mode = DEFAULT_TRAIN_SETTINGS.mode;
  if (out.lrSchedule !== 'constant' && out.lrSchedule !== 'cosine')
    out.lrSchedule = DEFAULT_TRAIN_SETTINGS.lrSchedule;
  if (typeof out.layers !== 'string' || !Object.hasOwn(TARGET_PRESETS, out.layers))
    out.layers = DEFAULT_TRAIN_SETTINGS.layers;
  return out as unknown as TrainSettings;
}
