// Test support for kernels: one tolerance table, seeded random data, NaN canaries around outputs and
// poisoned outputs, and the closeness check `|gpu − ref| ≤ atol + rtol·|ref|`.
import { readF32, storageBuffer, type KernelContext } from './common';

export type DType = 'f32' | 'f16';
export interface Tolerance {
  atol: number;
  rtol: number;
}

/** Per-op tolerances, f32 and f16 columns. Ops not listed use `default`. */
export const TOLERANCES: Record<string, Record<DType, Tolerance>> = {
  default: { f32: { atol: 1e-5, rtol: 1e-4 }, f16: { atol: 2e-3, rtol: 1e-2 } },
  elementwise: { f32: { atol: 1e-6, rtol: 1e-5 }, f16: { atol: 1e-3, rtol: 5e-3 } },
  matmul: { f32: { atol: 1e-4, rtol: 1e-4 }, f16: { atol: 5e-3, rtol: 2e-2 } },
  conv2d: { f32: { atol: 1e-4, rtol: 1e-4 }, f16: { atol: 5e-3, rtol: 2e-2 } },
  norm: { f32: { atol: 1e-4, rtol: 1e-4 }, f16: { atol: 5e-3, rtol: 2e-2 } },
  softmax: { f32: { atol: 1e-6, rtol: 1e-4 }, f16: { atol: 1e-3, rtol: 1e-2 } },
  attention: { f32: { atol: 1e-4, rtol: 1e-3 }, f16: { atol: 5e-3, rtol: 2e-2 } },
  reduction: { f32: { atol: 1e-4, rtol: 1e-4 }, f16: { atol: 5e-3, rtol: 1e-2 } },
  adamw: { f32: { atol: 1e-6, rtol: 1e-5 }, f16: { atol: 1e-3, rtol: 1e-2 } },
};

export function tolerance(op: string, dtype: DType = 'f32'): Tolerance {
  return (TOLERANCES[op] ?? TOLERANCES.default)[dtype];
}

/** mulberry32: small, seeded, reproducible across runs and machines. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box–Muller) as f32. */
export function randn(rand: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** Random integer in [lo, hi]. */
export function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

export interface CloseReport {
  ok: boolean;
  worstIndex: number;
  worstExcess: number;
  maxAbsErr: number;
  nanCount: number;
}

export function compareClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tolerance): CloseReport {
  if (got.length !== want.length) throw new Error(`length mismatch: got ${got.length}, want ${want.length}`);
  let worstIndex = -1;
  let worstExcess = 0;
  let maxAbsErr = 0;
  let nanCount = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(g) !== Number.isNaN(w)) {
      nanCount++;
      if (worstIndex < 0 || worstExcess !== Infinity) {
        worstIndex = i;
        worstExcess = Infinity;
      }
      continue;
    }
    const err = Math.abs(g - w);
    maxAbsErr = Math.max(maxAbsErr, err);
    const excess = err - (tol.atol + tol.rtol * Math.abs(w));
    if (excess > worstExcess) {
      worstExcess = excess;
      worstIndex = i;
    }
  }
  return { ok: worstExcess <= 0 && nanCount === 0, worstIndex, worstExcess, maxAbsErr, nanCount };
}

/** Throws with the worst element when `got` is not within tolerance of `want`. */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
  what: string,
): void {
  const r = compareClose(got, want, tol);
  if (!r.ok) {
    const i = r.worstIndex;
    throw new Error(
      `${what}: ${r.nanCount} NaN mismatches, max |err| ${r.maxAbsErr.toExponential(3)}; ` +
        `worst at [${i}]: got ${got[i]}, want ${want[i]} (atol ${tol.atol}, rtol ${tol.rtol})`,
    );
  }
}

/** The smallest normal f32; nonzero values below it in magnitude are subnormal. */
const F32_MIN_NORMAL = 2 ** -126;

/** Positions of subnormal floats in `a` (CPU adapters compute them slowly; kernels flush underflow to zero). */
export function subnormalIndices(a: Float32Array): number[] {
  const out: number[] = [];
  a.forEach((v, i) => {
    if (v !== 0 && Math.abs(v) < F32_MIN_NORMAL) out.push(i);
  });
  return out;
}

/** A quiet NaN with a payload we can recognise: untouched canaries keep exactly these bits. */
export const CANARY_BITS = 0x7fc0dead;
/** Elements of canary after each output in tests. */
export const CANARY_PAD = 64;

/**
 * An output buffer of n elements followed by CANARY_PAD canary elements, all poisoned with the canary
 * NaN: unwritten outputs read back as NaN, and writes past the end overwrite a canary.
 */
export function canaryBuffer(ctx: KernelContext, label: string, n: number): GPUBuffer {
  const buf = storageBuffer(ctx, label, (n + CANARY_PAD) * 4);
  ctx.device.queue.writeBuffer(buf, 0, new Uint32Array(n + CANARY_PAD).fill(CANARY_BITS));
  return buf;
}

export class CanaryError extends Error {}

/** Reads the n outputs of a canary buffer; throws CanaryError if any trailing canary was overwritten. */
export async function readCanaried(ctx: KernelContext, buf: GPUBuffer, n: number): Promise<Float32Array> {
  const all = await readF32(ctx, buf, n + CANARY_PAD);
  const bits = new Uint32Array(all.buffer);
  for (let i = n; i < n + CANARY_PAD; i++) {
    if (bits[i] !== CANARY_BITS) {
      throw new CanaryError(
        `${buf.label}: out-of-bounds write at element ${i} (output has ${n}); found ${all[i]}`,
      );
    }
  }
  return all.slice(0, n);
}

/** Central finite differences of a scalar function of x, in float64. */
export function finiteDifference(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    x[i] = xi + eps;
    const fp = f(x);
    x[i] = xi - eps;
    const fm = f(x);
    x[i] = xi;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}

/** A canary buffer whose first init.length elements hold `init`: the prior contents for accumulate tests. */
export function canaryBufferWith(ctx: KernelContext, label: string, init: Float32Array): GPUBuffer {
  const buf = canaryBuffer(ctx, label, init.length);
  ctx.device.queue.writeBuffer(buf, 0, init.buffer as ArrayBuffer, init.byteOffset, init.byteLength);
  return buf;
}

/**
 * The same device with maxComputeWorkgroupsPerDimension lowered to `max`, so that small dispatches fold
 * into y and z (dispatchFor) and a kernel's flat-index recovery is checked without gigabyte buffers.
 */
export function foldingContext(ctx: KernelContext, max = 16): KernelContext {
  const limits = { ...ctx.gpu.limits, maxComputeWorkgroupsPerDimension: max };
  return { ...ctx, gpu: { ...ctx.gpu, limits }, encoder: undefined };
}
