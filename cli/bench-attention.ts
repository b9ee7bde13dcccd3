// The attention kernels' share of whole steps: npm run bench:attention -- [--model DIR] [--rounds 4]. On a model
// folder (the default model unless --model), LoRA² training steps (three emoji photos, defaults) and guided
// sampling evaluations (the UNet at batch 2) alternate between the tiled attention kernels (the default) and the
// row-wise ones in one process, after one warm-up of each (their compiles). Rounds alternate the order (A B B A …),
// so a machine that speeds up or slows down over the run favours neither. Reports the median of each and the ratio.
import { adapterName } from '../src/gpu/device';
import { acquireNodeGpu } from '../src/gpu/node';
import { attentionGrid } from '../src/kernels/attention';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import { Engine } from '../src/tensor/engine';
import { Rng } from '../src/models/rng';
import { dogPhotos, dogTrainer } from './bench/dogPhotos';
import { median } from './bench/stats';
import { cliArgs, exitUsage } from './args';

const args = cliArgs(
  'bench:attention',
  'Training steps and sampling evaluations with the tiled attention kernels against the row-wise ones.',
  {
    model: { type: 'string', default: 'public/models/emoji-tiny', help: 'model folder' },
    targets: { type: 'string', default: 'attention', help: 'layers: attention or attention+conv (LoCon)' },
    batch: { type: 'string', default: '1', help: 'photos per training step' },
    rounds: {
      type: 'string',
      default: '4',
      help: 'timed training steps and sampling evaluations per kernel',
    },
  },
);

const KINDS = ['tiled', 'rows'] as const;
type Kind = (typeof KINDS)[number];
/** The kind of timed item i (0-based): A B B A A B B A … */
const kindAt = (i: number): Kind => KINDS[(i + Math.floor(i / 2)) % 2];

async function main(): Promise<void> {
  const rounds = Number(args.rounds);
  if (!Number.isInteger(rounds) || rounds < 1)
    exitUsage('bench:attention', '--rounds must be a whole number ≥ 1');
  const gpu = await acquireNodeGpu();
  const engine = new Engine(gpu);
  const ctx = engine.ctx;
  const model = await DiffusionModel.load(engine, new DirectoryFolder(args.model!));
  const { images, embedding } = await dogPhotos(model);
  const timed = 2 * rounds;
  // Steps 1 and 2 are the warm-ups (tiled, then rows); step 3 + i is timed item i.
  const kindOfStep = (s: number): Kind => (s <= 2 ? KINDS[s - 1] : kindAt(s - 3));
  const trainer = await dogTrainer(engine, model, { images, embedding }, args.targets!, {
    sessionId: 'bench-attention',
    steps: 2 + timed,
    batchSize: Number(args.batch),
    checkpointEvery: 0,
  });
  const stepMs: number[] = [];
  ctx.attentionKernel = kindOfStep(1);
  await trainer.run((p) => {
    stepMs.push(p.stepMs);
    ctx.attentionKernel = kindOfStep(p.step + 1);
  });
  trainer.release();

  // Guided sampling: the UNet at batch 2 (unconditional and conditional halves) on fresh noise each time.
  const [C, H, W] = model.inputShape;
  const [, S, D] = embedding.shape;
  const ehs = new Float32Array(2 * S * D);
  ehs.set(embedding.data, S * D);
  const rng = new Rng(7);
  const sampleMs: number[] = [];
  for (let i = 0; i < 2 + timed; i++) {
    ctx.attentionKernel = i < 2 ? KINDS[i] : kindAt(i - 2);
    const t = performance.now();
    await engine.scope(async () => {
      const x = engine.fromArray(rng.normals(2 * C * H * W), [2, C, H, W]);
      const out = await model.unet.forward(x, [500, 500], engine.fromArray(ehs, [2, S, D]));
      const v = await out.read();
      if (!v.every(Number.isFinite)) throw new Error('the sampling forward gave non-finite values');
    });
    sampleMs.push(performance.now() - t);
  }
  ctx.attentionKernel = undefined;

  const sec = (ms: number) => (ms / 1000).toFixed(3);
  const summary = (ms: number[], what: string) => {
    const of = (k: Kind) => median(ms.slice(2).filter((_, i) => kindAt(i) === k));
    const [t, r] = [of('tiled'), of('rows')];
    console.log(
      `${what}: median tiled ${sec(t)} s, row-wise ${sec(r)} s; tiled ÷ row-wise ${(t / r).toFixed(3)} ` +
        `(warm-ups: tiled ${sec(ms[0])} s, row-wise ${sec(ms[1])} s)`,
    );
    console.log(
      `  every one after the warm-ups (s): ${ms
        .slice(2)
        .map((m, i) => `${kindAt(i)} ${sec(m)}`)
        .join(', ')}`,
    );
  };
  console.log(`adapter: ${adapterName(gpu.adapter)}; tiled kernels on the ${attentionGrid(ctx)} grid`);
  console.log(
    `model ${args.model}, targets ${args.targets}, batch ${args.batch}, ${rounds} timed of each kind, ` +
      `order A B B A …`,
  );
  summary(stepMs, 'training step');
  summary(sampleMs, 'sampling evaluation (UNet at batch 2)');
  process.exit(0);
}

void main();
