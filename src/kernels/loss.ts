// MSE loss mean((a − b)²) into a one-element buffer (two-pass reduction), and its backward scaled by the
// upstream gradient, which stays on the GPU as a one-element buffer so a step needs no readback.
import type { KernelContext } from './common';
import { mapFlat } from './elementwise';
import { mapReduceAll, reduceAllScratchLength } from './reduce';

/** Scratch floats mseLoss needs for n elements. */
export const mseLossScratchLength = reduceAllScratchLength;

/** out[0] = mean over n elements of (a − b)²; scratch holds mseLossScratchLength(n) floats. */
export async function mseLoss(
  ctx: KernelContext,
  args: { a: GPUBuffer; b: GPUBuffer; out: GPUBuffer; n: number; scratch: GPUBuffer; accumulate?: boolean },
): Promise<void> {
  await mapReduceAll(ctx, {
    ...args,
    op: 'mseLoss',
    inputs: [
      { name: 'a', buffer: args.a },
      { name: 'b', buffer: args.b },
    ],
    map: '(a - b) * (a - b)',
    scale: 1 / args.n,
  });
}

/** da = dLoss[0] · 2(a − b)/n and/or db = −da (dLoss is the one-element upstream gradient). */
export async function mseLossBackward(
  ctx: KernelContext,
  args: {
    a: GPUBuffer;
    b: GPUBuffer;
    dLoss: GPUBuffer;
    da?: GPUBuffer;
    db?: GPUBuffer;
    n: number;
    accumulate?: boolean;
  },
): Promise<void> {
  const inputs = [
    { name: 'a', buffer: args.a },
    { name: 'b', buffer: args.b },
    { name: 'g', buffer: args.dLoss, scalar: true },
  ];
  for (const [out, sign] of [
    [args.da, 1],
    [args.db, -1],
  ] as const) {
    if (!out) continue;
    await mapFlat(ctx, {
      op: 'mseLoss.backward',
      inputs,
      expr: 'alpha * g * (a - b)',
      out,
      n: args.n,
      alpha: (sign * 2) / args.n,
      accumulate: args.accumulate,
    });
  }
}
