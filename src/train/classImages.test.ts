import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RgbaImage } from '../io/png';
import type { GenerateOptions } from '../models/pipeline';
import { classImageKey, classImages, memoryClassImageCache, type ClassImageSpec } from './classImages';
import { fileClassImageCache } from './classImagesFiles';

const spec: ClassImageSpec = {
  model: 'emoji-tiny',
  prompt: 'robot',
  count: 3,
  seed: 10,
  steps: 5,
  guidance: 4,
};

/** A fake base model: a 2×2 image whose pixels encode the seed; records every call. */
function fakeModel() {
  const calls: GenerateOptions[] = [];
  const generate = async (o: GenerateOptions): Promise<RgbaImage> => {
    calls.push(o);
    return { width: 2, height: 2, data: new Uint8ClampedArray(16).fill(o.seed) };
  };
  return { calls, generate };
}

describe('class images (prior preservation)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('draws count images with seeds seed…seed+count−1 once, then serves them from the cache', async () => {
    const cache = memoryClassImageCache();
    const m = fakeModel();
    const progress: [number, number, boolean][] = [];
    const first = await classImages(spec, m.generate, cache, (...p) => progress.push(p));
    expect(m.calls.map((c) => [c.prompt, c.seed, c.steps, c.guidance])).toEqual([
      ['robot', 10, 5, 4],
      ['robot', 11, 5, 4],
      ['robot', 12, 5, 4],
    ]);
    expect(progress).toEqual([
      [1, 3, false],
      [2, 3, false],
      [3, 3, false],
    ]);
    const again = await classImages(spec, m.generate, cache);
    expect(m.calls).toHaveLength(3);
    expect(again).toBe(first);
    expect(cache.puts).toBe(1);
    // Any field that changes the pictures is part of the key.
    for (const change of [
      { model: 'other' },
      { prompt: 'dog' },
      { count: 4 },
      { seed: 0 },
      { steps: 6 },
      { guidance: 7 },
    ])
      expect(classImageKey({ ...spec, ...change })).not.toBe(classImageKey(spec));
  });

  it('rejects a missing class prompt, an identifier in it, and bad counts', async () => {
    const m = fakeModel();
    const cache = memoryClassImageCache();
    await expect(classImages({ ...spec, prompt: ' ' }, m.generate, cache)).rejects.toThrow(/class prompt/);
    await expect(classImages({ ...spec, prompt: '<v1> robot' }, m.generate, cache)).rejects.toThrow(
      /identifier/,
    );
    await expect(classImages({ ...spec, count: 0 }, m.generate, cache)).rejects.toThrow(/class images 0/);
    expect(m.calls).toHaveLength(0);
  });

  it('file cache: PNGs + manifest; another spec or a lost file draws again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'class-images-'));
    dirs.push(dir);
    const m = fakeModel();
    const first = await classImages(spec, m.generate, fileClassImageCache(dir));
    expect((await readdir(dir)).sort()).toEqual([
      'class-000.png',
      'class-001.png',
      'class-002.png',
      'manifest.json',
    ]);
    const again = await classImages(spec, m.generate, fileClassImageCache(dir));
    expect(m.calls).toHaveLength(3);
    expect(again.map((i) => Array.from(i.data))).toEqual(first.map((i) => Array.from(i.data)));
    await classImages({ ...spec, prompt: 'dog' }, m.generate, fileClassImageCache(dir));
    expect(m.calls).toHaveLength(6);
    await writeFile(join(dir, 'class-001.png'), 'not a png');
    await classImages({ ...spec, prompt: 'dog' }, m.generate, fileClassImageCache(dir));
    expect(m.calls).toHaveLength(9);
  });
});
