// A model's recommended sampling settings: the optional sampling.json of LoRA² Studio model folders
// ({"guidance": 2, "steps": 25, "recomputeEpsilon": true}). A model trained until its prompts bite needs far less
// classifier-free guidance than one whose text conditioning is weak, and a pixel-space model that clips x₀ may
// want DDIM's ε taken from the clipped x₀; the folder says which, and the Generate tab, the training previews,
// the class images and `npm run sample` start from it. Folders without the file (SD-class models) get BUILT_IN.
import { ModelFolderError, type ModelFolder } from './folder';

export const SAMPLING_FILE = 'sampling.json';

export interface SamplingDefaults {
  /** Classifier-free guidance scale. */
  guidance: number;
  /** Sampler steps. */
  steps: number;
  /** With clip_sample: ε from the clipped x₀ instead of the model's (SamplerOptions.recomputeEpsilon). */
  recomputeEpsilon: boolean;
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
  return {
    guidance: num('guidance', 1, 30, false),
    steps: num('steps', 1, 1000, true),
    recomputeEpsilon: flag,
    source: 'sampling.json',
  };
}

/** The folder's sampling.json, or BUILT_IN_SAMPLING when it has none. */
export async function readSamplingDefaults(folder: ModelFolder): Promise<SamplingDefaults> {
  if (!(await folder.has(SAMPLING_FILE))) return BUILT_IN_SAMPLING;
  return parseSamplingDefaults(folder.name, await folder.json(SAMPLING_FILE));
}
