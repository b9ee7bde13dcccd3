// Float64 CPU reference for the timestep embedding. Like diffusers' float32 torch code it rounds the
// frequencies and the argument t·f to f32 (sin/cos of those exact f32 arguments are then taken in f64);
// timestepEmbeddingExact is the unrounded math, to bound what the rounding costs.
import { TIMESTEP_DEFAULTS, timestepFrequencies, type TimestepEmbeddingOptions } from './timestep';

function embed(
  timesteps: ArrayLike<number>,
  dim: number,
  opts: TimestepEmbeddingOptions,
  argument: (t: number, j: number, half: number) => number,
): Float64Array {
  const o = { ...TIMESTEP_DEFAULTS, ...opts };
  const half = Math.floor(dim / 2);
  const out = new Float64Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    for (let j = 0; j < half; j++) {
      const a = argument(timesteps[b], j, half);
      const [first, second] = o.flipSinToCos ? [Math.cos(a), Math.sin(a)] : [Math.sin(a), Math.cos(a)];
      out[b * dim + j] = first;
      out[b * dim + half + j] = second;
    }
  }
  return out;
}

export function timestepEmbeddingRef(
  timesteps: ArrayLike<number>,
  dim: number,
  opts: TimestepEmbeddingOptions = {},
): Float64Array {
  const o = { ...TIMESTEP_DEFAULTS, ...opts };
  const freqs = timestepFrequencies(dim, o.downscaleFreqShift, o.maxPeriod);
  return embed(timesteps, dim, o, (t, j) => Math.fround(o.scale * Math.fround(Math.fround(t) * freqs[j])));
}

export function timestepEmbeddingExact(
  timesteps: ArrayLike<number>,
  dim: number,
  opts: TimestepEmbeddingOptions = {},
): Float64Array {
  const o = { ...TIMESTEP_DEFAULTS, ...opts };
  return embed(
    timesteps,
    dim,
    o,
    (t, j, half) => o.scale * t * Math.exp((-Math.log(o.maxPeriod) * j) / (half - o.downscaleFreqShift)),
  );
}
