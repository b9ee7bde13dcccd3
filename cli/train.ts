// Headless LoRA² training in Node (Dawn WebGPU): npm run train -- --photos DIR [--prompt "<v1> dog face"] --steps N
// [--fixed-rank R] [--out DIR] [--model DIR] [--batch B] [--seed S] [--samples 4] [--sample-steps 20]
// [--targets attention|attention+conv] [--lora2 lr=0.01,scale=2] (LoRA² settings: numbers, on/off as 0/1)
// [--accumulate K] [--lr-schedule constant|cosine] [--warmup N] [--flip] [--min-crop 0.8] [--gradient-checkpointing]
// [--class-prompt "robot" --class-images 8 --prior-weight 1 --class-dir DIR] (prior preservation)
// [--preview-every N [--preview-prompt "<v1> dog in the snow"]] (previews/step-N.png: the prompt with the LoRA
// so far, seed 1).
// A photo's caption: NAME.txt beside NAME.png trains that photo with its own prompt (kohya's convention).
// Writes the kohya LoRA, a JSON report, and samples.png: the photos, then the prompt rendered by the base model
// and with the LoRA (same seeds), one row each.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { acquireNodeGpu } from '../src/gpu/node';
import { exportKohya } from '../src/io/lora';
import { imageGrid } from '../src/io/imageGrid';
import { decodePng, encodePng, type RgbaImage } from '../src/io/png';
import { lora2Settings, parseLora2Overrides, targetPreset } from '../src/lora/adapter';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import { readSamplingDefaults } from '../src/models/sampling';
import { NoiseSchedule } from '../src/models/schedulers';
import { Engine } from '../src/tensor/engine';
import { fileCheckpointStore } from '../src/train/checkpointFiles';
import {
  captionProblem,
  captionStem,
  cleanCaption,
  pairCaptionFiles,
  promptEmbeddings,
} from '../src/train/captions';
import { classTrainData } from '../src/train/classImages';
import { fileClassImageCache } from '../src/train/classImagesFiles';
import { etaWithPreviews } from '../src/train/eta';
import { cropResize } from '../src/train/photos';
import { DEFAULT_TRAINER_CONFIG, Trainer } from '../src/train/trainer';
import { identifiersIn, LATENT_CROP_MESSAGE, previewPromptOf } from '../src/train/trainSettings';
import type { TrainProgress } from '../workers/api';
import { cliArgs, weightStorage, WEIGHTS_OPTION } from './args';

const args = cliArgs(
  'train',
  'Trains a LoRA² (or fixed-rank) LoRA on a folder of photos with the default model on Dawn WebGPU; writes the\n' +
    'kohya LoRA file, report.json and samples.png (photos, then base model vs LoRA at the same seeds). Rerunning\n' +
    'into the same --out resumes from its checkpoint.',
  {
    photos: {
      type: 'string',
      help: "folder of PNG photos of the subject (required); NAME.txt beside NAME.png is that photo's caption",
    },
    prompt: {
      type: 'string',
      help:
        'training prompt with an identifier token, e.g. "<v1> dog face" ' +
        '(default: the model\'s example, sampling.json "trainPrompt")',
    },
    steps: { type: 'string', default: '200', help: 'optimizer steps' },
    'fixed-rank': { type: 'string', help: 'train fixed-rank LoRA at this rank instead of LoRA²' },
    out: { type: 'string', default: 'out/train', help: 'output folder (checkpoint, LoRA, report, samples)' },
    model: { type: 'string', default: 'public/models/emoji-tiny', help: 'model folder' },
    weights: WEIGHTS_OPTION,
    batch: { type: 'string', default: '1', help: 'photos per step' },
    seed: { type: 'string', default: '0', help: 'training seed' },
    samples: { type: 'string', default: '4', help: 'seeds rendered in samples.png' },
    'sample-steps': { type: 'string', default: '20', help: 'sampler steps for samples and previews' },
    guidance: {
      type: 'string',
      help: "classifier-free guidance for samples and class images (default: the model's sampling.json, else 5)",
    },
    targets: { type: 'string', default: 'attention', help: 'layers: attention or attention+conv (LoCon)' },
    lora2: { type: 'string', default: '', help: 'LoRA² settings, e.g. lr=0.01,scale=2 (on/off as 0/1)' },
    accumulate: { type: 'string', default: '1', help: 'micro-batches per optimizer step' },
    'lr-schedule': { type: 'string', default: 'constant', help: 'constant or cosine' },
    warmup: { type: 'string', default: '0', help: 'linear warm-up steps' },
    flip: { type: 'boolean', default: false, help: 'random horizontal flips' },
    'gradient-checkpointing': {
      type: 'boolean',
      default: false,
      help: "recompute each UNet block's activations in backward (less GPU memory, slower steps)",
    },
    'min-crop': {
      type: 'string',
      default: '1',
      help: 'random crops of at least this side fraction (1: off)',
    },
    'class-prompt': {
      type: 'string',
      help: 'prior preservation: class prompt without the identifier, e.g. "robot"',
    },
    'class-images': {
      type: 'string',
      default: '8',
      help: 'prior preservation: class images drawn by the base model',
    },
    'prior-weight': { type: 'string', default: '1', help: 'prior preservation: weight λ of the class loss' },
    'class-dir': { type: 'string', help: 'cache folder for class images (default: <out>/class-images)' },
    'preview-every': {
      type: 'string',
      default: '0',
      help: 'write previews/step-N.png every N steps (0: never)',
    },
    'preview-prompt': { type: 'string', help: 'what the previews draw (default: the training prompt)' },
  },
);

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

async function main(): Promise<void> {
  if (!args.photos)
    fail(
      'usage: npm run train -- --photos DIR [--prompt "<v1> dog face"] [--steps N] …\n' +
        'run `npm run train -- --help` for all the options',
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
  const prompt = args.prompt ?? (await readSamplingDefaults(folder)).trainPrompt;
  if (prompt === undefined)
    fail(`--prompt is needed: ${modelDir} gives no example prompt (sampling.json "trainPrompt")`);
  if (identifiersIn(prompt).length === 0)
    fail(`--prompt needs an identifier token for the subject, e.g. "<v1> dog face" (got "${prompt}")`);
  if (args.prompt === undefined) console.log(`prompt: "${prompt}" (the model's example; --prompt to change)`);
  const steps = Number(args.steps);
  const fixedRank = args['fixed-rank'] !== undefined ? Number(args['fixed-rank']) : undefined;
  let loraSettings;
  try {
    loraSettings = lora2Settings({
      ...parseLora2Overrides(args.lora2!),
      targets: targetPreset(args.targets!),
      ...(fixedRank ? { fixedRank } : {}),
    });
  } catch (e) {
    fail((e as Error).message);
  }

  const engine = new Engine(await acquireNodeGpu());
  const weights = weightStorage('train', args.weights);
  const model = await DiffusionModel.load(engine, folder, {}, { weights });
  const guidance = args.guidance === undefined ? model.sampling.guidance : Number(args.guidance);
  if (!Number.isFinite(guidance)) throw new Error(`--guidance: a number (got "${args.guidance}")`);
  const unet = model.unet;
  // Training resolution in pixels: the UNet's sample_size (emoji-tiny: 32) × the codec's downscale, square.
  const size = model.resolution;
  const schedule = new NoiseSchedule(model.scheduler);

  if (model.codec.kind === 'vae' && Number(args['min-crop']) < 1) fail(`--min-crop: ${LATENT_CROP_MESSAGE}`);
  const files = await readdir(args.photos!);
  const names = files.filter((n) => /\.png$/i.test(n)).sort();
  if (names.length === 0) fail(`no .png photos in ${args.photos}`);
  const photos: RgbaImage[] = [];
  const captions: (string | undefined)[] = [];
  const { captions: captionFiles } = pairCaptionFiles(files.map((name) => ({ name })));
  for (const n of names) {
    const img = await decodePng(new Uint8Array(await readFile(join(args.photos!, n))));
    photos.push({ width: size, height: size, data: cropResize(img, size) });
    // kohya's convention: dog.txt beside dog.png is that photo's prompt.
    const txt = captionFiles.get(captionStem(n));
    const caption = txt ? cleanCaption(await readFile(join(args.photos!, txt.name), 'utf8')) : undefined;
    const problem = caption ? captionProblem(caption, model.identifierTokens()) : undefined;
    if (problem) fail(`${txt!.name}: ${problem}`);
    captions.push(caption || undefined);
  }
  const captioned = captions.filter(Boolean).length;
  if (captioned) console.log(`captions: ${captioned} of ${names.length} photos train with their own (.txt)`);
  const images = await model.encodeImages(photos);
  const conditioning = await promptEmbeddings((p) => model.embed(p), prompt, captions);

  const outDir = resolve(args.out!);
  await mkdir(outDir, { recursive: true });
  // Prior preservation: the base model draws the class images before any adapter is attached.
  let classData = {};
  if (args['class-prompt'] !== undefined) {
    classData = await classTrainData(
      model,
      {
        model: modelDir,
        prompt: args['class-prompt'],
        count: Number(args['class-images']),
        steps: Number(args['sample-steps']),
        guidance,
      },
      fileClassImageCache(resolve(args['class-dir'] ?? join(outDir, 'class-images'))),
      (done, total, cached) =>
        process.stdout.write(
          cached
            ? `class images: ${total} from the cache\n`
            : `\rclass images (base model) ${done}/${total}   `,
        ),
    ).catch((e: Error) => fail(e.message));
    process.stdout.write('\n');
  }
  const kind = args['lr-schedule'];
  if (kind !== 'constant' && kind !== 'cosine') fail(`--lr-schedule ${kind}: expected constant or cosine`);
  const trainer = await Trainer.create(
    engine,
    unet,
    schedule,
    { images, imageShape: model.inputShape, ...conditioning, ...classData },
    {
      ...DEFAULT_TRAINER_CONFIG,
      sessionId: 'cli',
      steps,
      batchSize: Number(args.batch),
      seed: Number(args.seed),
      contributionsEvery: 0,
      gradientAccumulation: Number(args.accumulate),
      gradientCheckpointing: args['gradient-checkpointing']!,
      lrSchedule: { kind, warmupSteps: Number(args.warmup) },
      augment: { flip: args.flip!, minCrop: Number(args['min-crop']) },
      priorLossWeight: Number(args['prior-weight']),
      lora: loraSettings,
    },
    fileCheckpointStore(join(outDir, 'checkpoints')),
  ).catch((e: Error) => fail(e.message));
  if (trainer.step > 0) console.log(`resuming from the checkpoint at step ${trainer.step}`);
  console.log(
    `${names.length} photos at ${size}×${size}, ${trainer.adapters.length} LoRA layers, ${fixedRank ? `fixed rank ${fixedRank}` : 'LoRA² (adaptive rank)'}`,
  );
  const stop = () => trainer.stop();
  process.once('SIGINT', stop);
  let last: TrainProgress | undefined;
  // Previews every N steps: the prompt with the adapters as they are, seed 1. The ETA counts those still to
  // come at the latest one's pace.
  const previewEvery = Number(args['preview-every']);
  let previewMs: number | undefined;
  // run() measures its peak from its own start; previews split the run, so keep the largest.
  let peakGpuBytes = 0;
  const onProgress = (p: TrainProgress) => {
    last = p;
    peakGpuBytes = Math.max(peakGpuBytes, p.peakGpuBytes);
    const ranks = p.layers.map((l) => l.rank);
    const mean = ranks.reduce((a, b) => a + b, 0) / ranks.length;
    const bar = '#'.repeat(Math.round((20 * p.step) / p.total)).padEnd(20, '.');
    const classLoss = p.classLoss === undefined ? '' : ` class ${p.classLoss.toFixed(4)}`;
    const eta = etaWithPreviews(p.etaMs, p.step, p.total, previewEvery, previewMs);
    process.stdout.write(
      `\r[${bar}] ${p.step}/${p.total} loss ${p.loss.toFixed(4)}${classLoss} rank min/mean/max ${Math.min(...ranks)}/${mean.toFixed(1)}/${Math.max(...ranks)} ` +
        `${(1000 / p.stepMs).toFixed(2)} it/s ETA ${eta === undefined ? 'estimating' : `${(eta / 1000).toFixed(0)}s`}   `,
    );
  };
  let state: TrainProgress['state'] = 'running';
  while (state === 'running' && trainer.step < steps) {
    const until = previewEvery > 0 ? (Math.floor(trainer.step / previewEvery) + 1) * previewEvery : steps;
    state = await trainer.run(onProgress, { untilStep: until });
    if (previewEvery > 0 && trainer.step % previewEvery === 0 && (state === 'running' || state === 'done')) {
      const t0 = performance.now();
      const img = await model.generate({
        prompt: previewPromptOf({ prompt, previewPrompt: args['preview-prompt'] ?? '' }),
        seed: 1,
        steps: Number(args['sample-steps']),
        guidance,
        sampler: 'ddim',
      });
      // Sampling uploaded the importance vectors without gradients; training uploads its own.
      for (const a of trainer.adapters) a.releaseImportance();
      await mkdir(join(outDir, 'previews'), { recursive: true });
      await writeFile(join(outDir, 'previews', `step-${trainer.step}.png`), await encodePng(img));
      previewMs = performance.now() - t0;
    }
  }
  process.stdout.write('\n');
  process.off('SIGINT', stop);

  // Samples: the prompt with the LoRA attached, then (detached) with the base model, same seeds.
  const seeds = Array.from({ length: Number(args.samples) }, (_, i) => i + 1);
  const render = async (label: string) => {
    const out: RgbaImage[] = [];
    for (const seed of seeds) {
      process.stdout.write(`\rsampling (${label}) seed ${seed}/${seeds.length}   `);
      out.push(
        await model.generate({
          prompt,
          seed,
          steps: Number(args['sample-steps']),
          guidance,
          sampler: 'ddim',
        }),
      );
    }
    return out;
  };
  const tuned = seeds.length ? await render('with the LoRA') : [];
  const layers = await trainer.exportLayers();
  const lora = exportKohya(layers, {
    prompt,
    lora2_settings: trainer.config.lora,
    steps: trainer.step,
  });
  await writeFile(join(outDir, 'lora.safetensors'), lora);
  const report = {
    state,
    prompt,
    photos: names,
    // Photos with a caption of their own (NAME.txt), by file name.
    ...(captioned
      ? { captions: Object.fromEntries(names.flatMap((n, i) => (captions[i] ? [[n, captions[i]]] : []))) }
      : {}),
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
    peakGpuBytes: last ? peakGpuBytes : undefined,
    elapsedMs: last?.elapsedMs,
    lossCurve: trainer.lossHistory,
    ...(trainer.classLossHistory.length ? { classLossCurve: trainer.classLossHistory } : {}),
    training: {
      batch: trainer.config.batchSize,
      gradientAccumulation: trainer.config.gradientAccumulation,
      gradientCheckpointing: trainer.config.gradientCheckpointing,
      weights: { storage: weights, ...unet.weightStorage() },
      lrSchedule: trainer.config.lrSchedule,
      augment: trainer.config.augment,
      ...(args['class-prompt'] !== undefined
        ? {
            classPrompt: args['class-prompt'],
            classImages: Number(args['class-images']),
            priorLossWeight: trainer.config.priorLossWeight,
          }
        : {}),
    },
    samples: { steps: Number(args['sample-steps']), guidance },
    rankHistory: trainer.rankHistory,
  };
  await writeFile(join(outDir, 'report.json'), JSON.stringify(report, null, 1));
  trainer.release();
  if (seeds.length) {
    const base = await render('base model');
    process.stdout.write('\n');
    const cols = Math.max(seeds.length, photos.length);
    const pad = (row: RgbaImage[]) => [
      ...row.slice(0, cols),
      ...Array.from({ length: cols - Math.min(cols, row.length) }, () => ({
        width: size,
        height: size,
        data: new Uint8ClampedArray(size * size * 4).fill(255),
      })),
    ];
    const sheet = imageGrid([...pad(photos), ...pad(base), ...pad(tuned)], cols, 4);
    await writeFile(join(outDir, 'samples.png'), await encodePng(sheet));
  }
  console.log(
    `wrote ${join(outDir, 'lora.safetensors')} (${lora.byteLength} bytes), report.json` +
      (seeds.length ? ', samples.png (rows: photos, base model, with the LoRA)' : ''),
  );
  unet.params.release();
  engine.destroy();
}

await main();
