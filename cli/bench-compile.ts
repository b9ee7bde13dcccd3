// What the first training step of a fresh process compiles: npm run bench:compile -- [--targets
// attention|attention+conv] [--batch 1]. Trains two steps on the default model (three emoji photos, LoRA²
// defaults): step 1 − step 2 is the cost of compiling at first use. Lists the pipelines the steps built, by op,
// with the time to create each one alone on a fresh device. On lavapipe that creation is cheap: llvmpipe
// generates the machine code at a pipeline's first dispatch, which is why step 1 carries the cost. Driver
// shader caches make a second run fast: on lavapipe, MESA_SHADER_CACHE_DISABLE=true measures a cold cache.
import { adapterName, compileShader } from '../src/gpu/device';
import { acquireNodeGpu } from '../src/gpu/node';
import { lora2Settings, targetPreset } from '../src/lora/adapter';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import { NoiseSchedule } from '../src/models/schedulers';
import { Engine } from '../src/tensor/engine';
import { DEFAULT_TRAINER_CONFIG, Trainer } from '../src/train/trainer';
import { dogPhotos } from './bench/dogPhotos';
import { cliArgs } from './args';

const args = cliArgs(
  'bench:compile',
  'Lists the GPU pipelines a fresh training step compiles on the default model and times each alone.',
  {
    targets: { type: 'string', default: 'attention', help: 'layers: attention or attention+conv (LoCon)' },
    batch: { type: 'string', default: '1', help: 'photos per step' },
    model: { type: 'string', default: 'public/models/emoji-tiny', help: 'model folder' },
  },
);

async function main(): Promise<void> {
  const gpu = await acquireNodeGpu();
  const engine = new Engine(gpu);
  const model = await DiffusionModel.load(engine, new DirectoryFolder(args.model!));
  const { images, embedding } = await dogPhotos(model);
  const ctx = engine.ctx;
  const before = new Set(ctx.pipelines.keys());
  const trainer = await Trainer.create(
    engine,
    model.unet,
    new NoiseSchedule(model.scheduler),
    { images, imageShape: model.inputShape, embedding },
    {
      ...DEFAULT_TRAINER_CONFIG,
      sessionId: 'bench-compile',
      steps: 2,
      batchSize: Number(args.batch),
      contributionsEvery: 0,
      lora: lora2Settings({ targets: targetPreset(args.targets!) }),
    },
  );
  const stepMs: number[] = [];
  await trainer.run((p) => stepMs.push(p.stepMs));
  trainer.release();
  const keys = [...ctx.pipelines.keys()].filter((k) => !before.has(k));

  // Each alone, on a device with an empty pipeline cache.
  const fresh = await acquireNodeGpu();
  const rows: { label: string; ms: number }[] = [];
  for (const k of keys) {
    const [label, ...rest] = k.split('\n');
    const t0 = performance.now();
    const module = await compileShader(fresh.device, label, rest.join('\n'));
    await fresh.device.createComputePipelineAsync({
      label,
      layout: 'auto',
      compute: { module, entryPoint: 'main' },
    });
    rows.push({ label, ms: performance.now() - t0 });
  }
  const byOp = new Map<string, { n: number; ms: number }>();
  for (const r of rows) {
    const op = r.label.replace(/\[.*$/, '');
    const e = byOp.get(op) ?? { n: 0, ms: 0 };
    byOp.set(op, { n: e.n + 1, ms: e.ms + r.ms });
  }
  const total = rows.reduce((a, r) => a + r.ms, 0);
  const s = (ms: number) => (ms / 1000).toFixed(2);
  console.log(
    `adapter: ${adapterName(gpu.adapter)}; shader cache ${process.env.MESA_SHADER_CACHE_DISABLE ? 'off' : 'as the driver keeps it'}`,
  );
  console.log(`model ${args.model}, targets ${args.targets}, batch ${args.batch}`);
  console.log(
    `step 1: ${s(stepMs[0])} s, step 2: ${s(stepMs[1])} s: compiling at first use ≈ ${s(stepMs[0] - stepMs[1])} s ` +
      `for the ${keys.length} pipelines the steps built`,
  );
  console.log(`creating them one by one on a fresh device: ${s(total)} s in all\n`);
  console.log('| op | pipelines | creation seconds |\n|---|---|---|');
  for (const [op, e] of [...byOp].sort((a, b) => b[1].ms - a[1].ms))
    console.log(`| ${op} | ${e.n} | ${s(e.ms)} |`);
  process.exit(0);
}

void main();
