// f16 against f32 storage of the frozen UNet weights, side by side in one process: npm run bench:weights --
// [--rounds 4] [--steps 4] [--targets attention+conv] [--batch 1] [--model public/models/emoji-tiny]. Loads
// the model twice (weights f16 and f32), then alternates rounds: per round and storage, a fresh LoRA² trainer
// runs --steps steps on three emoji photos, and a 3-step guided render times the sampling step. Reports the
// weights' GPU bytes, the mean training and sampling step times (round 1 and steps that built pipelines left
// out), their ratio, and whether the two storages computed the same losses (they should: an F16 file's
// values are the same either way).
import { adapterName } from '../src/gpu/device';
import { acquireNodeGpu } from '../src/gpu/node';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import type { WeightStorage } from '../src/models/unet';
import { Engine } from '../src/tensor/engine';
import { dogPhotos, dogTrainer } from './bench/dogPhotos';
import { cliArgs, exitUsage } from './args';

const args = cliArgs(
  'bench:weights',
  'f16 vs f32 storage of the frozen UNet weights on one model: GPU bytes, training and sampling step times.',
  {
    rounds: { type: 'string', default: '4', help: 'alternating rounds (the first compiles and is left out)' },
    steps: { type: 'string', default: '4', help: 'training steps per round and storage' },
    targets: { type: 'string', default: 'attention+conv', help: 'layers: attention or attention+conv' },
    batch: { type: 'string', default: '1', help: 'photos per step' },
    model: { type: 'string', default: 'public/models/emoji-tiny', help: 'model folder' },
  },
);

const STORAGES: WeightStorage[] = ['f16', 'f32'];
/** Guided DDIM steps of the render per round and storage (its time is reported per step). */
const SAMPLE_STEPS = 3;

async function main(): Promise<void> {
  const rounds = Number(args.rounds);
  const steps = Number(args.steps);
  const batch = Number(args.batch);
  for (const [name, v] of Object.entries({ rounds, steps, batch })) {
    if (!Number.isInteger(v) || v < 1) exitUsage('bench:weights', `--${name} must be a positive integer`);
  }
  if (rounds < 2) exitUsage('bench:weights', '--rounds must be at least 2 (round 1 compiles)');
  const gpu = await acquireNodeGpu();
  const engine = new Engine(gpu);
  const folder = new DirectoryFolder(args.model!);
  const models = new Map<WeightStorage, DiffusionModel>();
  for (const w of STORAGES) models.set(w, await DiffusionModel.load(engine, folder, {}, { weights: w }));
  const { images, embedding } = await dogPhotos(models.get('f16')!);

  const train = new Map<WeightStorage, number[]>(STORAGES.map((w) => [w, []]));
  const sample = new Map<WeightStorage, number[]>(STORAGES.map((w) => [w, []]));
  const losses = new Map<WeightStorage, number[]>(STORAGES.map((w) => [w, []]));
  let peak = 0;
  for (let r = 0; r < rounds; r++) {
    for (const w of STORAGES) {
      const model = models.get(w)!;
      const trainer = await dogTrainer(engine, model, { images, embedding }, args.targets!, {
        sessionId: `bench-weights-${w}`,
        steps,
        batchSize: batch,
        seed: r,
      });
      const ms: number[] = [];
      const compiled: boolean[] = [];
      let pipelines = engine.ctx.pipelines.size;
      await trainer.run((p) => {
        ms.push(p.stepMs);
        compiled.push(engine.ctx.pipelines.size > pipelines);
        pipelines = engine.ctx.pipelines.size;
        losses.get(w)!.push(p.loss);
      });
      peak = Math.max(peak, engine.stats().peakAllocatedBytes);
      trainer.release();
      const t = performance.now();
      const before = engine.ctx.pipelines.size;
      await model.generate({
        prompt: 'dog face',
        seed: r,
        steps: SAMPLE_STEPS,
        guidance: 5,
        sampler: 'ddim',
      });
      const sampleMs = (performance.now() - t) / SAMPLE_STEPS;
      const sampleCompiled = engine.ctx.pipelines.size > before;
      // Steps that built pipelines measure the compiler (LoRA² rank changes give LoCon convs new shapes).
      if (r > 0) {
        train.get(w)!.push(...ms.filter((_, i) => !compiled[i]));
        if (!sampleCompiled) sample.get(w)!.push(sampleMs);
      }
      const fmt = (m: number, c: boolean) => `${(m / 1000).toFixed(2)}${c ? '*' : ''}`;
      console.log(
        `round ${r + 1}/${rounds}, ${w}: steps ${ms.map((m, i) => fmt(m, compiled[i])).join(', ')} s; ` +
          `sampling step ${fmt(sampleMs, sampleCompiled)} s`,
      );
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const same = losses.get('f16')!.every((l, i) => l === losses.get('f32')![i]);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  console.log(`\nadapter: ${adapterName(gpu.adapter)}`);
  console.log(
    `model ${args.model}, targets ${args.targets}, batch ${batch}; ${rounds - 1} measured rounds of ${steps} ` +
      'steps (* built pipelines: left out)',
  );
  console.log('\n| measure | f16 weights | f32 weights | f16 / f32 |\n|---|---|---|---|');
  const row = (name: string, a: number, b: number, fmt: (v: number) => string) =>
    console.log(`| ${name} | ${fmt(a)} | ${fmt(b)} | ${(a / b).toFixed(3)} |`);
  const bytes = STORAGES.map((w) => models.get(w)!.unet.weightStorage().bytes);
  row('UNet weights on the GPU', bytes[0], bytes[1], mib);
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const [tf, t32] = STORAGES.map((w) => mean(train.get(w)!));
  const n = (w: WeightStorage) => train.get(w)!.length;
  row(`training step, mean (of ${n('f16')}, ${n('f32')})`, tf, t32, s);
  const [sf, s32] = STORAGES.map((w) => mean(sample.get(w)!));
  row('guided sampling step', sf, s32, s);
  console.log(`\nsame losses at every step with either storage: ${same ? 'yes' : 'NO'}`);
  console.log(`peak GPU memory (both models loaded): ${mib(peak)}`);
  for (const m of models.values()) await m.dispose();
  engine.destroy();
  process.exit(same ? 0 : 1);
}

void main();
