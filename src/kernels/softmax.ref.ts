// Float64 CPU reference for softmax over the last axis and its backward.

export function softmaxRef(x: Float64Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const m = Math.max(...row);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(row[c] - m);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(row[c] - m) / s;
  }
  return y;
}

/** dx = y ⊙ (dy − Σ dy ⊙ y) per row. */
export function softmaxBackwardRef(
  y: Float64Array,
  dy: Float64Array,
  rows: number,
  cols: number,
): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let d = 0;
    for (let c = 0; c < cols; c++) d += dy[r * cols + c] * y[r * cols + c];
    for (let c = 0; c < cols; c++) dx[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - d);
  }
  return dx;
}
