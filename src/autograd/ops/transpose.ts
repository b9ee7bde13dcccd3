// Transpose of the last two dims with autograd ([..., rows, cols] → [..., cols, rows]); backward transposes back.
import { transpose as transposeKernel } from '../../kernels/transpose';
import type { Tensor } from '../../tensor/tensor';
import { expectDType, output, recordUnary } from './util';

export async function transposeLast2(x: Tensor): Promise<Tensor> {
  expectDType('transpose', [x]);
  if (x.rank < 2) throw new Error(`transpose: ${x} needs rank ≥ 2`);
  const rows = x.shape[x.rank - 2];
  const cols = x.shape[x.rank - 1];
  const batch = x.size / (rows * cols);
  const ctx = x.engine.ctx;
  const y = output(x, [...x.shape.slice(0, -2), cols, rows], 'transpose');
  await transposeKernel(ctx, { x: x.buffer, y: y.buffer, batch, rows, cols });
  recordUnary('transpose', x, y, [], (dy, dx, accumulate) =>
    transposeKernel(ctx, { x: dy, y: dx, batch, rows: cols, cols: rows, accumulate }),
  );
  return y;
}
