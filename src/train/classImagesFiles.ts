// Class images as PNG files for the Node CLI: <dir>/class-NNN.png plus manifest.json naming the spec they
// were drawn for. The manifest is written last (temporary file, then rename), so a run stopped while
// drawing leaves no manifest and the next run draws again.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodePng, encodePng } from '../io/png';
import type { ClassImageCache } from './classImages';

export function fileClassImageCache(dir: string): ClassImageCache {
  const name = (i: number) => `class-${String(i).padStart(3, '0')}.png`;
  return {
    async get(key) {
      let manifest: { key: string; count: number };
      try {
        manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
      } catch {
        return undefined;
      }
      if (manifest.key !== key) return undefined;
      const out = [];
      for (let i = 0; i < manifest.count; i++) {
        try {
          out.push(await decodePng(new Uint8Array(await readFile(join(dir, name(i))))));
        } catch {
          return undefined;
        }
      }
      return out;
    },
    async put(key, images) {
      await mkdir(dir, { recursive: true });
      for (const [i, img] of images.entries()) await writeFile(join(dir, name(i)), await encodePng(img));
      const tmp = join(dir, 'manifest.json.tmp');
      await writeFile(tmp, JSON.stringify({ key, count: images.length }));
      await rename(tmp, join(dir, 'manifest.json'));
    },
  };
}
