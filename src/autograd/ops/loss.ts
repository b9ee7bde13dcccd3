// Losses with autograd: MSE (the diffusion noise-prediction loss), a scalar [1].
import { mseLoss as mseKernel, mseLossBackward, mseLossScratchLength } from '../../kernels/loss';
import { formatShape, shapesEqual } from '../../tensor/shape';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';
import { expectDType, output } from './util';

/** mean((a − b)²) over all elements, shape [1]. */
export async function mseLoss(a: Tensor, b: Tensor): Promise<Tensor> {
  expectDType('mseLoss', [a, b]);
  if (!shapesEqual(a.shape, b.shape))
    throw new Error(`mseLoss: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  const e = a.engine;
  const n = a.size;
  const y = output(a, [1], 'mseLoss');
  const scratch = e.empty([mseLossScratchLength(n)], { label: 'mseLoss.scratch' });
  await mseKernel(e.ctx, { a: a.buffer, b: b.buffer, out: y.buffer, n, scratch: scratch.buffer });
  scratch.release();
  record({
    name: 'mseLoss',
    inputs: [a, b],
    outputs: [y],
    saved: [a, b],
    backward: async (g) => {
      const args = { a: a.buffer, b: b.buffer, dLoss: g.grad()!.buffer, n };
      await g.into(0, (da, accumulate) => mseLossBackward(e.ctx, { ...args, da: da.buffer, accumulate }));
      await g.into(1, (db, accumulate) => mseLossBackward(e.ctx, { ...args, db: db.buffer, accumulate }));
    },
  });
  return y;
}
