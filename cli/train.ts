// Headless LoRA² training in Node (Dawn WebGPU): npm run train -- --photos DIR --prompt "<v1> dog face" --steps N
// [--fixed-rank R] [--out DIR] [--model DIR] [--batch B] [--seed S]. Writes the kohya LoRA and a JSON report.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { acquireNodeGpu } from '../src/gpu/node';
import { exportKohya } from '../src/io/lora';
import { decodePng, type RgbaImage } from '../src/io/png';
import { lora2Settings } from '../src/lora/adapter';
import { DirectoryFolder } from '../src/models/folderNode';
import { DEFAULT_SCHEDULER, NoiseSchedule, parseSchedulerConfig } from '../src/models/schedulers';
import { OnnxTextEncoder } from '../src/models/textEncoder';
import { loadTokenizer } from '../src/models/tokenizerFolder';
import { UNet2DConditionModel } from '../src/models/unet';
import { Engine } from '../src/tensor/engine';
import { fileCheckpointStore } from '../src/train/checkpointFiles';
import { centerSquareCrop } from '../src/train/photos';
import { DEFAULT_TRAINER_CONFIG, rgbaToModelInput, Trainer } from '../src/train/trainer';
import type { TrainProgress } from '../workers/api';

const { values: args } = parseArgs({
  options: {
    photos: { type: 'string' },
    prompt: { type: 'string' },
    steps: { type: 'string', default: '200' },
    'fixed-rank': { type: 'string' },
    out: { type: 'string', default: 'out/train' },
    model: { type: 'string', default: 'public/models/emoji-tiny' },
    batch: { type: 'string', default: '1' },
    seed: { type: 'string', default: '0' },
  },
});

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

/** Center square crop, then box-filter (area) resize to size×size: enough for downscaling photos. */
export function cropResize(img: RgbaImage, size: number): Uint8ClampedArray {
  const { sx, sy, size: side } = centerSquareCrop(img.width, img.height);
  const out = new Uint8ClampedArray(size * size * 4);
  const step = side / size;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const x0 = sx + Math.floor(x * step);
      const y0 = sy + Math.floor(y * step);
      const x1 = Math.max(x0 + 1, sx + Math.floor((x + 1) * step));
      const y1 = Math.max(y0 + 1, sy + Math.floor((y + 1) * step));
      const acc = [0, 0, 0, 0];
      for (let v = y0; v < y1; v++)
        for (let u = x0; u < x1; u++)
          for (let c = 0; c < 4; c++) acc[c] += img.data[(v * img.width + u) * 4 + c];
      const n = (x1 - x0) * (y1 - y0);
      for (let c = 0; c < 4; c++) out[(y * size + x) * 4 + c] = Math.round(acc[c] / n);
    }
  }
  return out;
}

async function main(): Promise<void> {
  if (!args.photos || !args.prompt)
    fail(
      'usage: npm run train -- --photos DIR --prompt "<v1> dog face" --steps N [--fixed-rank R] [--out DIR]',
    );
  const modelDir = resolve(args.model!);
  const folder = new DirectoryFolder(modelDir);
  for (const f of ['config.json', 'unet.safetensors', 'text_encoder.onnx']) {
    if (!(await folder.has(f)))
      fail(
        `The model folder ${modelDir} has no ${f}. The default model (public/models/emoji-tiny) is exported by ` +
          'tools/reference/export_default.py; run that first or pass --model DIR.',
      );
  }
  const steps = Number(args.steps);
  const fixedRank = args['fixed-rank'] !== undefined ? Number(args['fixed-rank']) : undefined;

  const engine = new Engine(await acquireNodeGpu());
  const unet = await UNet2DConditionModel.load(engine, folder);
  // Training resolution: the model's sample_size (emoji-tiny: 32), square.
  const size = unet.config.sampleSize?.[0] ?? 32;
  const schedule = new NoiseSchedule(
    (await folder.has('scheduler_config.json'))
      ? parseSchedulerConfig(await folder.json('scheduler_config.json'))
      : DEFAULT_SCHEDULER,
  );

  const names = (await readdir(args.photos!)).filter((n) => /\.png$/i.test(n)).sort();
  if (names.length === 0) fail(`no .png photos in ${args.photos}`);
  const images = [];
  for (const n of names) {
    const img = await decodePng(new Uint8Array(await readFile(join(args.photos!, n))));
    images.push(rgbaToModelInput(cropResize(img, size), size, size));
  }

  const tokenizer = await loadTokenizer(folder);
  const encoder = await OnnxTextEncoder.load(await folder.bytes('text_encoder.onnx'));
  const embedding = await encoder.encode(tokenizer.encode(args.prompt!).ids, 1);
  await encoder.dispose();

  const outDir = resolve(args.out!);
  await mkdir(outDir, { recursive: true });
  const trainer = await Trainer.create(
    engine,
    unet,
    schedule,
    { images, imageShape: [unet.config.inChannels, size, size], embedding },
    {
      ...DEFAULT_TRAINER_CONFIG,
      sessionId: 'cli',
      steps,
      batchSize: Number(args.batch),
      seed: Number(args.seed),
      contributionsEvery: 0,
      lora: lora2Settings(fixedRank ? { fixedRank } : {}),
    },
    fileCheckpointStore(join(outDir, 'checkpoints')),
  );
  if (trainer.step > 0) console.log(`resuming from the checkpoint at step ${trainer.step}`);
  console.log(
    `${names.length} photos at ${size}×${size}, ${trainer.adapters.length} LoRA layers, ${fixedRank ? `fixed rank ${fixedRank}` : 'LoRA² (adaptive rank)'}`,
  );
  const stop = () => trainer.stop();
  process.once('SIGINT', stop);
  let last: TrainProgress | undefined;
  const state = await trainer.run((p) => {
    last = p;
    const ranks = p.layers.map((l) => l.rank);
    const mean = ranks.reduce((a, b) => a + b, 0) / ranks.length;
    const bar = '#'.repeat(Math.round((20 * p.step) / p.total)).padEnd(20, '.');
    process.stdout.write(
      `\r[${bar}] ${p.step}/${p.total} loss ${p.loss.toFixed(4)} rank min/mean/max ${Math.min(...ranks)}/${mean.toFixed(1)}/${Math.max(...ranks)} ` +
        `${(1000 / p.stepMs).toFixed(2)} it/s ETA ${(p.etaMs / 1000).toFixed(0)}s   `,
    );
  });
  process.stdout.write('\n');
  process.off('SIGINT', stop);

  const layers = await trainer.exportLayers();
  const lora = exportKohya(layers, {
    prompt: args.prompt,
    lora2_settings: trainer.config.lora,
    steps: trainer.step,
  });
  await writeFile(join(outDir, 'lora.safetensors'), lora);
  const report = {
    state,
    prompt: args.prompt,
    photos: names,
    steps: trainer.step,
    mode: fixedRank ? 'fixed' : 'lora2',
    settings: trainer.config.lora,
    layers: trainer.adapters.map((a) => ({
      name: a.target.path,
      rank: a.rank,
      capacity: a.capacity,
      rate: a.fixed ? undefined : a.rate,
      bytes: a.bytes,
    })),
    adapterBytes: trainer.adapterBytes,
    fixedRankBytes: trainer.fixedRankBytes,
    fileBytes: lora.byteLength,
    peakGpuBytes: last?.peakGpuBytes,
    elapsedMs: last?.elapsedMs,
    lossCurve: trainer.lossHistory,
    rankHistory: trainer.rankHistory,
  };
  await writeFile(join(outDir, 'report.json'), JSON.stringify(report, null, 1));
  console.log(`wrote ${join(outDir, 'lora.safetensors')} (${lora.byteLength} bytes) and report.json`);
  trainer.release();
  unet.params.release();
  engine.destroy();
}

await main();
