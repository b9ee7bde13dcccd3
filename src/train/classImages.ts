// Prior preservation's class images: drawn once by the base model (no adapters attached) for the class
// prompt, then kept in a cache (files in Node, IndexedDB in the browser) so reruns and resumes reuse them.
import { get, set, type UseStore } from 'idb-keyval';
import type { RgbaImage } from '../io/png';
import type { DiffusionModel, GenerateOptions } from '../models/pipeline';
import type { TrainData } from './trainer';
import { storeKeys } from './sessionStore';
import { identifiersIn } from './trainSettings';

/** Seed of the first class image; image i uses CLASS_IMAGE_SEED + i. */
export const CLASS_IMAGE_SEED = 1000;

export interface ClassImageSpec {
  /** Identifies the base model (folder name, or URL); images of another model are not reused. */
  model: string;
  /** The class prompt without the identifier, e.g. "robot". */
  prompt: string;
  count: number;
  /** Image i uses seed + i. */
  seed: number;
  steps: number;
  guidance: number;
}

export interface ClassImageCache {
  /** The images stored under `key`, or undefined. */
  get(key: string): Promise<RgbaImage[] | undefined>;
  put(key: string, images: RgbaImage[]): Promise<void>;
}

/** The cache key of a spec: every field that changes the pictures. */
export function classImageKey(s: ClassImageSpec): string {
  return JSON.stringify([s.model, s.prompt, s.count, s.seed, s.steps, s.guidance]);
}

/** Throws on a spec that cannot be drawn. */
export function checkClassImageSpec(s: ClassImageSpec): void {
  if (!s.prompt.trim()) throw new Error('prior preservation needs a class prompt (e.g. "robot")');
  if (identifiersIn(s.prompt).length > 0)
    throw new Error(`class prompt "${s.prompt}" contains an identifier token; use the plain class word`);
  if (!(Number.isInteger(s.count) && s.count >= 1 && s.count <= 1000))
    throw new Error(`class images ${s.count}: expected a whole number from 1 to 1000`);
  if (!(Number.isInteger(s.steps) && s.steps >= 1))
    throw new Error(`class image steps ${s.steps}: expected ≥ 1`);
}

/**
 * The class images of `spec`: from the cache when it has all of them, else drawn with `generate` (the base
 * model: call this before any adapter is attached) and stored. `onImage` reports each one drawn.
 */
export async function classImages(
  spec: ClassImageSpec,
  generate: (opts: GenerateOptions) => Promise<RgbaImage>,
  cache: ClassImageCache,
  onImage: (done: number, total: number, cached: boolean) => void = () => undefined,
): Promise<RgbaImage[]> {
  checkClassImageSpec(spec);
  const key = classImageKey(spec);
  const hit = await cache.get(key);
  if (hit && hit.length === spec.count) {
    onImage(spec.count, spec.count, true);
    return hit;
  }
  const out: RgbaImage[] = [];
  for (let i = 0; i < spec.count; i++) {
    out.push(
      await generate({
        prompt: spec.prompt,
        seed: spec.seed + i,
        steps: spec.steps,
        guidance: spec.guidance,
        sampler: 'ddim',
      }),
    );
    onImage(i + 1, spec.count, false);
  }
  await cache.put(key, out);
  return out;
}

/**
 * Prior preservation's part of the TrainData: `model` (the base model, before any adapter is attached) draws
 * or the cache gives the class images, in model space, and the class prompt's embedding.
 */
export async function classTrainData(
  model: Pick<DiffusionModel, 'generate' | 'embed' | 'encodeImages'>,
  spec: Omit<ClassImageSpec, 'seed'>,
  cache: ClassImageCache,
  onImage?: (done: number, total: number, cached: boolean) => void,
): Promise<Required<Pick<TrainData, 'classImages' | 'classEmbedding'>>> {
  const drawn = await classImages(
    { ...spec, seed: CLASS_IMAGE_SEED },
    (o) => model.generate(o),
    cache,
    onImage,
  );
  return {
    // Through the codec like the photos (a latent model's VAE encoder).
    classImages: await model.encodeImages(drawn),
    classEmbedding: await model.embed(spec.prompt),
  };
}

/** A cache in memory (tests, and runs that should not keep the images). */
export function memoryClassImageCache(): ClassImageCache & { puts: number } {
  const m = new Map<string, RgbaImage[]>();
  return {
    puts: 0,
    async get(key) {
      return m.get(key);
    },
    async put(key, images) {
      this.puts++;
      m.set(key, images);
    },
  };
}

/**
 * In the studio's idb-keyval database under `class:<key>` (shared by every session of the same spec; the
 * Sessions tab lists and deletes them through SessionStore.classImageSets / deleteClassImages).
 */
export function idbClassImageCache(store: UseStore): ClassImageCache {
  return {
    get: (key) => get<RgbaImage[]>(storeKeys.classImages(key), store),
    put: (key, images) => set(storeKeys.classImages(key), images, store),
  };
}
