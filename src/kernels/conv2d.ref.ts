// Float64 CPU reference for conv2d (NCHW, weight [Cout, Cin, kh, kw], zero padding): the oracle the
// WGSL implicit-GEMM kernels are tested against. Written as plain loops, no cleverness.
import { conv2dOutputSize, type Conv2dShape } from './conv2d';

/** y[b, co, oy, ox] = bias[co] + Σ_{ci, ky, kx} w[co, ci, ky, kx] · x[b, ci, oy·s − p + ky, ox·s − p + kx]. */
export function conv2dRef(
  x: Float64Array,
  weight: Float64Array,
  bias: Float64Array | undefined,
  s: Conv2dShape,
): Float64Array {
  const ho = conv2dOutputSize(s.h, s.kh, s.stride, s.pad);
  const wo = conv2dOutputSize(s.w, s.kw, s.stride, s.pad);
  const y = new Float64Array(s.batch * s.cout * ho * wo);
  for (let b = 0; b < s.batch; b++)
    for (let co = 0; co < s.cout; co++)
      for (let oy = 0; oy < ho; oy++)
        for (let ox = 0; ox < wo; ox++) {
          let acc = bias ? bias[co] : 0;
          forEachTap(s, oy, ox, (ci, ky, kx, iy, ix) => {
            acc +=
              weight[((co * s.cin + ci) * s.kh + ky) * s.kw + kx] *
              x[((b * s.cin + ci) * s.h + iy) * s.w + ix];
          });
          y[((b * s.cout + co) * ho + oy) * wo + ox] = acc;
        }
  return y;
}

/** Gradients of Σ dy·conv2d(x, w, bias) with respect to x, w and bias. */
export function conv2dBackwardRef(
  dy: Float64Array,
  x: Float64Array,
  weight: Float64Array,
  s: Conv2dShape,
): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const ho = conv2dOutputSize(s.h, s.kh, s.stride, s.pad);
  const wo = conv2dOutputSize(s.w, s.kw, s.stride, s.pad);
  const dx = new Float64Array(x.length);
  const dweight = new Float64Array(weight.length);
  const dbias = new Float64Array(s.cout);
  for (let b = 0; b < s.batch; b++)
    for (let co = 0; co < s.cout; co++)
      for (let oy = 0; oy < ho; oy++)
        for (let ox = 0; ox < wo; ox++) {
          const g = dy[((b * s.cout + co) * ho + oy) * wo + ox];
          dbias[co] += g;
          forEachTap(s, oy, ox, (ci, ky, kx, iy, ix) => {
            const wi = ((co * s.cin + ci) * s.kh + ky) * s.kw + kx;
            const xi = ((b * s.cin + ci) * s.h + iy) * s.w + ix;
            dx[xi] += weight[wi] * g;
            dweight[wi] += x[xi] * g;
          });
        }
  return { dx, dweight, dbias };
}

/** Calls f for every kernel tap of output pixel (oy, ox) that lands inside the (unpadded) input. */
function forEachTap(
  s: Conv2dShape,
  oy: number,
  ox: number,
  f: (ci: number, ky: number, kx: number, iy: number, ix: number) => void,
): void {
  for (let ci = 0; ci < s.cin; ci++)
    for (let ky = 0; ky < s.kh; ky++) {
      const iy = oy * s.stride - s.pad + ky;
      if (iy < 0 || iy >= s.h) continue;
      for (let kx = 0; kx < s.kw; kx++) {
        const ix = ox * s.stride - s.pad + kx;
        if (ix < 0 || ix >= s.w) continue;
        f(ci, ky, kx, iy, ix);
      }
    }
}
