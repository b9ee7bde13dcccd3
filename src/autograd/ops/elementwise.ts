// Elementwise ops with autograd: activations, scale, add/sub/mul with numpy broadcasting, GEGLU.
import {
  binary,
  BINARY_OPS,
  binaryBackward,
  geglu as gegluKernel,
  gegluBackward,
  unary,
  unaryBackward,
  type BinaryOp,
  type UnaryOp,
} from '../../kernels/elementwise';
import { broadcastShapes } from '../../kernels/reduce';
import { shapesEqual } from '../../tensor/shape';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';
import { expectDType, output, recordUnary } from './util';

/** Unary ops whose derivative is a constant factor: the backward is the op itself applied to dy. */
const LINEAR_UNARY = new Set<UnaryOp>(['scale', 'neg']);

async function unaryOp(op: UnaryOp, x: Tensor, alpha?: number): Promise<Tensor> {
  expectDType(op, [x]);
  const ctx = x.engine.ctx;
  const n = x.size;
  const y = output(x, x.shape, op);
  await unary(ctx, { op, x: x.buffer, y: y.buffer, n, alpha });
  const linear = LINEAR_UNARY.has(op);
  recordUnary(op, x, y, linear ? [] : [x], (dy, dx, accumulate) =>
    linear
      ? unary(ctx, { op, x: dy, y: dx, n, alpha, accumulate })
      : unaryBackward(ctx, { op, x: x.buffer, dy, dx, n, alpha, accumulate }),
  );
  return y;
}

export const silu = (x: Tensor): Promise<Tensor> => unaryOp('silu', x);
/** Exact (erf) GELU. */
export const gelu = (x: Tensor): Promise<Tensor> => unaryOp('gelu', x);
/** PyTorch's GELU(approximate='tanh'). */
export const geluTanh = (x: Tensor): Promise<Tensor> => unaryOp('gelu_tanh', x);
export const sigmoid = (x: Tensor): Promise<Tensor> => unaryOp('sigmoid', x);
export const softplus = (x: Tensor): Promise<Tensor> => unaryOp('softplus', x);
export const exp = (x: Tensor): Promise<Tensor> => unaryOp('exp', x);
export const square = (x: Tensor): Promise<Tensor> => unaryOp('square', x);
export const neg = (x: Tensor): Promise<Tensor> => unaryOp('neg', x);
/** alpha · x for a constant alpha. */
export const scale = (x: Tensor, alpha: number): Promise<Tensor> => unaryOp('scale', x, alpha);

/** True when the WGSL gradient expression reads operand `name`. */
function reads(expr: string, name: string): boolean {
  return new RegExp(`\\b${name}\\b`).test(expr);
}

async function binaryOp(op: BinaryOp, a: Tensor, b: Tensor): Promise<Tensor> {
  expectDType(op, [a, b]);
  const ctx = a.engine.ctx;
  const shape = broadcastShapes(a.shape, b.shape);
  const y = output(a, shape, op);
  await binary(ctx, { op, a: a.buffer, b: b.buffer, out: y.buffer, aShape: a.shape, bShape: b.shape });
  const def = BINARY_OPS[op];
  const grads = [def.da, def.db];
  // Save only the operands some wanted gradient reads (mul: b for da, a for db).
  const saved = new Set<Tensor>();
  [a, b].forEach((t, i) => {
    if (!t.requiresGrad) return;
    if (reads(grads[i], 'a')) saved.add(a);
    if (reads(grads[i], 'b')) saved.add(b);
  });
  record({
    name: op,
    inputs: [a, b],
    outputs: [y],
    saved: [...saved],
    backward: async (g) => {
      const dy = g.grad()!;
      // dy passed through unchanged (same shape, gradient `dy`) is moved, after the kernels that still read it.
      const passes: number[] = [];
      for (const [i, t] of [a, b].entries()) {
        if (grads[i] === 'dy' && shapesEqual(t.shape, shape)) {
          passes.push(i);
          continue;
        }
        await g.into(i, (dst, accumulate) =>
          binaryBackward(ctx, {
            op,
            dy: dy.buffer,
            a: reads(grads[i], 'a') ? a.buffer : undefined,
            b: reads(grads[i], 'b') ? b.buffer : undefined,
            da: i === 0 ? dst.buffer : undefined,
            db: i === 1 ? dst.buffer : undefined,
            aShape: a.shape,
            bShape: b.shape,
            accumulate,
          }),
        );
      }
      for (const i of passes) await g.pass(i);
    },
  });
  return y;
}

/** a + b with numpy broadcasting (rank ≤ 4); a broadcast operand's gradient is summed back to its shape. */
export const add = (a: Tensor, b: Tensor): Promise<Tensor> => binaryOp('add', a, b);
export const sub = (a: Tensor, b: Tensor): Promise<Tensor> => binaryOp('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Promise<Tensor> => binaryOp('mul', a, b);

/** GEGLU (diffusers): x [..., 2d] = [hidden | gate] → [..., d] = hidden · gelu(gate). */
export async function geglu(x: Tensor): Promise<Tensor> {
  expectDType('geglu', [x]);
  const last = x.shape[x.rank - 1];
  if (x.rank === 0 || last % 2 !== 0) throw new Error(`geglu: last dim of ${x} must be even`);
  const d = last / 2;
  const rows = x.size / last;
  const ctx = x.engine.ctx;
  const y = output(x, [...x.shape.slice(0, -1), d], 'geglu');
  await gegluKernel(ctx, { x: x.buffer, y: y.buffer, rows, d });
  recordUnary('geglu', x, y, [x], (dy, dx, accumulate) =>
    gegluBackward(ctx, { x: x.buffer, dy, dx, rows, d, accumulate }),
  );
  return y;
}
