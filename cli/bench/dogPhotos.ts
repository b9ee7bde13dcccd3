// The small training set the timing benches share: three dog emoji from the npm emoji images, cropped to the
// model's resolution and encoded into its space, with the embedding of the model's example prompt; and the LoRA²
// trainer the benches build on it.
import { readFile } from 'node:fs/promises';
import { decodePng } from '../../src/io/png';
import { lora2Settings, targetPreset } from '../../src/lora/adapter';
import type { DiffusionModel } from '../../src/models/pipeline';
import { NoiseSchedule } from '../../src/models/schedulers';
import type { Engine } from '../../src/tensor/engine';
import { DEFAULT_TRAINER_CONFIG, Trainer, type Embedding, type TrainerConfig } from '../../src/train/trainer';
import { cropResize } from '../../src/train/photos';

export async function dogPhotos(
  model: DiffusionModel,
): Promise<{ images: Float32Array[]; embedding: Embedding }> {
  const size = model.resolution;
  const photos = [];
  for (const code of ['1f436', '1f415', '1f429']) {
    const png = await readFile(`node_modules/emoji-datasource-google/img/google/64/${code}.png`);
    photos.push({ width: size, height: size, data: cropResize(await decodePng(new Uint8Array(png)), size) });
  }
  const images = await model.encodeImages(photos);
  return { images, embedding: await model.embed(model.sampling.trainPrompt ?? '<v1> dog') };
}

/**
 * A LoRA² trainer at the defaults on `photos` (from `dogPhotos`), for the `targets` preset (attention or
 * attention+conv), without contribution snapshots; `config` sets the session id, the steps and the rest.
 */
export function dogTrainer(
  engine: Engine,
  model: DiffusionModel,
  photos: { images: Float32Array[]; embedding: Embedding },
  targets: string,
  config: Pick<TrainerConfig, 'sessionId' | 'steps' | 'batchSize'> & Partial<TrainerConfig>,
): Promise<Trainer> {
  return Trainer.create(
    engine,
    model.unet,
    new NoiseSchedule(model.scheduler),
    { images: photos.images, imageShape: model.inputShape, embedding: photos.embedding },
    {
      ...DEFAULT_TRAINER_CONFIG,
      ...config,
      contributionsEvery: 0,
      lora: lora2Settings({ targets: targetPreset(targets) }),
    },
  );
}
