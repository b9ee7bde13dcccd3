// concat, split and narrow along one dim with autograd: block copies over the [outer, size·inner] view of
// each tensor, so any dim works (channels of NCHW by default).
import { concatChannels, concatChannelsBackward, splitChannels } from '../../kernels/concat';
import { copyBlock, type RowCol } from '../../kernels/rows';
import { numel } from '../../tensor/shape';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';
import { expectDType, output } from './util';

/** outer = product of dims before `dim`, inner = product after it. */
function around(shape: readonly number[], dim: number): { outer: number; inner: number } {
  return { outer: numel(shape.slice(0, dim)), inner: numel(shape.slice(dim + 1)) };
}

function normDim(rank: number, dim: number, op: string): number {
  const d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank) throw new Error(`${op}: dim ${dim} out of range for rank ${rank}`);
  return d;
}

/** Concatenation along `dim` (default 1: channels of NCHW, the UNet's skip connections). */
export async function concat(parts: Tensor[], dim = 1): Promise<Tensor> {
  if (parts.length === 0) throw new Error('concat: no tensors');
  const first = parts[0];
  expectDType('concat', parts);
  const d = normDim(first.rank, dim, 'concat');
  for (const p of parts) {
    if (p.rank !== first.rank || p.shape.some((v, i) => i !== d && v !== first.shape[i])) {
      throw new Error(`concat: ${p} does not match ${first} outside dim ${d}`);
    }
  }
  const { outer, inner } = around(first.shape, d);
  const sizes = parts.map((p) => p.shape[d]);
  const shape = [...first.shape];
  shape[d] = sizes.reduce((a, b) => a + b, 0);
  const ctx = first.engine.ctx;
  const y = output(first, shape, 'concat');
  await concatChannels(ctx, {
    parts: parts.map((p, i) => ({ buffer: p.buffer, channels: sizes[i] })),
    out: y.buffer,
    batch: outer,
    hw: inner,
  });
  record({
    name: 'concat',
    inputs: parts,
    outputs: [y],
    saved: [],
    backward: async (g) => {
      // One part at a time: each gradient has its own accumulate flag.
      for (let i = 0; i < parts.length; i++) {
        await g.into(i, (dx, accumulate) =>
          concatChannelsBackward(ctx, {
            dOut: g.grad()!.buffer,
            dParts: sizes.map((channels, j) => ({ channels, buffer: j === i ? dx.buffer : undefined })),
            batch: outer,
            hw: inner,
            accumulate,
          }),
        );
      }
    },
  });
  return y;
}

/** Splits x along `dim` into pieces of the given sizes (the inverse of concat). */
export async function split(x: Tensor, sizes: number[], dim = 1): Promise<Tensor[]> {
  expectDType('split', [x]);
  const d = normDim(x.rank, dim, 'split');
  if (sizes.reduce((a, b) => a + b, 0) !== x.shape[d])
    throw new Error(`split: sizes [${sizes}] do not add up to ${x}`);
  const { outer, inner } = around(x.shape, d);
  const ctx = x.engine.ctx;
  const outs = sizes.map((s, i) => {
    const shape = [...x.shape];
    shape[d] = s;
    return output(x, shape, `split.${i}`);
  });
  await splitChannels(ctx, {
    x: x.buffer,
    parts: outs.map((o, i) => ({ buffer: o.buffer, channels: sizes[i] })),
    batch: outer,
    hw: inner,
  });
  record({
    name: 'split',
    inputs: [x],
    outputs: outs,
    saved: [],
    backward: (g) =>
      g.into(0, (dx, accumulate) =>
        concatChannels(ctx, {
          parts: outs.map((_, i) => ({ buffer: g.gradOrZeros(i).buffer, channels: sizes[i] })),
          out: dx.buffer,
          batch: outer,
          hw: inner,
          accumulate,
        }),
      ),
  });
  return outs;
}

/**
 * Elements [start, start + length) of x along `dim`, copied out (e.g. B[:, :D] of a LoRA up matrix). Its
 * gradient lands in that slice of x's gradient; the rest of it gets zeros.
 */
export async function narrow(x: Tensor, dim: number, start: number, length: number): Promise<Tensor> {
  expectDType('narrow', [x]);
  const d = normDim(x.rank, dim, 'narrow');
  const size = x.shape[d];
  if (
    !Number.isInteger(start) ||
    !Number.isInteger(length) ||
    start < 0 ||
    length < 0 ||
    start + length > size
  ) {
    throw new Error(`narrow: [${start}, ${start + length}) of dim ${d} of ${x}`);
  }
  const { outer, inner } = around(x.shape, d);
  const shape = [...x.shape];
  shape[d] = length;
  const ctx = x.engine.ctx;
  const y = output(x, shape, 'narrow');
  // As row-major matrices: x [outer, size·inner] holds y [outer, length·inner] at column start·inner.
  const whole: RowCol = [outer, size * inner];
  const part: RowCol = [outer, length * inner];
  const at: RowCol = [0, start * inner];
  await copyBlock(ctx, {
    src: x.buffer,
    srcShape: whole,
    srcAt: at,
    dst: y.buffer,
    dstShape: part,
    block: part,
  });
  record({
    name: 'narrow',
    inputs: [x],
    outputs: [y],
    saved: [],
    backward: (g) =>
      g.into(0, async (dx, accumulate) => {
        if (!accumulate && length < size) x.engine.clear(dx);
        await copyBlock(ctx, {
          src: g.grad()!.buffer,
          srcShape: part,
          dst: dx.buffer,
          dstShape: whole,
          dstAt: at,
          block: part,
          accumulate,
        });
      }),
  });
  return y;
}
