// linear and matmul with autograd. Gradients go only where wanted: a frozen weight (requiresGrad false)
// costs its input gradient alone, no dW or dbias launch.
import { biasGradient, matmul as matmulKernel, matmulBackward, type MatmulArgs } from '../../kernels/matmul';
import { formatShape } from '../../tensor/shape';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';
import { expectDType, expectShape, halfWeight, output, productSaved } from './util';

/**
 * y = x Wᵀ + b for x [..., in], weight [out, in] (PyTorch's nn.Linear layout), bias [out]. f32 or f16; a
 * frozen f16 weight may also serve f32 activations (read as f32, accumulated in f32).
 */
export async function linear(x: Tensor, weight: Tensor, bias?: Tensor): Promise<Tensor> {
  const dtype = x.dtype;
  const bF16 = halfWeight('linear', x, weight);
  expectDType('linear', [x, bias], dtype);
  if (x.rank < 1 || weight.rank !== 2) throw new Error(`linear: ${x} by ${weight}`);
  const [outF, inF] = weight.shape;
  if (x.shape[x.rank - 1] !== inF)
    throw new Error(`linear: ${x} does not have ${inF} input features of ${weight}`);
  if (bias) expectShape('linear', bias, [outF]);
  const rows = x.size / inF;
  const ctx = x.engine.ctx;
  const shape = { m: rows, n: outF, k: inF, transposeB: true, dtype };
  const y = output(x, [...x.shape.slice(0, -1), outF], 'linear');
  await matmulKernel(ctx, {
    ...shape,
    bF16,
    a: x.buffer,
    b: weight.buffer,
    bias: bias?.buffer,
    out: y.buffer,
  });
  record({
    name: 'linear',
    inputs: [x, weight, bias],
    outputs: [y],
    saved: productSaved(x, weight),
    backward: async (g) => {
      const dy = g.grad()!.buffer;
      await g.into(0, (dx, accumulate) =>
        // dA reads only dy and the weight: x is not saved when the weight is frozen, so don't touch it.
        matmulBackward(ctx, { ...shape, bF16, a: dy, b: weight.buffer, dy, da: dx.buffer, accumulate }),
      );
      await g.into(1, (dw, accumulate) =>
        // matmulBackward reads B only for dA: the weight need not be alive (or saved) for dW.
        matmulBackward(ctx, { ...shape, a: x.buffer, b: dy, dy, db: dw.buffer, accumulate }),
      );
      await g.into(2, (db, accumulate) =>
        biasGradient(ctx, { dy, dbias: db.buffer, rows, cols: outF, accumulate }),
      );
    },
  });
  return y;
}

export interface MatmulOptions {
  transposeA?: boolean;
  transposeB?: boolean;
  /** Scales the product. */
  alpha?: number;
}

/**
 * Batched op(a)·op(b): a [...batch, m, k] ([..., k, m] when transposeA), b [...batch, k, n] with the same
 * batch dims, or rank 2 [k, n] shared by every batch item ([n, k] when transposeB). Out [...batch, m, n].
 */
export async function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Promise<Tensor> {
  const dtype = a.dtype;
  expectDType('matmul', [a, b], dtype);
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: ${a} by ${b} needs rank ≥ 2`);
  const batchDims = a.shape.slice(0, -2);
  const broadcastB = b.rank === 2 && a.rank > 2;
  if (!broadcastB && formatShape(b.shape.slice(0, -2)) !== formatShape(batchDims)) {
    throw new Error(`matmul: batch dims of ${a} and ${b} differ`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = opts.transposeA ? [ac, ar] : [ar, ac];
  const [kb, n] = opts.transposeB ? [bc, br] : [br, bc];
  if (k !== kb) throw new Error(`matmul: inner dims of ${a} and ${b} differ (${k} vs ${kb})`);
  const batch = a.size / (ar * ac);
  const shape: Omit<MatmulArgs, 'a' | 'b' | 'out'> = { ...opts, m, n, k, batch, broadcastB, dtype };
  const ctx = a.engine.ctx;
  const y = output(a, [...batchDims, m, n], 'matmul');
  await matmulKernel(ctx, { ...shape, a: a.buffer, b: b.buffer, out: y.buffer });
  record({
    name: 'matmul',
    inputs: [a, b],
    outputs: [y],
    saved: productSaved(a, b),
    backward: async (g) => {
      const dy = g.grad()!.buffer;
      await g.into(0, (da, accumulate) =>
        matmulBackward(ctx, { ...shape, a: dy, b: b.buffer, dy, da: da.buffer, accumulate }),
      );
      await g.into(1, (db, accumulate) =>
        matmulBackward(ctx, { ...shape, a: a.buffer, b: dy, dy, db: db.buffer, accumulate }),
      );
    },
  });
  return y;
}
