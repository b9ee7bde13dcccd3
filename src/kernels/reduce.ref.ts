// Float64 CPU reference for the reductions and for numpy broadcasting, written from coordinates (not the
// kernels' stride tricks) so that it checks them independently.

/** Right-aligns `shape` to `rank` dims with leading 1s. */
function align(shape: readonly number[], rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

/** For every flat index of `full`, the flat index of the same element in an operand of `shape` broadcast to it. */
export function broadcastIndexMap(shape: readonly number[], full: readonly number[]): Int32Array {
  const rank = full.length;
  const s = align(shape, rank);
  s.forEach((d, i) => {
    if (d !== 1 && d !== full[i]) throw new Error(`[${shape}] does not broadcast to [${full}]`);
  });
  // Row-major steps of the operand; a broadcast dim does not move through it.
  const step = new Array<number>(rank).fill(0);
  for (let d = rank - 1, acc = 1; d >= 0; acc *= s[d], d--) step[d] = s[d] === 1 ? 0 : acc;
  const total = full.reduce((a, b) => a * b, 1);
  const map = new Int32Array(total);
  const c = new Array<number>(rank).fill(0);
  let index = 0;
  for (let i = 0; i < total; i++) {
    map[i] = index;
    // Odometer: advance the last coordinate, carrying into the earlier ones.
    for (let d = rank - 1; d >= 0; d--) {
      c[d]++;
      index += step[d];
      if (c[d] < full[d]) break;
      index -= c[d] * step[d];
      c[d] = 0;
    }
  }
  return map;
}

/** Sum of x (shape `shape`) over the dims where the keepdims `outShape` is 1, times scale. */
export function sumToShapeRef(
  x: Float64Array,
  shape: readonly number[],
  outShape: readonly number[],
  scale = 1,
): Float64Array {
  const map = broadcastIndexMap(outShape, shape);
  const out = new Float64Array(outShape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < x.length; i++) out[map[i]] += x[i];
  for (let i = 0; i < out.length; i++) out[i] *= scale;
  return out;
}

/** dx = scale · dOut broadcast to `shape`. */
export function sumToShapeBackwardRef(
  dOut: Float64Array,
  shape: readonly number[],
  outShape: readonly number[],
  scale = 1,
): Float64Array {
  const map = broadcastIndexMap(outShape, shape);
  return Float64Array.from(map, (j) => scale * dOut[j]);
}
