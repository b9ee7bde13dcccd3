// The small training set the timing benches share: three dog emoji from the npm emoji images, cropped to the
// model's resolution and encoded into its space, with the embedding of the model's example prompt.
import { readFile } from 'node:fs/promises';
import { decodePng } from '../../src/io/png';
import type { DiffusionModel } from '../../src/models/pipeline';
import type { Embedding } from '../../src/train/trainer';
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
