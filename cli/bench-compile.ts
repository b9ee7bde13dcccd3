// What the first training step of a fresh process compiles: npm run bench:compile -- [--targets
// attention|attention+conv] [--batch 1]. Trains two steps on the default model (three emoji photos, LoRA²
// defaults): step 1 − step 2 is the cost of compiling at first use. Lists the pipelines the steps built, by op,
// with the time to create each one alone on a fresh device. On lavapipe that creation is cheap: llvmpipe
// generates the machine code at a pipeline's first dispatch, which is why step 1 carries the cost. Driver
// shader caches make a second run fast: on lavapipe, MESA_SHADER_CACHE_DISABLE=true measures a cold cache.
// `--conv-shapes` picks how conv pipelines get their sizes in those steps: `shipped` (the frozen UNet convs baked,
// one pipeline per shape; LoRA² conv adapters from a uniform), `uniform` (every conv from a uniform: one pipeline
// per window, stride, padding and tile width) or `baked` (every conv baked). After them, `--rounds` more steps
// cycle through the three kinds in one process (one warm-up step each first) and report the median step time of
// each and the pipelines each built for shapes it had not seen (LoRA² rank changes).
import { adapterName, compileShader } from '../src/gpu/device';
import { acquireNodeGpu } from '../src/gpu/node';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import { Engine } from '../src/tensor/engine';
import { dogPhotos, dogTrainer } from './bench/dogPhotos';
import { median } from './bench/stats';
import { cliArgs } from './args';

const args = cliArgs(
  'bench:compile',
  'Lists the GPU pipelines a fresh training step compiles on the default model and times each alone.',
  {
    targets: { type: 'string', default: 'attention', help: 'layers: attention or attention+conv (LoCon)' },
    batch: { type: 'string', default: '1', help: 'photos per step' },
    model: { type: 'string', default: 'public/models/emoji-tiny', help: 'model folder' },
    'conv-shapes': {
      type: 'string',
      default: 'shipped',
      help: 'conv sizes in the first two steps: shipped, uniform (one pipeline per window) or baked (per shape)',
    },
    rounds: { type: 'string', default: '3', help: 'warm steps per conv-sizes kind afterwards, in turn' },
  },
);

async function main(): Promise<void> {
  const kinds = ['shipped', 'uniform', 'baked'] as const;
  type Kind = (typeof kinds)[number];
  const first = args['conv-shapes'] as Kind;
  if (!kinds.includes(first))
    throw new Error(`bench:compile: --conv-shapes must be one of ${kinds.join(', ')}`);
  const rounds = Number(args.rounds);
  if (!Number.isInteger(rounds) || rounds < 0)
    throw new Error('bench:compile: --rounds must be a whole number');
  const warmFrom = 3 + kinds.length;
  // The kind of step s (1-based): `first` for steps 1–2, then one warm-up step of each kind (their compiles),
  // then rounds through the kinds.
  // Round r starts its cycle r places further on, so over rounds each kind takes each place (a steady drift in step
  // times, e.g. a machine settling, favours none).
  const kindOf = (s: number): Kind => {
    if (s <= 2) return first;
    if (s < warmFrom) return kinds[s - 3];
    const i = s - warmFrom;
    return kinds[(i + Math.floor(i / kinds.length)) % kinds.length];
  };
  const convSizes = (k: Kind) => (k === 'shipped' ? undefined : k);
  const gpu = await acquireNodeGpu();
  const engine = new Engine(gpu);
  const model = await DiffusionModel.load(engine, new DirectoryFolder(args.model!));
  const { images, embedding } = await dogPhotos(model);
  const ctx = engine.ctx;
  ctx.convSizes = convSizes(first);
  const before = new Set(ctx.pipelines.keys());
  const trainer = await dogTrainer(engine, model, { images, embedding }, args.targets!, {
    sessionId: 'bench-compile',
    steps: rounds > 0 ? warmFrom - 1 + kinds.length * rounds : 2,
    batchSize: Number(args.batch),
  });
  const stepMs: number[] = [];
  let keys: string[] = [];
  // Pipelines first built by a later step: LoRA² rank changes give conv adapters new shapes mid-run.
  const later: Record<Kind, number> = { shipped: 0, uniform: 0, baked: 0 };
  let known = ctx.pipelines.size;
  await trainer.run((p) => {
    stepMs.push(p.stepMs);
    if (p.step === 2) keys = [...ctx.pipelines.keys()].filter((k) => !before.has(k));
    if (p.step >= warmFrom) later[kindOf(p.step)] += ctx.pipelines.size - known;
    known = ctx.pipelines.size;
    ctx.convSizes = convSizes(kindOf(p.step + 1));
  });
  trainer.release();

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
  console.log(`model ${args.model}, targets ${args.targets}, batch ${args.batch}, conv sizes ${first}`);
  console.log(
    `step 1: ${s(stepMs[0])} s, step 2: ${s(stepMs[1])} s: compiling at first use ≈ ${s(stepMs[0] - stepMs[1])} s ` +
      `for the ${keys.length} pipelines the steps built`,
  );
  console.log(`creating them one by one on a fresh device: ${s(total)} s in all`);
  if (rounds > 0) {
    const warm = Object.fromEntries(
      kinds.map((k) => [k, median(stepMs.filter((_, i) => i + 1 >= warmFrom && kindOf(i + 1) === k))]),
    ) as Record<Kind, number>;
    const ratio = (k: Kind) => (warm[k] / warm.baked).toFixed(3);
    console.log(
      `warm steps, ${rounds} of each kind in turn (after one warm-up step each): median ` +
        `${kinds.map((k) => `${k} ${s(warm[k])} s`).join(', ')}; ÷ baked: shipped ${ratio('shipped')}, ` +
        `uniform ${ratio('uniform')}`,
    );
    console.log(`every step (s): ${stepMs.map((ms, i) => `${i + 1} ${kindOf(i + 1)} ${s(ms)}`).join(', ')}`);
    console.log(
      `pipelines first built during those steps (new shapes, e.g. after rank changes): ` +
        kinds.map((k) => `${k} ${later[k]}`).join(', '),
    );
  }
  console.log('');
  console.log('| op | pipelines | creation seconds |\n|---|---|---|');
  for (const [op, e] of [...byOp].sort((a, b) => b[1].ms - a[1].ms))
    console.log(`| ${op} | ${e.n} | ${s(e.ms)} |`);
  process.exit(0);
}

void main();
