// Channel concat/split of NCHW tensors (UNet skip connections), as block copies in the [batch, C·H·W]
// matrix view: each part is a column block. With hw = 1 it concatenates the last axis of [rows, c] tensors.
import type { KernelContext } from './common';
import { copyBlock } from './rows';

export interface ChannelPart {
  buffer: GPUBuffer;
  channels: number;
}

/** Runs `copy(part, columnOffset)` for every part with a buffer, offsets in the [batch, C·hw] view. */
async function eachPart(
  parts: { buffer?: GPUBuffer; channels: number }[],
  hw: number,
  copy: (buffer: GPUBuffer, cols: number, at: number) => Promise<void>,
): Promise<number> {
  let offset = 0;
  for (const p of parts) {
    if (p.buffer) await copy(p.buffer, p.channels * hw, offset * hw);
    offset += p.channels;
  }
  return offset;
}

/** out [batch, Σ channels, hw] = the parts [batch, channels_k, hw] stacked along channels. */
export async function concatChannels(
  ctx: KernelContext,
  args: { parts: ChannelPart[]; out: GPUBuffer; batch: number; hw: number; accumulate?: boolean },
): Promise<void> {
  const total = args.parts.reduce((s, p) => s + p.channels, 0) * args.hw;
  await eachPart(args.parts, args.hw, (buffer, cols, at) =>
    copyBlock(ctx, {
      src: buffer,
      srcShape: [args.batch, cols],
      dst: args.out,
      dstShape: [args.batch, total],
      dstAt: [0, at],
      block: [args.batch, cols],
      accumulate: args.accumulate,
    }),
  );
}

/** The parts [batch, channels_k, hw] of x [batch, Σ channels, hw]; parts without a buffer are skipped. */
export async function splitChannels(
  ctx: KernelContext,
  args: {
    x: GPUBuffer;
    parts: { buffer?: GPUBuffer; channels: number }[];
    batch: number;
    hw: number;
    accumulate?: boolean;
  },
): Promise<void> {
  const total = args.parts.reduce((s, p) => s + p.channels, 0) * args.hw;
  await eachPart(args.parts, args.hw, (buffer, cols, at) =>
    copyBlock(ctx, {
      src: args.x,
      srcShape: [args.batch, total],
      srcAt: [0, at],
      dst: buffer,
      dstShape: [args.batch, cols],
      block: [args.batch, cols],
      accumulate: args.accumulate,
    }),
  );
}

/** Gradients of the parts from dOut: a split (parts without a buffer need no gradient). */
export async function concatChannelsBackward(
  ctx: KernelContext,
  args: {
    dOut: GPUBuffer;
    dParts: { buffer?: GPUBuffer; channels: number }[];
    batch: number;
    hw: number;
    accumulate?: boolean;
  },
): Promise<void> {
  await splitChannels(ctx, { ...args, x: args.dOut, parts: args.dParts });
}
