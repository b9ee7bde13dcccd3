// Writes personalization photos: an emoji design composited on varied backgrounds (src/train/subject.ts).
// npm run make-subject -- --emoji 1f916 [--count 6] [--size 64] [--seed 1] [--out out/subject-1f916]
// --emoji takes a code of the held-out designs (tools/reference/holdout.json, never seen in pretraining);
// --image PATH takes any PNG with an alpha channel instead.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { decodePng, encodePng } from '../src/io/png';
import { compositeSubject } from '../src/train/subject';

interface HoldoutItem {
  code: string;
  image: string;
  label: string;
}

/** The held-out design with this code (case-insensitive), or an error listing the ones there are. */
export async function holdoutItem(code: string): Promise<HoldoutItem> {
  const { items } = JSON.parse(await readFile('tools/reference/holdout.json', 'utf8')) as {
    items: HoldoutItem[];
  };
  const item = items.find((i) => i.code.toLowerCase() === code.toLowerCase());
  if (!item)
    throw new Error(
      `${code} is not a held-out design; choose one of ${items.map((i) => `${i.code.toLowerCase()} (${i.label})`).join(', ')}`,
    );
  return item;
}

/** Composites the subject and writes `count` PNGs into `out`; returns their paths. */
export async function writeSubjectPhotos(
  imagePath: string,
  out: string,
  opts: { count: number; size: number; seed: number },
): Promise<string[]> {
  const subject = await decodePng(new Uint8Array(await readFile(imagePath)));
  await mkdir(out, { recursive: true });
  const paths: string[] = [];
  for (const [i, img] of compositeSubject(subject, opts).entries()) {
    const p = join(out, `photo-${String(i + 1).padStart(2, '0')}.png`);
    await writeFile(p, await encodePng(img));
    paths.push(p);
  }
  return paths;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      emoji: { type: 'string' },
      image: { type: 'string' },
      count: { type: 'string', default: '6' },
      size: { type: 'string', default: '64' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
    },
  });
  if (!args.emoji === !args.image) {
    console.error(
      'usage: npm run make-subject -- (--emoji CODE | --image PNG) [--count 6] [--size 64] [--out DIR]',
    );
    process.exit(1);
  }
  const image = args.image ?? (await holdoutItem(args.emoji!)).image;
  const out = resolve(args.out ?? `out/subject-${args.emoji ?? 'image'}`);
  const paths = await writeSubjectPhotos(image, out, {
    count: Number(args.count),
    size: Number(args.size),
    seed: Number(args.seed),
  });
  console.log(`wrote ${paths.length} photos of ${image} to ${out}`);
}

if (process.argv[1]?.endsWith('make-subject.ts')) await main();
