// float64 reference for the batched transpose.
export function transposeRef(x: ArrayLike<number>, batch: number, rows: number, cols: number): Float64Array {
  const y = new Float64Array(batch * rows * cols);
  for (let b = 0; b < batch; b++)
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) y[b * rows * cols + c * rows + r] = x[b * rows * cols + r * cols + c];
  return y;
}
