// Writes personalization photos: an emoji design composited on varied backgrounds (src/train/subject.ts).
// npm run make-subject -- --emoji 1f916 [--count 6] [--size 64] [--seed 1] [--out out/subject-1f916]
// --emoji takes a code of the held-out designs (tools/reference/holdout.json, never seen in pretraining);
// --image PATH takes any PNG with an alpha channel instead.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { decodePng, encodePng } from '../src/io/png';
import { compositeSubject, type SubjectOptions } from '../src/train/subject';
import { cliArgs } from './args';

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
      `${code} is not a held-out design; choose one of ${[
        ...new Set(items.map((i) => `${i.code.toLowerCase()} (${i.label})`)),
      ].join(', ')}`,
    );
  return item;
}

/** Composites the subject and writes `count` PNGs into `out`; returns their paths. */
export async function writeSubjectPhotos(
  imagePath: string,
  out: string,
  opts: Omit<SubjectOptions, 'scale'>,
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
  const args = cliArgs(
    'make-subject',
    'Writes personalization photos: an emoji design composited on varied backgrounds. --emoji takes a held-out\n' +
      'design (tools/reference/holdout.json, never seen in pretraining); --image any PNG with an alpha channel.',
    {
      emoji: { type: 'string', help: 'code of a held-out design, e.g. 1f916 (or --image)' },
      image: { type: 'string', help: 'a PNG with an alpha channel (or --emoji)' },
      count: { type: 'string', default: '6', help: 'photos to write' },
      size: { type: 'string', default: '64', help: 'side of each photo in pixels' },
      seed: { type: 'string', default: '1', help: 'seed of the backgrounds and placements' },
      out: { type: 'string', help: 'output folder (default: out/subject-CODE)' },
      background: { type: 'string', default: 'varied', help: 'varied (colours, gradients) or white' },
    },
  );
  if (!args.emoji === !args.image) {
    console.error(
      'usage: npm run make-subject -- (--emoji CODE | --image PNG) [--count 6] [--size 64] [--out DIR]\n' +
        'run `npm run make-subject -- --help` for the options',
    );
    process.exit(1);
  }
  const image = args.image ?? (await holdoutItem(args.emoji!)).image;
  const out = resolve(args.out ?? `out/subject-${args.emoji ?? 'image'}`);
  const int = (name: 'count' | 'size' | 'seed', lo: number, hi: number): number => {
    const v = Number(args[name]);
    if (!Number.isInteger(v) || v < lo || v > hi)
      throw new Error(`--${name}: an integer from ${lo} to ${hi} (got "${args[name]}")`);
    return v;
  };
  const background = args.background;
  if (background !== 'varied' && background !== 'white')
    throw new Error(`--background: varied or white (got "${background}")`);
  const paths = await writeSubjectPhotos(image, out, {
    background,
    count: int('count', 1, 100),
    size: int('size', 8, 1024),
    seed: int('seed', 0, 2 ** 31 - 1),
  });
  console.log(`wrote ${paths.length} photos of ${image} to ${out}`);
}

if (process.argv[1]?.endsWith('make-subject.ts')) {
  await main().catch((e: unknown) => {
    // A bad design code, a missing or damaged PNG: the message says which; no stack trace.
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  });
}
