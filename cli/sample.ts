// npm run sample -- --prompt "dog face" --seed 1 --out out.png [--steps N] [--guidance G] [--sampler ddim|euler-a]
// [--recompute-epsilon true|false] [--model public/models/emoji-tiny] [--grid prompts.txt --seeds 1,2]
// [--lora FILE --lora-strength 0,1]: renders with the default model on Dawn (steps, guidance and DDIM's ε after the
// x₀ clip default to the model's sampling.json), optionally with a
// kohya or PEFT LoRA file (e.g. from `npm run train`). Several strengths render the whole set once per strength
// (0 = the base model), one grid row per prompt × strength.
import { readFile, writeFile } from 'node:fs/promises';
import { acquireNodeGpu } from '../src/gpu/node';
import { adapterName } from '../src/gpu/device';
import { imageGrid, upscale } from '../src/io/imageGrid';
import { importLora, type LoraLayerWeights } from '../src/io/lora';
import { encodePng, type RgbaImage } from '../src/io/png';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import { Engine } from '../src/tensor/engine';
import { StepClock } from '../src/train/eta';
import { attachLora, checkLayersFit } from '../src/train/loraCheckpoint';
import { cliArgs, weightStorage, WEIGHTS_OPTION } from './args';

const values = cliArgs(
  'sample',
  'Renders prompts with a diffusion model on Dawn WebGPU, optionally with a kohya or PEFT LoRA file; several\n' +
    '--lora-strength values render the set once per strength (0 = the base model).',
  {
    prompt: { type: 'string', default: 'grinning face', help: 'prompt' },
    negative: { type: 'string', default: '', help: 'negative prompt' },
    seed: { type: 'string', default: '1', help: 'seed' },
    seeds: { type: 'string', help: 'comma-separated seeds, one grid column each' },
    steps: { type: 'string', help: "sampler steps (default: the model's sampling.json, else 25)" },
    guidance: {
      type: 'string',
      help: "classifier-free guidance (default: the model's sampling.json, else 5)",
    },
    'guidance-below': {
      type: 'string',
      help: 'apply the guidance only at timesteps ≤ this (e.g. 500); above it the prompt alone',
    },
    sampler: { type: 'string', default: 'ddim', help: 'ddim or euler-a' },
    'recompute-epsilon': {
      type: 'string',
      help: "true = ε from the clipped x₀, false = the model's ε as diffusers (default: sampling.json)",
    },
    model: { type: 'string', default: 'public/models/emoji-tiny', help: 'model folder' },
    weights: WEIGHTS_OPTION,
    out: { type: 'string', default: 'out.png', help: 'output PNG' },
    grid: { type: 'string', help: 'text file with one prompt per line: renders a grid' },
    scale: { type: 'string', default: '4', help: 'upscale factor of the written PNG' },
    lora: { type: 'string', help: 'LoRA file (.safetensors, kohya or PEFT keys)' },
    'lora-strength': { type: 'string', default: '1', help: 'comma-separated LoRA strengths' },
  },
);

const guidanceBelow = values['guidance-below'] === undefined ? undefined : Number(values['guidance-below']);
if (guidanceBelow !== undefined && !Number.isFinite(guidanceBelow)) {
  console.error(`--guidance-below: a timestep (got "${values['guidance-below']}")`);
  process.exit(1);
}
const recomputeArg = values['recompute-epsilon'];
if (recomputeArg !== undefined && recomputeArg !== 'true' && recomputeArg !== 'false') {
  console.error(`--recompute-epsilon: true or false (got "${recomputeArg}")`);
  process.exit(1);
}
const strengths = values['lora-strength']!.split(',').map(Number);
if (strengths.some((s) => !Number.isFinite(s))) {
  console.error(`--lora-strength: numbers, comma-separated (got "${values['lora-strength']}")`);
  process.exit(1);
}

const gpu = await acquireNodeGpu();
console.log(`adapter: ${adapterName(gpu.adapter)}`);
const engine = new Engine(gpu);
const t0 = performance.now();
const model = await DiffusionModel.load(
  engine,
  new DirectoryFolder(values.model!),
  {},
  { weights: weightStorage('sample', values.weights) },
);
const stored = model.unet.weightStorage();
console.log(
  `model ${values.model} loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
    `(UNet weights ${(stored.bytes / 2 ** 20).toFixed(1)} MiB on the GPU, ${stored.f16} tensors f16)`,
);
const steps = values.steps === undefined ? model.sampling.steps : Number(values.steps);
const guidance = values.guidance === undefined ? model.sampling.guidance : Number(values.guidance);
if (!Number.isInteger(steps) || steps < 1 || !Number.isFinite(guidance)) {
  console.error(
    `--steps: a positive integer, --guidance: a number (got "${values.steps}", "${values.guidance}")`,
  );
  process.exit(1);
}
const recomputeEpsilon =
  recomputeArg === undefined ? model.sampling.recomputeEpsilon : recomputeArg === 'true';
console.log(
  `${steps} steps, guidance ${guidance}` +
    `, ε ${recomputeEpsilon ? 'from the clipped x₀' : 'kept'}` +
    (values.steps === undefined || values.guidance === undefined || recomputeArg === undefined
      ? ` (defaults from ${model.sampling.source === 'sampling.json' ? "the model's sampling.json" : 'built-in values'})`
      : ''),
);

// The file is read and checked against the model before anything renders.
let layers: LoraLayerWeights[] | undefined;
if (values.lora) {
  try {
    const targets = model.unet.linearTargets([/./]);
    const file = await importLora(
      new Uint8Array(await readFile(values.lora)),
      targets.map((t) => t.path),
    );
    layers = file.layers;
    checkLayersFit(layers, targets);
    const ranks = layers.map((l) => l.rank);
    console.log(
      `LoRA ${values.lora}: ${file.format}, ${layers.length} layers, ranks ${Math.min(...ranks)}–${Math.max(...ranks)}`,
    );
  } catch (e) {
    console.error(`${values.lora}: ${(e as Error).message}`);
    process.exit(1);
  }
}
const runs = layers ? strengths : [undefined];

const prompts = values.grid
  ? (await import('node:fs'))
      .readFileSync(values.grid, 'utf8')
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean)
  : [values.prompt!];
const seeds = (values.seeds ?? values.seed!).split(',').map(Number);
const sampler = values.sampler === 'euler-a' ? 'euler-a' : 'ddim';
const images: RgbaImage[] = [];
const start = performance.now();
// Each image's first step is left out of the pace: the very first compiles the UNet's pipelines.
const clock = new StepClock();
clock.lap(start, false);
let done = 0;
const total = runs.length * prompts.length * seeds.length;
for (const strength of runs) {
  const detach = layers && strength ? await attachLora(model.unet, layers, strength) : undefined;
  const tag = strength === undefined ? '' : ` LoRA ×${strength}`;
  for (const prompt of prompts) {
    for (const seed of seeds) {
      const img = await model.generate({
        prompt,
        negativePrompt: values.negative,
        seed,
        steps,
        guidance,
        guidanceBelow,
        sampler,
        recomputeEpsilon,
        onStep: (s, n) => {
          const now = performance.now();
          clock.lap(now, s === 1);
          const elapsed = (now - start) / 1000;
          const eta = clock.etaMs((total - done) * n - s);
          process.stdout.write(
            `\r[${done + 1}/${total}] "${prompt}"${tag} seed ${seed} step ${s}/${n}  ${elapsed.toFixed(0)} s, ETA ${eta === undefined ? 'estimating' : `${(eta / 1000).toFixed(0)} s`}   `,
          );
        },
      });
      images.push(img);
      done++;
    }
  }
  detach?.();
}
process.stdout.write('\n');
const scale = Number(values.scale);
const out = images.length > 1 ? imageGrid(images, seeds.length, scale) : upscale(images[0], scale);
await writeFile(values.out!, await encodePng(out));
console.log(`wrote ${values.out} (${out.width}×${out.height})`);
process.exit(0);
