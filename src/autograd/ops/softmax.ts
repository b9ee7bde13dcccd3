// Softmax over the last axis with autograd; the backward reads the saved output, not the input.
import { softmax as softmaxKernel, softmaxBackward } from '../../kernels/softmax';
import type { Tensor } from '../../tensor/tensor';
import { expectDType, output, recordUnary } from './util';

export async function softmax(x: Tensor): Promise<Tensor> {
  expectDType('softmax', [x]);
  const cols = x.shape[x.rank - 1];
  const rows = x.size / cols;
  const ctx = x.engine.ctx;
  const y = output(x, x.shape, 'softmax');
  await softmaxKernel(ctx, { x: x.buffer, y: y.buffer, rows, cols });
  recordUnary('softmax', x, y, [y], (dy, dx, accumulate) =>
    softmaxBackward(ctx, { y: y.buffer, dy, dx, rows, cols, accumulate }),
  );
  return y;
}
