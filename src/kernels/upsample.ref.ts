// Float64 CPU reference for nearest 2× upsampling (source pixel = floor(output / 2)) and its backward.

export function upsampleNearest2xRef(x: Float64Array, planes: number, h: number, w: number): Float64Array {
  const y = new Float64Array(planes * 4 * h * w);
  for (let p = 0; p < planes; p++) {
    for (let oy = 0; oy < 2 * h; oy++) {
      for (let ox = 0; ox < 2 * w; ox++) {
        y[(p * 2 * h + oy) * 2 * w + ox] = x[(p * h + Math.floor(oy / 2)) * w + Math.floor(ox / 2)];
      }
    }
  }
  return y;
}

export function upsampleNearest2xBackwardRef(
  dy: Float64Array,
  planes: number,
  h: number,
  w: number,
): Float64Array {
  const dx = new Float64Array(planes * h * w);
  for (let p = 0; p < planes; p++) {
    for (let oy = 0; oy < 2 * h; oy++) {
      for (let ox = 0; ox < 2 * w; ox++) {
        dx[(p * h + Math.floor(oy / 2)) * w + Math.floor(ox / 2)] += dy[(p * 2 * h + oy) * 2 * w + ox];
      }
    }
  }
  return dx;
}
