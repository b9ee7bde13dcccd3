// conv2d with autograd (NCHW, weight [Cout, Cin, kh, kw]): input, weight and bias gradients are each
// computed only when wanted, so a frozen convolution costs just its input gradient.
import {
  conv2d as conv2dKernel,
  conv2dBackwardBias,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dOutputSize,
  type Conv2dShape,
} from '../../kernels/conv2d';
import type { ConvSizes } from '../../kernels/common';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';
import { expectDType, expectRank, expectShape, halfWeight, output, productSaved } from './util';

export interface Conv2dOptions {
  stride?: number;
  /** Zero padding on every side. */
  padding?: number;
  /**
   * `uniform` for a convolution whose shape changes during a run (a LoRA² adapter's, with its rank): one pipeline
   * serves every shape. The default `baked` compiles a pipeline per shape, which runs faster (BENCHMARKS.md).
   */
  sizes?: ConvSizes;
}

export async function conv2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor,
  opts: Conv2dOptions = {},
): Promise<Tensor> {
  expectDType('conv2d', [x, bias]);
  const weightF16 = halfWeight('conv2d', x, weight);
  expectRank('conv2d', x, 4);
  expectRank('conv2d', weight, 4);
  const [batch, cin, h, w] = x.shape;
  const [cout, wcin, kh, kw] = weight.shape;
  if (wcin !== cin) throw new Error(`conv2d: ${weight} does not take ${cin} input channels of ${x}`);
  if (bias) expectShape('conv2d', bias, [cout]);
  const s: Conv2dShape = {
    sizes: opts.sizes,
    ...{ batch, cin, h, w, cout, kh, kw },
    ...{ stride: opts.stride ?? 1, pad: opts.padding ?? 0 },
  };
  const ho = conv2dOutputSize(h, kh, s.stride, s.pad);
  const wo = conv2dOutputSize(w, kw, s.stride, s.pad);
  const ctx = x.engine.ctx;
  const y = output(x, [batch, cout, ho, wo], 'conv2d');
  const wArgs = { weight: weight.buffer, weightF16 };
  await conv2dKernel(ctx, { ...s, ...wArgs, x: x.buffer, bias: bias?.buffer, out: y.buffer });
  record({
    name: 'conv2d',
    inputs: [x, weight, bias],
    outputs: [y],
    saved: productSaved(x, weight),
    backward: async (g) => {
      const dy = g.grad()!.buffer;
      await g.into(0, (dx, accumulate) =>
        conv2dBackwardInput(ctx, { ...s, ...wArgs, dy, dx: dx.buffer, accumulate }),
      );
      await g.into(1, (dw, accumulate) =>
        conv2dBackwardWeight(ctx, { ...s, dy, x: x.buffer, dweight: dw.buffer, accumulate }),
      );
      await g.into(2, (db, accumulate) =>
        conv2dBackwardBias(ctx, { ...s, dy, dbias: db.buffer, accumulate }),
      );
    },
  });
  return y;
}
