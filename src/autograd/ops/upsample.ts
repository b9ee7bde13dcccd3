// Nearest 2× upsampling of NCHW maps with autograd; the backward sums each 2×2 block.
import { upsampleNearest2x as upsampleKernel, upsampleNearest2xBackward } from '../../kernels/upsample';
import type { Tensor } from '../../tensor/tensor';
import { expectDType, expectRank, output, recordUnary } from './util';

export async function upsampleNearest2x(x: Tensor): Promise<Tensor> {
  expectDType('upsampleNearest2x', [x]);
  expectRank('upsampleNearest2x', x, 4);
  const [b, c, h, w] = x.shape;
  const ctx = x.engine.ctx;
  const y = output(x, [b, c, 2 * h, 2 * w], 'upsampleNearest2x');
  await upsampleKernel(ctx, { x: x.buffer, y: y.buffer, planes: b * c, h, w });
  recordUnary('upsampleNearest2x', x, y, [], (dy, dx, accumulate) =>
    upsampleNearest2xBackward(ctx, { dy, dx, planes: b * c, h, w, accumulate }),
  );
  return y;
}
