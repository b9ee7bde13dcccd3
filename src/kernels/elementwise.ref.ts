// Float64 CPU reference for the elementwise ops (unary table, broadcasting binary ops, GEGLU), with an erf
// accurate to ~1e-15 so the GPU's f32 GELU is judged against the true function.
import type { BinaryOp, UnaryOp } from './elementwise';
import { broadcastIndexMap } from './reduce.ref';

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erfc for x ≥ 2.5 by its continued fraction (converges fast there and keeps relative accuracy). */
function erfcLarge(x: number): number {
  let f = 0;
  for (let k = 80; k >= 1; k--) f = k / 2 / (x + f);
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / (x + f);
}

/** erf for |x| < 2.5 by the all-positive series erf x = 2/√π e^{-x²} Σ (2x²)^k x / (2k+1)!!. */
function erfSmall(x: number): number {
  let term = x;
  let sum = x;
  for (let k = 1; k < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); k++) {
    term *= (2 * x * x) / (2 * k + 1);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x * x) * sum;
}

export function erf(x: number): number {
  if (Math.abs(x) < 2.5) return erfSmall(x);
  return Math.sign(x) * (1 - erfcLarge(Math.abs(x)));
}

export function erfc(x: number): number {
  if (x >= 2.5) return erfcLarge(x);
  if (x <= -2.5) return 2 - erfcLarge(-x);
  return 1 - erfSmall(x);
}

export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

const K_TANH = Math.sqrt(2 / Math.PI);

interface UnaryRef {
  forward(x: number, alpha: number): number;
  backward(x: number, dy: number, alpha: number): number;
}

export const UNARY_REF: Record<UnaryOp, UnaryRef> = {
  silu: { forward: (x) => x * sigmoid(x), backward: (x, dy) => dy * sigmoid(x) * (1 + x * (1 - sigmoid(x))) },
  gelu: {
    forward: (x) => x * normalCdf(x),
    backward: (x, dy) => dy * (normalCdf(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI)),
  },
  gelu_tanh: {
    forward: (x) => 0.5 * x * (1 + Math.tanh(K_TANH * (x + 0.044715 * x ** 3))),
    backward: (x, dy) => {
      const t = Math.tanh(K_TANH * (x + 0.044715 * x ** 3));
      return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K_TANH * (1 + 3 * 0.044715 * x * x));
    },
  },
  neg: { forward: (x) => -x, backward: (_x, dy) => -dy },
  exp: { forward: (x) => Math.exp(x), backward: (x, dy) => dy * Math.exp(x) },
  square: { forward: (x) => x * x, backward: (x, dy) => 2 * x * dy },
  scale: { forward: (x, a) => a * x, backward: (_x, dy, a) => a * dy },
  sigmoid: { forward: sigmoid, backward: (x, dy) => dy * sigmoid(x) * (1 - sigmoid(x)) },
  softplus: {
    forward: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
    backward: (x, dy) => dy * sigmoid(x),
  },
};

export function unaryRef(op: UnaryOp, x: Float64Array, alpha = 0): Float64Array {
  return x.map((v) => UNARY_REF[op].forward(v, alpha));
}

export function unaryBackwardRef(op: UnaryOp, x: Float64Array, dy: Float64Array, alpha = 0): Float64Array {
  return x.map((v, i) => UNARY_REF[op].backward(v, dy[i], alpha));
}

const BINARY_REF: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
};

/** The numpy broadcast of two shapes (independent of the kernel's helper). */
export function broadcastShapeRef(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const pa = [...new Array<number>(rank - a.length).fill(1), ...a];
  const pb = [...new Array<number>(rank - b.length).fill(1), ...b];
  return pa.map((d, i) => Math.max(d, pb[i]));
}

export function binaryRef(
  op: BinaryOp,
  a: Float64Array,
  aShape: readonly number[],
  b: Float64Array,
  bShape: readonly number[],
): Float64Array {
  const shape = broadcastShapeRef(aShape, bShape);
  const ia = broadcastIndexMap(aShape, shape);
  const ib = broadcastIndexMap(bShape, shape);
  return Float64Array.from(ia, (j, i) => BINARY_REF[op](a[j], b[ib[i]]));
}

/** Gradients of Σ dy ⊙ (a ⊕ b) wrt a and b, summed over broadcast dims. */
export function binaryBackwardRef(
  op: BinaryOp,
  a: Float64Array,
  aShape: readonly number[],
  b: Float64Array,
  bShape: readonly number[],
  dy: Float64Array,
): { da: Float64Array; db: Float64Array } {
  const shape = broadcastShapeRef(aShape, bShape);
  const ia = broadcastIndexMap(aShape, shape);
  const ib = broadcastIndexMap(bShape, shape);
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  for (let i = 0; i < dy.length; i++) {
    const [ga, gb] = op === 'add' ? [1, 1] : op === 'sub' ? [1, -1] : [b[ib[i]], a[ia[i]]];
    da[ia[i]] += dy[i] * ga;
    db[ib[i]] += dy[i] * gb;
  }
  return { da, db };
}

/** y[r, j] = x[r, j] · gelu(x[r, d + j]) for x [rows, 2d]. */
export function gegluRef(x: Float64Array, rows: number, d: number): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++)
      y[r * d + j] = x[r * 2 * d + j] * UNARY_REF.gelu.forward(x[r * 2 * d + d + j], 0);
  }
  return y;
}

export function gegluBackwardRef(x: Float64Array, dy: Float64Array, rows: number, d: number): Float64Array {
  const dx = new Float64Array(rows * 2 * d);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++) {
      const h = x[r * 2 * d + j];
      const g = x[r * 2 * d + d + j];
      const gy = dy[r * d + j];
      dx[r * 2 * d + j] = gy * UNARY_REF.gelu.forward(g, 0);
      dx[r * 2 * d + d + j] = UNARY_REF.gelu.backward(g, gy * h, 0);
    }
  }
  return dx;
}
