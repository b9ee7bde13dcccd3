// `npm run sample -- --lora FILE`: the CLI as a user runs it (a child process on its own Dawn device), on the
// micro test model with a LoRA file written here: strength 0 renders the base model exactly, strength 1 differs,
// and bad files stop before rendering with the file's name and the reason.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../src/gpu/testing';
import { exportKohya, type LoraLayerWeights } from '../src/io/lora';
import { decodePng, type RgbaImage } from '../src/io/png';
import { Rng } from '../src/models/rng';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import { Engine } from '../src/tensor/engine';

const run = promisify(execFile);
const MODEL = 'public/models/micro-test';
const TSX = 'node_modules/.bin/tsx';

async function sample(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(TSX, ['cli/sample.ts', '--model', MODEL, '--steps', '2', ...args], {
      timeout: 300_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** Row `r` of a one-column grid (imageGrid: tiles of `size`, 2 px white gutters). */
function row(grid: RgbaImage, r: number, size: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < size; y++) {
    const o = (r * (size + 2) + y) * grid.width * 4;
    out.push(...grid.data.subarray(o, o + size * 4));
  }
  return out;
}

describe('npm run sample -- --lora', { timeout: 900_000 }, () => {
  let dir: string;
  let layers: LoraLayerWeights[];
  let size: number;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lora2-sample-'));
    const engine = new Engine(await testGpu());
    const model = await DiffusionModel.load(engine, new DirectoryFolder(MODEL));
    size = model.resolution;
    const rng = new Rng(7);
    const noise = (n: number, scale: number) => Float32Array.from({ length: n }, () => scale * rng.normal());
    // Rank 2 on every linear and conv target, large enough to change the picture.
    layers = model.unet.linearTargets([/./]).map((t) => ({
      path: t.path,
      rank: 2,
      inFeatures: t.inFeatures,
      outFeatures: t.outFeatures,
      down: noise(2 * t.inFeatures, 1 / Math.sqrt(t.inFeatures)),
      up: noise(2 * t.outFeatures, 0.5),
      ...(t.kernel ? { kernel: t.kernel } : {}),
    }));
    expect(layers.some((l) => l.kernel)).toBe(true);
    writeFileSync(join(dir, 'lora.safetensors'), exportKohya(layers));
    await model.dispose();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('renders strength 0 as the base model and strength 1 differently, one row each', async () => {
    const same = ['--prompt', 'cat face', '--seed', '3', '--scale', '1'];
    const base = await sample([...same, '--out', join(dir, 'base.png')]);
    expect(base.code, base.stderr).toBe(0);
    // Progress: the first step compiles the pipelines, so the ETA waits for the second.
    expect(base.stdout).toMatch(/step 1\/2 +\d+ s, ETA estimating/);
    expect(base.stdout).toMatch(/step 2\/2 +\d+ s, ETA 0 s/);
    const lora = ['--lora', join(dir, 'lora.safetensors'), '--lora-strength', '0,1'];
    const both = await sample([...same, ...lora, '--out', join(dir, 'both.png')]);
    expect(both.code, both.stderr).toBe(0);
    expect(both.stdout).toMatch(/kohya, \d+ layers, ranks 2–2/);
    const baseImg = await decodePng(new Uint8Array(readFileSync(join(dir, 'base.png'))));
    const grid = await decodePng(new Uint8Array(readFileSync(join(dir, 'both.png'))));
    expect([grid.width, grid.height]).toEqual([size + 2, 2 * (size + 2)]);
    expect(row(grid, 0, size)).toEqual(Array.from(baseImg.data));
    const off = row(grid, 1, size).reduce((n, v, i) => n + Math.abs(v - baseImg.data[i]), 0);
    expect(off / (size * size * 4)).toBeGreaterThan(1); // mean absolute change per channel, out of 255
  });

  it('stops before rendering on a file that is not a LoRA, or one for another model', async () => {
    writeFileSync(join(dir, 'junk.safetensors'), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const junk = await sample(['--lora', join(dir, 'junk.safetensors'), '--out', join(dir, 'x.png')]);
    expect(junk.code).toBe(1);
    expect(junk.stderr).toContain('junk.safetensors: ');
    expect(junk.stderr).toMatch(/safetensors/);

    const wrong = layers.map((l) => ({ ...l, path: l.path.replace('down_blocks', 'down_blockz') }));
    writeFileSync(join(dir, 'other.safetensors'), exportKohya(wrong));
    const other = await sample(['--lora', join(dir, 'other.safetensors'), '--out', join(dir, 'y.png')]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/down_blockz.*no such linear or conv layer/);
    expect(other.stdout).not.toMatch(/wrote/);
  });
});
