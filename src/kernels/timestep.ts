// Sinusoidal timestep embedding as diffusers' get_timestep_embedding (defaults as SD's UNet2DConditionModel:
// flip_sin_to_cos=True, downscale_freq_shift=0). Forward only: timesteps are not differentiated.
import { getPipeline, launch, uniformBuffer, type KernelContext } from './common';
import { flatDispatch, wgslFlatMain } from './elementwise';

export interface TimestepEmbeddingOptions {
  /** Output [cos | sin] instead of [sin | cos]. */
  flipSinToCos?: boolean;
  downscaleFreqShift?: number;
  scale?: number;
  maxPeriod?: number;
}

export const TIMESTEP_DEFAULTS = {
  flipSinToCos: true,
  downscaleFreqShift: 0,
  scale: 1,
  maxPeriod: 10000,
} as const;

/**
 * The dim/2 frequencies exp(−ln(maxPeriod)·j / (half − shift)) rounded the way diffusers' float32 torch
 * code rounds them (each step in f32; only exp's last bit may differ), so embeddings match its numbers.
 */
export function timestepFrequencies(
  dim: number,
  downscaleFreqShift: number,
  maxPeriod: number,
): Float32Array {
  const half = Math.floor(dim / 2);
  const logP = Math.fround(-Math.log(maxPeriod));
  return Float32Array.from({ length: half }, (_, j) =>
    Math.exp(Math.fround(Math.fround(logP * j) / Math.fround(half - downscaleFreqShift))),
  );
}

/**
 * sin and cos of an f32 argument to ~1e-7 for |x| < 1e4 (WGSL's builtins only promise 2⁻¹¹ absolute on
 * [−π, π], and timestep arguments reach 1000): Cody–Waite reduction by π/2 with a three-part constant whose
 * first part has 8 significant bits (so q·part is exact), then Cephes' minimax polynomials on [−π/4, π/4].
 */
const WGSL_SINCOS = /* wgsl */ `
fn sincos_f(x: f32) -> vec2<f32> {
  let q = round(x * 0.63661977236758134);
  let r = ((x - q * 1.5703125) - q * 4.837512969970703125e-4) - q * 7.54978995489188216e-8;
  let z = r * r;
  let s = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
  let c = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
  switch (i32(q) & 3) {
    case 1: { return vec2<f32>(c, -s); }
    case 2: { return vec2<f32>(-s, -c); }
    case 3: { return vec2<f32>(-c, s); }
    default: { return vec2<f32>(s, c); }
  }
}`;

function shader(vec4s: number): string {
  return /* wgsl */ `
struct Params { n: u32, dim: u32, half: u32, flip: u32, scale: f32, freqs: array<vec4<f32>, ${vec4s}> }
@group(0) @binding(0) var<storage, read> timesteps: array<f32>;
@group(0) @binding(1) var<storage, read_write> emb: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${WGSL_SINCOS}
${wgslFlatMain(`let j = i % params.dim;
  if (j >= 2u * params.half) {
    emb[i] = 0.0; // odd dim: zero pad column
    return;
  }
  let second = j >= params.half;
  let k = select(j, j - params.half, second);
  let arg = params.scale * (timesteps[i / params.dim] * params.freqs[k / 4u][k % 4u]);
  let sc = sincos_f(arg);
  // Unflipped: [sin | cos]; flipped: [cos | sin].
  emb[i] = select(sc.x, sc.y, second != (params.flip != 0u));`)}`;
}

/** emb [batch, dim] from timesteps [batch] (f32, may be fractional). */
export async function timestepEmbedding(
  ctx: KernelContext,
  args: TimestepEmbeddingOptions & { timesteps: GPUBuffer; out: GPUBuffer; batch: number; dim: number },
): Promise<void> {
  const o = { ...TIMESTEP_DEFAULTS, ...args };
  const n = args.batch * args.dim;
  if (n === 0) return;
  const freqs = timestepFrequencies(args.dim, o.downscaleFreqShift, o.maxPeriod);
  if (freqs.length > 0 && freqs.length - o.downscaleFreqShift <= 0) {
    throw new Error(
      `timestepEmbedding: dim ${args.dim} with shift ${o.downscaleFreqShift} makes half − shift ≤ 0`,
    );
  }
  const vec4s = Math.max(1, Math.ceil(freqs.length / 4));
  const pipeline = await getPipeline(ctx, 'timestepEmbedding', shader(vec4s));
  // Header (n, dim, half, flip, scale, 3 pad words to the array's 16-byte alignment), then the table.
  const header = [n, args.dim, freqs.length, o.flipSinToCos ? 1 : 0, o.scale, 0, 0, 0];
  const table = Array.from({ length: vec4s * 4 }, (_, j) => freqs[j] ?? 0);
  const floats = new Set([4, ...table.map((_, j) => header.length + j)]);
  const params = uniformBuffer(ctx, 'timestepEmbedding', [...header, ...table], floats);
  const buffers = [args.timesteps, args.out, params];
  launch(ctx, { label: 'timestepEmbedding', pipeline, buffers, workgroups: flatDispatch(ctx, n) }, [params]);
}
