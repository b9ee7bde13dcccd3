// Conv sizes from a uniform (LoRA² conv adapters) against sizes baked into one pipeline per shape (the frozen
// UNet convs), side by side in one process: npm run bench:conv -- [--rounds 15] [--sd]. For the default model's
// 3×3 conv shapes (batch 1; --sd adds SD 1.5's 320-channel 64×64 one), times the forward, input-gradient and
// weight-gradient kernels each way; rounds alternate the two and swap which goes first, so load changes hit both
// alike. Reports the median ms of each, their ratio, and the geometric mean of the ratios per kernel.
import { adapterName } from '../src/gpu/device';
import { acquireNodeGpu } from '../src/gpu/node';
import { kernelContext, storageBuffer, upload } from '../src/kernels/common';
import {
  conv2d,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dOutputSize,
  type Conv2dShape,
} from '../src/kernels/conv2d';
import { cliArgs, exitUsage } from './args';
import { median } from './bench/stats';

const args = cliArgs(
  'bench:conv',
  'Conv kernels with sizes from a uniform vs baked per shape: median ms and ratio.',
  {
    rounds: { type: 'string', default: '15', help: 'alternating rounds per kernel and shape' },
    sd: { type: 'boolean', default: false, help: "add SD 1.5's 320→320 channel conv at 64×64 (slow on CPU)" },
  },
);

const conv3x3 = (cin: number, size: number, cout: number): Conv2dShape => ({
  batch: 1,
  cin,
  h: size,
  w: size,
  cout,
  kh: 3,
  kw: 3,
  stride: 1,
  pad: 1,
});

/** The default model's 3×3 convs (ResNet convs per level, and the up blocks' first convs on concatenated skips). */
const SHAPES = [
  conv3x3(64, 32, 64),
  conv3x3(192, 32, 64),
  conv3x3(128, 16, 128),
  conv3x3(256, 16, 128),
  conv3x3(128, 8, 128),
];
const KINDS = ['uniform', 'baked'] as const;

async function main(): Promise<void> {
  const rounds = Number(args.rounds);
  if (!Number.isInteger(rounds) || rounds < 1)
    exitUsage('bench:conv', '--rounds must be a positive whole number');
  const gpu = await acquireNodeGpu();
  const ctx = kernelContext(gpu);
  const shapes = args.sd ? [...SHAPES, conv3x3(320, 64, 320)] : SHAPES;
  const random = (label: string, n: number) =>
    upload(
      ctx,
      label,
      Float32Array.from({ length: n }, () => Math.random() * 2 - 1),
    );
  console.log(
    `adapter: ${adapterName(gpu.adapter)}; ${rounds} rounds, median ms per launch until the queue is done\n`,
  );
  console.log('| conv (batch 1) | kernel | uniform ms | baked ms | uniform ÷ baked |\n|---|---|---|---|---|');
  const ratios = new Map<string, number[]>();
  for (const s of shapes) {
    const ho = conv2dOutputSize(s.h, s.kh, s.stride, s.pad);
    const wo = conv2dOutputSize(s.w, s.kw, s.stride, s.pad);
    const x = random('bench.conv.x', s.batch * s.cin * s.h * s.w);
    const weight = random('bench.conv.w', s.cout * s.cin * s.kh * s.kw);
    const dy = random('bench.conv.dy', s.batch * s.cout * ho * wo);
    const out = storageBuffer(ctx, 'bench.conv.out', s.batch * s.cout * ho * wo * 4);
    const dx = storageBuffer(ctx, 'bench.conv.dx', s.batch * s.cin * s.h * s.w * 4);
    const dweight = storageBuffer(ctx, 'bench.conv.dw', s.cout * s.cin * s.kh * s.kw * 4);
    const kernels: [string, () => Promise<void>][] = [
      ['forward', () => conv2d(ctx, { ...s, x, weight, out })],
      ['input gradient', () => conv2dBackwardInput(ctx, { ...s, dy, weight, dx })],
      ['weight gradient', () => conv2dBackwardWeight(ctx, { ...s, dy, x, dweight })],
    ];
    for (const [name, run] of kernels) {
      const ms: Record<string, number[]> = { uniform: [], baked: [] };
      // Round 0 builds both pipelines and is left out.
      for (let r = 0; r <= rounds; r++) {
        for (const kind of r % 2 ? [...KINDS].reverse() : KINDS) {
          ctx.convSizes = kind;
          const t0 = performance.now();
          await run();
          await ctx.device.queue.onSubmittedWorkDone();
          if (r > 0) ms[kind].push(performance.now() - t0);
        }
      }
      const [u, b] = KINDS.map((k) => median(ms[k]));
      ratios.set(name, [...(ratios.get(name) ?? []), u / b]);
      console.log(
        `| ${s.cin}→${s.cout} ch, ${s.h}×${s.w} | ${name} | ${u.toFixed(1)} | ${b.toFixed(1)} | ${(u / b).toFixed(3)} |`,
      );
    }
    for (const buf of [x, weight, dy, out, dx, dweight]) buf.destroy();
  }
  console.log('');
  for (const [name, rs] of ratios) {
    const geo = Math.exp(rs.reduce((a, r) => a + Math.log(r), 0) / rs.length);
    console.log(`${name}: geometric mean of uniform ÷ baked over ${rs.length} shapes = ${geo.toFixed(3)}`);
  }
  process.exit(0);
}

void main();
