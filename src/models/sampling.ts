// A model's recommended sampling settings: the optional sampling.json of LoRA² Studio model folders
// ({"guidance": 2, "steps": 25, "recomputeEpsilon": true, "trainPrompt": "<v1> dog face"}). A model trained until
// its prompts bite needs far less classifier-free guidance than one whose text conditioning is weak, and a
// pixel-space model that clips x₀ may want DDIM's ε taken from the clipped x₀; the folder says which, and the
// Generate tab, the training previews, the class images and `npm run sample` start from it. "trainPrompt" is an
// example training prompt in the model's own language (the studio's built-in "a photo of <v1> dog" suits SD-class
// models; a small model trained on captions like "dog face" reads "photo" as a camera); a session that has not
// trained and still has the built-in prompt takes it. Folders without the file (SD-class models) get BUILT_IN.
import { identifiersIn } from '../train/trainSettings';
import { ModelFolderError, type ModelFolder } from './folder';

export const SAMPLING_FILE = 'sampling.json';
/** The longest trainPrompt taken (the studio's prompt field is one line). */
export const TRAIN_PROMPT_MAX = 200;

export interface SamplingDefaults {
  /** Classifier-free guidance scale. */
  guidance: number;
  /** Sampler steps. */
  steps: number;
  /** With clip_sample: ε from the clipped x₀ instead of the model's (SamplerOptions.recomputeEpsilon). */
  recomputeEpsilon: boolean;
  /** An example training prompt with an identifier token, phrased as the model was trained; absent: none. */
  trainPrompt?: string;
  /** Where the values came from. */
  source: 'sampling.json' | 'built-in';
}

/** What a folder without sampling.json gets. */
export const BUILT_IN_SAMPLING: SamplingDefaults = {
  guidance: 5,
  steps: 25,
  recomputeEpsilon: false,
  source: 'built-in',
};

/** Validates sampling.json's parsed content; errors name the folder, the file and the key. */
export function parseSamplingDefaults(folderName: string, raw: unknown): SamplingDefaults {
  const fail = (msg: string) => new ModelFolderError(folderName, SAMPLING_FILE, msg);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw fail('must be a JSON object such as {"guidance": 2, "steps": 25}');
  }
  const o = raw as Record<string, unknown>;
  const num = (key: 'guidance' | 'steps', lo: number, hi: number, integer: boolean): number => {
    const v = o[key];
    if (v === undefined) return BUILT_IN_SAMPLING[key];
    if (
      typeof v !== 'number' ||
      !Number.isFinite(v) ||
      v < lo ||
      v > hi ||
      (integer && !Number.isInteger(v))
    ) {
      throw fail(
        `"${key}" must be ${integer ? 'an integer' : 'a number'} from ${lo} to ${hi} (got ${JSON.stringify(v)})`,
      );
    }
    return v;
  };
  const flag = o.recomputeEpsilon ?? BUILT_IN_SAMPLING.recomputeEpsilon;
  if (typeof flag !== 'boolean') {
    throw fail(`"recomputeEpsilon" must be true or false (got ${JSON.stringify(flag)})`);
  }
  const prompt = o.trainPrompt;
  if (
    prompt !== undefined &&
    (typeof prompt !== 'string' ||
      prompt !== prompt.trim() ||
      /[\r\n]/.test(prompt) ||
      prompt.length > TRAIN_PROMPT_MAX ||
      identifiersIn(prompt).length === 0)
  ) {
    throw fail(
      `"trainPrompt" must be one line of at most ${TRAIN_PROMPT_MAX} characters with an identifier token, ` +
        `e.g. "<v1> dog face" (got ${JSON.stringify(prompt)})`,
    );
  }
  return {
    guidance: num('guidance', 1, 30, false),
    steps: num('steps', 1, 1000, true),
    recomputeEpsilon: flag,
    ...(prompt === undefined ? {} : { trainPrompt: prompt }),
    source: 'sampling.json',
  };
}

/** The folder's sampling.json, or BUILT_IN_SAMPLING when it has none. */
export async function readSamplingDefaults(folder: ModelFolder): Promise<SamplingDefaults> {
  if (!(await folder.has(SAMPLING_FILE))) return BUILT_IN_SAMPLING;
  return parseSamplingDefaults(folder.name, await folder.json(SAMPLING_FILE));
}
