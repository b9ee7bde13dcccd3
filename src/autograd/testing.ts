// Test support for autograd: finite-difference gradients of a float64 loss over several parameter arrays,
// and uploading the same values as engine tensors.
import { finiteDifference } from '../kernels/testing';
import type { Engine } from '../tensor/engine';
import type { Tensor } from '../tensor/tensor';

/** Central differences of loss(params) with respect to each parameter array (float64, in place). */
export function finiteDifferenceGrads(
  loss: (params: Float64Array[]) => number,
  params: Float64Array[],
  eps = 1e-6,
): Float64Array[] {
  return params.map((p) => finiteDifference(() => loss(params), p, eps));
}

/** A leaf tensor holding `values` (as f32). */
export function leaf(
  engine: Engine,
  values: ArrayLike<number>,
  shape: number[],
  label: string,
  requiresGrad = true,
): Tensor {
  return engine.fromArray(Float32Array.from(values), shape, { label, requiresGrad });
}

/** Largest |a − b| relative to the largest |b| (a scale-free error for gradient comparisons). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let err = 0;
  let scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

/** The labels of every dispatch fn records (launch() labels each bind group with its op). */
export async function dispatchLabels(engine: Engine, fn: () => Promise<void>): Promise<string[]> {
  const labels: string[] = [];
  const device = engine.device;
  const original = device.createBindGroup;
  device.createBindGroup = (d: GPUBindGroupDescriptor) => {
    labels.push(d.label ?? '');
    return original.call(device, d);
  };
  try {
    await fn();
  } finally {
    device.createBindGroup = original;
  }
  return labels;
}
