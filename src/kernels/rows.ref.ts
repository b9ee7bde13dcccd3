// Float64 CPU reference for row gather/scatter and block copies.

export function gatherRowsRef(src: Float64Array, index: Uint32Array, cols: number): Float64Array {
  const srcRows = src.length / cols;
  const dst = new Float64Array(index.length * cols);
  index.forEach((row, i) => {
    if (row < srcRows) dst.set(src.subarray(row * cols, (row + 1) * cols), i * cols);
  });
  return dst;
}

/** dst with src's rows written (or added) at their indices; indices past dst are skipped. */
export function scatterRowsRef(
  src: Float64Array,
  index: Uint32Array,
  dst: Float64Array,
  cols: number,
  add: boolean,
): Float64Array {
  const out = dst.slice();
  const dstRows = dst.length / cols;
  index.forEach((row, i) => {
    if (row >= dstRows) return;
    for (let c = 0; c < cols; c++) out[row * cols + c] = (add ? out[row * cols + c] : 0) + src[i * cols + c];
  });
  return out;
}

/** dst with the block copied (or added) in, positions given as [row, col]. */
export function copyBlockRef(
  src: Float64Array,
  srcCols: number,
  srcAt: readonly number[],
  dst: Float64Array,
  dstCols: number,
  dstAt: readonly number[],
  block: readonly number[],
  accumulate: boolean,
): Float64Array {
  const out = dst.slice();
  for (let r = 0; r < block[0]; r++) {
    for (let c = 0; c < block[1]; c++) {
      const at = (dstAt[0] + r) * dstCols + dstAt[1] + c;
      out[at] = (accumulate ? out[at] : 0) + src[(srcAt[0] + r) * srcCols + srcAt[1] + c];
    }
  }
  return out;
}
