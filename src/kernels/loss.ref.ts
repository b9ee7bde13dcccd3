// Float64 CPU reference for the MSE loss and its gradients.

export function mseLossRef(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

/** Gradients of dLoss · mean((a − b)²). */
export function mseLossBackwardRef(
  a: Float64Array,
  b: Float64Array,
  dLoss: number,
): { da: Float64Array; db: Float64Array } {
  const da = a.map((v, i) => (dLoss * 2 * (v - b[i])) / a.length);
  return { da, db: da.map((v) => -v) };
}
