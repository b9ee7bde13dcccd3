// Softmax over the last axis with autograd; the backward reads the saved output, not the input.
import { softmax as softmaxKernel, softmaxBackward } from '../../kernels/softmax';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';
import { expectDType, output } from './util';

export async function softmax(x: Tensor): Promise<Tensor> {
  expectDType('softmax', [x]);
  const cols = x.shape[x.rank - 1];
  const rows = x.size / cols;
  const ctx = x.engine.ctx;
  const y = output(x, x.shape, 'softmax');
  await softmaxKernel(ctx, { x: x.buffer, y: y.buffer, rows, cols });
  record({
    name: 'softmax',
    inputs: [x],
    outputs: [y],
    saved: [y],
    backward: (g) =>
      g.into(0, (dx, accumulate) =>
        softmaxBackward(ctx, { y: y.buffer, dy: g.grad()!.buffer, dx: dx.buffer, rows, cols, accumulate }),
      ),
  });
  return y;
}
