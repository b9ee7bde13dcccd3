// LoRA² vs fixed-rank LoRA on the default model, same subject, steps and seed (issue #5's benchmark):
// npm run bench:lora -- [--emoji 1f916] [--steps 150] [--ranks 4,16,64] [--seed 0] [--eval 48] [--out DIR]
//   [--lora2 rateSigma=1,scale=4,rankPrior=0]   (LoRA² settings other than the defaults: numbers, on/off as 0/1)
//   [--targets attention|attention+conv]         (adapted layers, every run; attention+conv adds LoCon)
// The subject is a held-out emoji design composited on varied backgrounds (src/train/subject.ts). "Final loss"
// is measured on a fixed evaluation set — the same (photo, timestep, noise) triples for every run, drawn
// once from the seed — because the last training losses are single noisy draws. Prints a Markdown report and
// writes report.json (per-layer final ranks) under --out.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ops from '../src/autograd/ops';
import { noGrad } from '../src/autograd/tape';
import { adapterName } from '../src/gpu/device';
import { acquireNodeGpu } from '../src/gpu/node';
import { decodePng } from '../src/io/png';
import { lora2Settings, parseLora2Overrides, targetPreset, type Lora2Settings } from '../src/lora/adapter';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import { Rng } from '../src/models/rng';
import { NoiseSchedule } from '../src/models/schedulers';
import { Engine } from '../src/tensor/engine';
import { compositeSubject } from '../src/train/subject';
import { DEFAULT_TRAINER_CONFIG, Trainer, type TrainData } from '../src/train/trainer';
import { holdoutItem } from './make-subject';

const { values: args } = parseArgs({
  options: {
    emoji: { type: 'string', default: '1f916' },
    photos: { type: 'string', default: '6' },
    steps: { type: 'string', default: '150' },
    ranks: { type: 'string', default: '4,16,64' },
    seed: { type: 'string', default: '0' },
    eval: { type: 'string', default: '48' },
    model: { type: 'string', default: 'public/models/emoji-tiny' },
    out: { type: 'string', default: 'out/bench-lora' },
    lora2: { type: 'string', default: '' },
    targets: { type: 'string', default: 'attention' },
  },
});

interface EvalItem {
  image: number;
  t: number;
  noise: Float32Array;
}

interface RunResult {
  name: string;
  evalLoss: number;
  trainLossLast20: number;
  ranks: {
    layer: string;
    block: string;
    rank: number;
    /** The task's ∂L/∂ρ over the run: mean and t = mean/(sd/√n) (> 0: the data asks for more rank). */
    taskGradRho?: { mean: number; t: number };
  }[];
  params: number;
  bytes: number;
  peakGpuBytes: number;
  medianStepMs: number;
  seconds: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Mean and t statistic of a gradient from its running sums. */
function gradStats(g: { n: number; sum: number; sumSq: number }): { mean: number; t: number } {
  const m = g.sum / g.n;
  const sd = Math.sqrt(Math.max(0, g.sumSq / g.n - m * m));
  return { mean: m, t: sd > 0 ? m / (sd / Math.sqrt(g.n)) : 0 };
}

/**
 * Whether the data pushes each layer's rate: how many layers' task ∂L/∂ρ has |t| > 2 over the run (more
 * rank: ρ goes down), per block.
 */
function gradSummary(r: RunResult): string {
  const withStats = r.ranks.filter((l) => l.taskGradRho);
  if (withStats.length === 0) return '';
  const count = (b: string, sign: number) =>
    withStats.filter((l) => l.block === b && sign * l.taskGradRho!.t > 2).length;
  const of = (b: string) => withStats.filter((l) => l.block === b).length;
  const ts = withStats.map((l) => l.taskGradRho!.t);
  return (
    `${r.name}: the task's ∂L/∂ρ asks for more rank (t > 2) in ` +
    ['down', 'mid', 'up'].map((b) => `${count(b, 1)}/${of(b)} ${b}`).join(', ') +
    ` layers and for less (t < −2) in ` +
    ['down', 'mid', 'up'].map((b) => `${count(b, -1)}/${of(b)} ${b}`).join(', ') +
    `; t ranges ${Math.min(...ts).toFixed(1)} … ${Math.max(...ts).toFixed(1)}`
  );
}

/** Mean MSE of the UNet (with whatever adapters are attached) over the fixed evaluation set, 8 at a time. */
async function evalLoss(
  engine: Engine,
  model: DiffusionModel,
  schedule: NoiseSchedule,
  data: TrainData,
  set: EvalItem[],
): Promise<number> {
  const [c, h, w] = data.imageShape;
  const per = c * h * w;
  const [, S, D] = data.embedding.shape;
  let sum = 0;
  for (let i = 0; i < set.length; i += 8) {
    const chunk = set.slice(i, i + 8);
    const B = chunk.length;
    const x0 = new Float32Array(B * per);
    const noise = new Float32Array(B * per);
    const ehs = new Float32Array(B * S * D);
    chunk.forEach((it, b) => {
      x0.set(data.images[it.image], b * per);
      noise.set(it.noise, b * per);
      ehs.set(data.embedding.data.subarray(0, S * D), b * S * D);
    });
    const ts = chunk.map((it) => it.t);
    const noisy = schedule.addNoise(x0, noise, ts);
    const target = schedule.target(x0, noise, ts);
    const loss = await noGrad(engine, () =>
      engine.scope(async () => {
        const out = await model.unet.forward(
          engine.fromArray(noisy, [B, c, h, w]),
          ts,
          engine.fromArray(ehs, [B, S, D]),
        );
        const l = await ops.mseLoss(out, engine.fromArray(target, [B, c, h, w]));
        return (await l.read())[0];
      }),
    );
    sum += loss * B;
  }
  return sum / set.length;
}

async function main(): Promise<void> {
  const steps = Number(args.steps);
  const seed = Number(args.seed);
  const ranks = args.ranks!.split(',').filter(Boolean).map(Number);
  const overrides = parseLora2Overrides(args.lora2!);
  const targets = targetPreset(args.targets!);
  const gpu = await acquireNodeGpu({ label: 'bench-lora' });
  const engine = new Engine(gpu);
  const model = await DiffusionModel.load(engine, new DirectoryFolder(resolve(args.model!)));
  const size = model.resolution;
  const schedule = new NoiseSchedule(model.scheduler);
  const item = await holdoutItem(args.emoji!);
  const subject = await decodePng(new Uint8Array(await readFile(item.image)));
  const photos = compositeSubject(subject, { size, count: Number(args.photos), seed: seed + 1 });
  const prompt = `<v1> ${item.label}`;
  const data: TrainData = {
    images: await model.encodeImages(photos),
    imageShape: model.inputShape,
    embedding: await model.embed(prompt),
  };
  const per = data.imageShape.reduce((a, b) => a * b, 1);
  const evalRng = new Rng(seed + 0x0e7a1);
  const evalSet: EvalItem[] = Array.from({ length: Number(args.eval) }, (_, k) => ({
    image: k % photos.length,
    t: schedule.sampleTimesteps(evalRng, 1)[0],
    noise: evalRng.normals(per),
  }));
  const blocks = new Map(model.unet.linearTargets().map((t) => [t.path, t.block]));
  const started = new Date();
  const load0 = os.loadavg();
  process.stderr.write(`subject ${item.code} (${item.label}), prompt "${prompt}", ${steps} steps per run\n`);
  const baseLoss = await evalLoss(engine, model, schedule, data, evalSet);
  process.stderr.write(`base model eval loss ${baseLoss.toFixed(5)}\n`);

  const configs: { name: string; lora: Lora2Settings }[] = [
    { name: 'LoRA²', lora: lora2Settings({ ...overrides, targets }) },
    ...ranks.map((r) => ({ name: `fixed rank ${r}`, lora: lora2Settings({ fixedRank: r, targets }) })),
  ];
  const results: RunResult[] = [];
  for (const cfg of configs) {
    const t0 = performance.now();
    const trainer = await Trainer.create(engine, model.unet, schedule, data, {
      ...DEFAULT_TRAINER_CONFIG,
      sessionId: `bench-${cfg.name}`,
      steps,
      batchSize: 1,
      seed,
      contributionsEvery: 0,
      checkpointEvery: 0,
      lora: cfg.lora,
    });
    const stepMs: number[] = [];
    let peak = 0;
    await trainer.run((p) => {
      stepMs.push(p.stepMs);
      peak = Math.max(peak, p.peakGpuBytes);
      if (p.step % 10 === 0 || p.step === steps)
        process.stderr.write(`\r  ${cfg.name}: step ${p.step}/${steps} loss ${p.loss.toFixed(4)}   `);
    });
    const ev = await evalLoss(engine, model, schedule, data, evalSet);
    const layers = trainer.adapters.map((a) => ({
      layer: a.target.path,
      block: blocks.get(a.target.path) ?? '?',
      rank: a.rank,
      taskGradRho: a.fixed ? undefined : gradStats(a.taskGradStats),
    }));
    const params = trainer.adapters.reduce(
      (s, a) => s + a.rank * (a.target.inFeatures + a.target.outFeatures),
      0,
    );
    results.push({
      name: cfg.name,
      evalLoss: ev,
      trainLossLast20: mean(trainer.lossHistory.slice(-20)),
      ranks: layers,
      params,
      bytes: params * 4,
      peakGpuBytes: peak,
      medianStepMs: median(stepMs),
      seconds: (performance.now() - t0) / 1000,
    });
    process.stderr.write(`\n  ${cfg.name}: eval loss ${ev.toFixed(5)}\n`);
    trainer.release();
  }

  const load1 = os.loadavg();
  const ref = results.find((r) => r.name === `fixed rank ${Math.max(...ranks)}`);
  const lora2 = results[0];
  const rankSummary = (r: RunResult) => {
    const by = (b: string) => r.ranks.filter((l) => l.block === b).map((l) => l.rank);
    const fmt = (xs: number[]) =>
      xs.length ? `${Math.min(...xs)}–${Math.max(...xs)} (mean ${mean(xs).toFixed(1)})` : '—';
    return `down ${fmt(by('down'))}, mid ${fmt(by('mid'))}, up ${fmt(by('up'))}`;
  };
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${r.evalLoss.toFixed(5)} | ${(((baseLoss - r.evalLoss) / baseLoss) * 100).toFixed(1)}% | ` +
      `${r.trainLossLast20.toFixed(4)} | ${r.params.toLocaleString('en-US')} | ${(r.bytes / 1024).toFixed(1)} KiB | ` +
      `${ref ? (r.bytes / ref.bytes).toFixed(3) : '—'} | ${(r.peakGpuBytes / 2 ** 20).toFixed(1)} MiB | ` +
      `${r.medianStepMs.toFixed(0)} ms | ${rankSummary(r)} |`,
  );
  const verdict = ref
    ? `LoRA² eval loss ${lora2.evalLoss.toFixed(5)} vs ${ref.name} ${ref.evalLoss.toFixed(5)} ` +
      `(${(((lora2.evalLoss - ref.evalLoss) / ref.evalLoss) * 100).toFixed(1)}%; target ≤ +5%) with ` +
      `${((lora2.bytes / ref.bytes) * 100).toFixed(1)}% of its adapter bytes (target ≤ 25%): ` +
      `${lora2.evalLoss <= ref.evalLoss * 1.05 && lora2.bytes <= ref.bytes / 4 ? 'met' : 'NOT met'}`
    : 'no rank-64 reference run';
  console.log(`## LoRA² vs fixed-rank LoRA on the default model (${started.toISOString()})

- adapter: ${adapterName(gpu.adapter)}; host: ${os.cpus().length} CPUs, load average ${load0[0].toFixed(1)} at start, ${load1[0].toFixed(1)} at end
- model: ${args.model}; subject: held-out ${item.code} (${item.label}), ${photos.length} composited photos at ${size}×${size}; prompt "${prompt}"
- every run: ${steps} steps, batch 1, seed ${seed}, the same timesteps/noise draws; LoRA² at the defaults (k 0.9, r₀ 2, σ 0.3, r_init 4, R_max 64, s 1, lr 3e-3 / ρ 1e-2)${args.lora2 ? ` except ${args.lora2}` : ''}; fixed rank: same module with f ≡ 1 and α/r scale; targets: ${args.targets}
- eval loss: mean ε-MSE over ${evalSet.length} fixed (photo, timestep, noise) triples; base model (no adapter): ${baseLoss.toFixed(5)}
- bytes: exported adapter parameters Σ D_ℓ·(in+out) in f32; peak GPU bytes: the engine's buffer pool during training

| run | eval loss | vs base | train loss (last 20) | adapter params | bytes | bytes ÷ largest fixed | peak GPU | step (median) | final ranks |
|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

${verdict}
${results.map(gradSummary).filter(Boolean).join('\n')}
`);
  const out = resolve(args.out!);
  await mkdir(out, { recursive: true });
  await writeFile(
    join(out, 'report.json'),
    JSON.stringify({ baseLoss, prompt, steps, seed, results }, null, 1),
  );
  await model.dispose();
  engine.destroy();
  process.exit(0);
}

await main();
