// Training and sampling at Stable Diffusion 1.5's size: npm run bench:sd15 -- [--latent 16] [--steps 3]
// [--batch 1] [--checkpointing] [--targets attention] [--weights f16|f32] [--keep-freed]. Builds SD 1.5's
// UNet from its diffusers config (src/models/fixtures: 686 tensors, 859,520,964 parameters) with seeded
// random weights at the real shapes (nothing to download; the numbers below do not depend on the values),
// then runs LoRA² training steps on random latents [4, L, L] with a random 77×768 prompt embedding, and one
// guided sampling step (UNet forward at batch 2). Reports what a user of a real SD 1.5 folder would meet:
// load time, the step times, peak GPU memory (the engine's pool: weights, activations, adapters and optimizer
// state) and the adapter's size.
import { readFile } from 'node:fs/promises';
import { adapterName } from '../src/gpu/device';
import { acquireNodeGpu } from '../src/gpu/node';
import { lora2Settings, targetPreset } from '../src/lora/adapter';
import { parseUNetConfig } from '../src/models/config';
import { parameterCount } from '../src/models/keys';
import { Rng } from '../src/models/rng';
import { NoiseSchedule, parseSchedulerConfig } from '../src/models/schedulers';
import { storesAsF16, UNet2DConditionModel, type WeightStorage } from '../src/models/unet';
import { ParameterStore } from '../src/nn/params';
import { Engine } from '../src/tensor/engine';
import { numel } from '../src/tensor/shape';
import type { Tensor } from '../src/tensor/tensor';
import { DEFAULT_TRAINER_CONFIG, Trainer } from '../src/train/trainer';
import { cliArgs, exitUsage } from './args';

const args = cliArgs(
  'bench:sd15',
  "LoRA² training and sampling steps on SD 1.5's UNet (real shapes, seeded random weights): time and peak GPU memory.",
  {
    latent: { type: 'string', default: '16', help: 'latent side L (SD 1.5 at 512 px: 64; pixels = 8·L)' },
    steps: { type: 'string', default: '3', help: 'training steps (the first compiles the pipelines)' },
    batch: { type: 'string', default: '1', help: 'latents per step' },
    checkpointing: { type: 'boolean', default: false, help: 'gradient checkpointing per block' },
    targets: { type: 'string', default: 'attention', help: 'attention or attention+conv' },
    seed: { type: 'string', default: '0', help: 'seed of the weights and data' },
    weights: {
      type: 'string',
      default: 'f16',
      help: 'storage of the linear/conv weights: f16 (as the studio and the CLIs load them) or f32',
    },
    'keep-freed': {
      type: 'boolean',
      default: false,
      help: "the pool keeps every freed buffer for reuse even when that grows it (before session 22's trimming)",
    },
    'skip-sampling': {
      type: 'boolean',
      default: false,
      help: 'training steps only (large latents are slow here)',
    },
  },
);

const fixture = (name: string) =>
  readFile(new URL(`../src/models/fixtures/${name}`, import.meta.url), 'utf8');

/** SD 1.5's scheduler_config.json values that matter for training (scaled-linear betas). */
const SD15_SCHEDULER = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' };

const GIB = 2 ** 30;
const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`;
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Values at the tensor's shape with the variance a trained network keeps its activations at: weights uniform
 * with standard deviation 1/√fan-in, norm scales 1, biases 0 (uniform rather than normal: 860M of them).
 */
function randomWeights(name: string, shape: number[], rng: Rng): Float32Array {
  const n = numel(shape);
  const out = new Float32Array(n);
  if (shape.length === 1) {
    if (/norm\d*\.weight$/.test(name)) out.fill(1);
    return out;
  }
  const fanIn = numel(shape.slice(1));
  const half = Math.sqrt(3 / fanIn);
  // xorshift32 seeded from the Rng: the stream per tensor is reproducible and cheap.
  let x = (rng.nextU32() | 1) >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 2 ** 32) * 2 * half - half;
  }
  return out;
}

async function main(): Promise<void> {
  const L = Number(args.latent);
  const steps = Number(args.steps);
  const batch = Number(args.batch);
  for (const [name, v] of Object.entries({ latent: L, steps, batch })) {
    if (!Number.isInteger(v) || v < 1) exitUsage('bench:sd15', `--${name} must be a positive integer`);
  }
  if (L % 8) exitUsage('bench:sd15', '--latent must be a multiple of 8 (three downsamplers)');
  if (args.weights !== 'f32' && args.weights !== 'f16') exitUsage('bench:sd15', '--weights: f32 or f16');
  const config = parseUNetConfig(JSON.parse(await fixture('sd15-unet-config.json')));
  const keys = JSON.parse(await fixture('sd15-unet-keys.json')) as { shapes: [string, number[]][] };
  const gpu = await acquireNodeGpu();
  const engine = new Engine(gpu, { trimOnGrowth: !args['keep-freed'] });
  const limit = (name: string) => (gpu.device.limits as unknown as Record<string, number>)[name];
  console.log(`adapter: ${adapterName(gpu.adapter)}`);
  console.log(
    `device limits: maxBufferSize ${gib(limit('maxBufferSize'))}, ` +
      `maxStorageBufferBindingSize ${gib(limit('maxStorageBufferBindingSize'))}`,
  );

  const rng = new Rng(Number(args.seed));
  const t0 = performance.now();
  const tensors = new Map<string, Tensor>();
  await engine.untracked(async () => {
    for (const [name, shape] of keys.shapes) {
      // As UNet2DConditionModel.load stores an F32 file's weights under --weights f16 or f32.
      const dtype = storesAsF16(name, shape.length, 'F32', args.weights as WeightStorage) ? 'f16' : 'f32';
      tensors.set(
        name,
        engine.fromArray(randomWeights(name, shape, rng), shape, { label: name, exact: true, dtype }),
      );
    }
    await gpu.device.queue.onSubmittedWorkDone();
  });
  const unet = new UNet2DConditionModel(engine, config, new ParameterStore(tensors));
  const weightBytes = engine.stats().liveBytes;
  const parameters = parameterCount(keys.shapes.map(([, shape]) => shape));
  console.log(
    `SD 1.5 UNet: ${keys.shapes.length} tensors, ${parameters.toLocaleString('en')} parameters, ` +
      `${gib(weightBytes)} on the GPU (linear/conv weights ${args.weights}), made and uploaded in ${sec(performance.now() - t0)}`,
  );

  const C = config.inChannels;
  const [S, D] = [77, config.crossAttentionDim[0]];
  const images = Array.from({ length: 4 }, () => rng.normals(C * L * L));
  const embedding = { data: rng.normals(S * D), shape: [1, S, D] as [number, number, number] };
  const schedule = new NoiseSchedule(parseSchedulerConfig(SD15_SCHEDULER));
  const trainer = await Trainer.create(
    engine,
    unet,
    schedule,
    { images, imageShape: [C, L, L], embedding },
    {
      ...DEFAULT_TRAINER_CONFIG,
      sessionId: 'bench-sd15',
      steps,
      batchSize: batch,
      seed: Number(args.seed),
      checkpointEvery: 0,
      contributionsEvery: 0,
      gradientCheckpointing: args.checkpointing,
      lora: lora2Settings({ targets: targetPreset(args.targets) }),
    },
  );
  console.log(
    `training: latents ${C}×${L}×${L} (${8 * L} px), batch ${batch}, LoRA² on ${trainer.adapters.length} layers ` +
      `(${args.targets}), gradient checkpointing ${args.checkpointing ? 'on' : 'off'}`,
  );
  // One progress event per step, with the step's time; run() starts the peak measurement.
  const stepMs: number[] = [];
  const losses: number[] = [];
  await trainer.run((p) => {
    stepMs.push(p.stepMs);
    losses.push(p.loss);
    console.log(`  step ${p.step}/${steps}: ${sec(p.stepMs)}, loss ${p.loss.toFixed(4)}`);
  });
  const trainPeak = engine.stats().peakAllocatedBytes;
  const trainPeakLive = engine.stats().peakLiveBytes;
  const trainPipelines = engine.ctx.pipelines.size;
  const pool = engine.stats();
  const ranks = trainer.layerStates().map((l) => l.rank);
  const adapterBytes = trainer.adapterBytes;
  if (!losses.every(Number.isFinite)) throw new Error(`a training loss is not finite: ${losses.join(', ')}`);
  trainer.release();

  // One guided sampling step: the UNet at batch 2 (unconditional and conditional halves), measured from the
  // weights alone (the training step's freed buffers let go).
  engine.pool.trim();
  engine.pool.resetPeak();
  const sampleMs: number[] = [];
  for (let i = 0; i < (args['skip-sampling'] ? 0 : 2); i++) {
    const t = performance.now();
    await engine.scope(async () => {
      const x = engine.fromArray(rng.normals(2 * C * L * L), [2, C, L, L]);
      const ehs = engine.fromArray(rng.normals(2 * S * D), [2, S, D]);
      const out = await unet.forward(x, [500, 500], ehs);
      const v = await out.read();
      if (!v.every(Number.isFinite)) throw new Error('the sampling forward gave non-finite values');
    });
    sampleMs.push(performance.now() - t);
  }
  const samplePeak = engine.stats().peakAllocatedBytes;
  const samplePipelines = engine.ctx.pipelines.size - trainPipelines;

  const steady = stepMs.slice(1);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log('\n| measure | value |\n|---|---|');
  console.log(`| latents (pixels) | ${C}×${L}×${L} (${8 * L}×${8 * L}), batch ${batch} |`);
  console.log(`| weights on the GPU (linear/conv weights ${args.weights}) | ${gib(weightBytes)} |`);
  console.log(`| training: first step (compiles ${trainPipelines} pipelines) | ${sec(stepMs[0])} |`);
  console.log(
    `| training: pool buffers created, reused (of which a larger class), evicted | ${pool.created}, ` +
      `${pool.reused} (${pool.reusedLarger}), ${pool.evicted}${args['keep-freed'] ? ' (--keep-freed)' : ''} |`,
  );
  if (steady.length)
    console.log(`| training: later steps, mean of ${steady.length} | ${sec(mean(steady))} |`);
  console.log(`| training: peak GPU memory (weights included) | ${gib(trainPeak)} |`);
  console.log(
    `| training: of which in use at once (the rest: freed buffers the pool keeps) | ${gib(trainPeakLive)} |`,
  );
  console.log(
    `| LoRA² adapter after ${steps} steps | ${(adapterBytes / 1024).toFixed(0)} KiB, ranks ${Math.min(...ranks)}–${Math.max(...ranks)} |`,
  );
  if (sampleMs.length) {
    console.log(
      `| sampling step (UNet at batch 2): first (${samplePipelines} more pipelines), second | ` +
        `${sec(sampleMs[0])}, ${sec(sampleMs[1])} |`,
    );
    console.log(`| sampling: peak GPU memory (weights included) | ${gib(samplePeak)} |`);
  }
  unet.params.release();
  engine.destroy();
  process.exit(0);
}

await main();
