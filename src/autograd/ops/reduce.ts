// Reduction ops with autograd: sum/mean over everything, and sums down to a broadcast (keepdims) shape.
import {
  reduceAllScratchLength,
  sumAll,
  sumAllBackward,
  sumToShape,
  sumToShapeBackward,
} from '../../kernels/reduce';
import type { Shape } from '../../tensor/shape';
import type { Tensor } from '../../tensor/tensor';
import { expectDType, output, recordUnary } from './util';

async function reduceAll(x: Tensor, mean: boolean): Promise<Tensor> {
  const op = mean ? 'mean' : 'sum';
  expectDType(op, [x]);
  const e = x.engine;
  const n = x.size;
  const y = output(x, [1], op);
  const scratch = e.empty([reduceAllScratchLength(n)], { label: `${op}.scratch` });
  await sumAll(e.ctx, { x: x.buffer, out: y.buffer, n, scratch: scratch.buffer, mean });
  scratch.release();
  recordUnary(op, x, y, [], (dOut, dx, accumulate) =>
    sumAllBackward(e.ctx, { dOut, dx, n, mean, accumulate }),
  );
  return y;
}

/** Sum of all elements, shape [1]. */
export const sum = (x: Tensor): Promise<Tensor> => reduceAll(x, false);
/** Mean of all elements, shape [1]. */
export const mean = (x: Tensor): Promise<Tensor> => reduceAll(x, true);

/**
 * Sums x over the dims where `outShape` (same rank as x, keepdims form) is 1, times `scale`
 * (e.g. 1/count for a mean). Rank ≤ 4.
 */
export async function sumTo(x: Tensor, outShape: Shape, scale = 1): Promise<Tensor> {
  expectDType('sumTo', [x]);
  const ctx = x.engine.ctx;
  const y = output(x, outShape, 'sumTo');
  await sumToShape(ctx, { x: x.buffer, out: y.buffer, shape: x.shape, outShape, scale });
  recordUnary('sumTo', x, y, [], (dOut, dx, accumulate) =>
    sumToShapeBackward(ctx, { dOut, dx, shape: x.shape, outShape, scale, accumulate }),
  );
  return y;
}
