// Float64 CPU reference of batched matmul / linear, forward and backward: the oracle for matmul.gpu.test.ts.
import type { MatmulShape } from './matmul';

/** The shape of matmul.ts: op(A) is [m, k], op(B) is [k, n] per batch item. */
export type MatmulRefShape = MatmulShape;

/** Flat index helpers of the stored layouts. */
function layout(s: MatmulRefShape) {
  const { m, n, k } = s;
  return {
    batch: s.batch ?? 1,
    alpha: s.alpha ?? 1,
    a: (z: number, i: number, l: number) => z * m * k + (s.transposeA ? l * m + i : i * k + l),
    b: (z: number, l: number, j: number) =>
      (s.broadcastB ? 0 : z * k * n) + (s.transposeB ? j * k + l : l * n + j),
    c: (z: number, i: number, j: number) => (z * m + i) * n + j,
  };
}

/** out[z, i, j] = α·Σ_l op(A)[z, i, l]·op(B)[z, l, j] + bias[j]. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  s: MatmulRefShape,
  bias?: ArrayLike<number>,
): Float64Array {
  const L = layout(s);
  const out = new Float64Array(L.batch * s.m * s.n);
  for (let z = 0; z < L.batch; z++) {
    for (let i = 0; i < s.m; i++) {
      for (let j = 0; j < s.n; j++) {
        let acc = 0;
        for (let l = 0; l < s.k; l++) acc += a[L.a(z, i, l)] * b[L.b(z, l, j)];
        out[L.c(z, i, j)] = L.alpha * acc + (bias ? bias[j] : 0);
      }
    }
  }
  return out;
}

export interface MatmulRefGrads {
  da: Float64Array;
  db: Float64Array;
  dbias: Float64Array;
}

/** Gradients of matmulRef for output gradient dy, in the stored layouts of A, B (batch-summed if broadcast). */
export function matmulBackwardRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dy: ArrayLike<number>,
  s: MatmulRefShape,
): MatmulRefGrads {
  const L = layout(s);
  const da = new Float64Array(L.batch * s.m * s.k);
  const db = new Float64Array((s.broadcastB ? 1 : L.batch) * s.k * s.n);
  const dbias = new Float64Array(s.n);
  for (let z = 0; z < L.batch; z++) {
    for (let i = 0; i < s.m; i++) {
      for (let j = 0; j < s.n; j++) {
        const g = dy[L.c(z, i, j)];
        dbias[j] += g;
        for (let l = 0; l < s.k; l++) {
          da[L.a(z, i, l)] += L.alpha * g * b[L.b(z, l, j)];
          db[L.b(z, l, j)] += L.alpha * g * a[L.a(z, i, l)];
        }
      }
    }
  }
  return { da, db, dbias };
}

/** y = x·Wᵀ + b with x [rows, in], W [out, in]. */
export function linearRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number> | undefined,
  rows: number,
  inFeatures: number,
  outFeatures: number,
): Float64Array {
  return matmulRef(x, weight, { m: rows, n: outFeatures, k: inFeatures, transposeB: true }, bias);
}

/** dx, dW, db of linearRef. */
export function linearBackwardRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  dy: ArrayLike<number>,
  rows: number,
  inFeatures: number,
  outFeatures: number,
): { dx: Float64Array; dWeight: Float64Array; dBias: Float64Array } {
  const g = matmulBackwardRef(x, weight, dy, { m: rows, n: outFeatures, k: inFeatures, transposeB: true });
  return { dx: g.da, dWeight: g.db, dBias: g.dbias };
}
