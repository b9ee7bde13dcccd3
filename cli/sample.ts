// npm run sample -- --prompt "dog face" --seed 1 --out out.png [--steps 25] [--guidance 4] [--sampler ddim|euler-a]
// [--model public/models/emoji-tiny] [--grid prompts.txt --seeds 1,2]: renders with the default model on Dawn.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { acquireNodeGpu } from '../src/gpu/node';
import { adapterName } from '../src/gpu/device';
import { imageGrid, upscale } from '../src/io/imageGrid';
import { encodePng, type RgbaImage } from '../src/io/png';
import { DirectoryFolder } from '../src/models/folderNode';
import { DiffusionModel } from '../src/models/pipeline';
import { Engine } from '../src/tensor/engine';

const { values } = parseArgs({
  options: {
    prompt: { type: 'string', default: 'grinning face' },
    negative: { type: 'string', default: '' },
    seed: { type: 'string', default: '1' },
    seeds: { type: 'string' },
    steps: { type: 'string', default: '25' },
    guidance: { type: 'string', default: '4' },
    sampler: { type: 'string', default: 'ddim' },
    model: { type: 'string', default: 'public/models/emoji-tiny' },
    out: { type: 'string', default: 'out.png' },
    grid: { type: 'string' },
    scale: { type: 'string', default: '4' },
  },
});

const gpu = await acquireNodeGpu();
console.log(`adapter: ${adapterName(gpu.adapter)}`);
const engine = new Engine(gpu);
const t0 = performance.now();
const model = await DiffusionModel.load(engine, new DirectoryFolder(values.model!));
console.log(`model ${values.model} loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

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
let done = 0;
const total = prompts.length * seeds.length;
for (const prompt of prompts) {
  for (const seed of seeds) {
    const img = await model.generate({
      prompt,
      negativePrompt: values.negative,
      seed,
      steps: Number(values.steps),
      guidance: Number(values.guidance),
      sampler,
      onStep: (s, n) => {
        const elapsed = (performance.now() - start) / 1000;
        const frac = (done + s / n) / total;
        const eta = frac > 0 ? elapsed / frac - elapsed : 0;
        process.stdout.write(
          `\r[${done + 1}/${total}] "${prompt}" seed ${seed} step ${s}/${n}  ${elapsed.toFixed(0)} s, ETA ${eta.toFixed(0)} s   `,
        );
      },
    });
    images.push(img);
    done++;
  }
}
process.stdout.write('\n');
const scale = Number(values.scale);
const out = values.grid ? imageGrid(images, seeds.length, scale) : upscale(images[0], scale);
await writeFile(values.out!, await encodePng(out));
console.log(`wrote ${values.out} (${out.width}×${out.height})`);
process.exit(0);
