// Helpers every op wrapper shares: dtype and shape checks, output allocation.
import type { DType } from '../../tensor/dtype';
import { formatShape, type Shape } from '../../tensor/shape';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';

/** Throws unless every given tensor has `dtype` (default f32: most kernels have only an f32 path). */
export function expectDType(op: string, tensors: (Tensor | undefined)[], dtype: DType = 'f32'): void {
  for (const t of tensors) {
    if (t && t.dtype !== dtype) throw new Error(`${op}: ${t.label} is ${t.dtype}, expected ${dtype}`);
  }
}

/**
 * Whether a product's weight is frozen f16 beside f32 activations (the kernels read it as packed halves).
 * Otherwise the weight must have the activations' dtype. An f16 weight cannot take a gradient here.
 */
export function halfWeight(op: string, x: Tensor, weight: Tensor): boolean {
  if (weight.dtype === x.dtype) return false;
  if (x.dtype !== 'f32' || weight.dtype !== 'f16') {
    throw new Error(`${op}: ${weight.label} is ${weight.dtype}, expected ${x.dtype}`);
  }
  if (weight.requiresGrad) {
    throw new Error(
      `${op}: ${weight.label} is f16 beside f32 activations, which only a frozen weight may be`,
    );
  }
  return true;
}

export function expectRank(op: string, t: Tensor, rank: number): void {
  if (t.rank !== rank)
    throw new Error(`${op}: ${t.label} has shape ${formatShape(t.shape)}, expected rank ${rank}`);
}

export function expectShape(op: string, t: Tensor, shape: Shape): void {
  if (t.rank !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${op}: ${t.label} has shape ${formatShape(t.shape)}, expected ${formatShape(shape)}`);
  }
}

/** An uninitialised output of `shape` on the engine (and with the dtype) of `like`. */
export function output(like: Tensor, shape: Shape, label: string): Tensor {
  return like.engine.empty(shape, { dtype: like.dtype, label });
}

/** Operands of a product (linear, matmul, conv): each is read only by the other's gradient. */
export function productSaved(a: Tensor, b: Tensor): Tensor[] {
  return [...(b.requiresGrad ? [a] : []), ...(a.requiresGrad ? [b] : [])];
}

/** Records a one-input op whose backward is one kernel writing (or adding into) dx from dy. */
export function recordUnary(
  name: string,
  x: Tensor,
  y: Tensor,
  saved: Tensor[],
  grad: (dy: GPUBuffer, dx: GPUBuffer, accumulate: boolean) => Promise<void>,
): void {
  record({
    name,
    inputs: [x],
    outputs: [y],
    saved,
    backward: (g) => g.into(0, (dx, accumulate) => grad(g.grad()!.buffer, dx.buffer, accumulate)),
  });
}
