// Sinusoidal timestep embedding on the GPU (diffusers' get_timestep_embedding). Timesteps are data, not
// parameters: nothing is recorded and the result never requires grad.
import { timestepEmbedding as timestepKernel, type TimestepEmbeddingOptions } from '../../kernels/timestep';
import type { Tensor } from '../../tensor/tensor';
import { expectDType, expectRank, output } from './util';

/** timesteps [B] (f32) → [B, dim]. */
export async function timestepEmbedding(
  timesteps: Tensor,
  dim: number,
  opts: TimestepEmbeddingOptions = {},
): Promise<Tensor> {
  expectDType('timestepEmbedding', [timesteps]);
  expectRank('timestepEmbedding', timesteps, 1);
  const batch = timesteps.shape[0];
  const y = output(timesteps, [batch, dim], 'timestepEmbedding');
  await timestepKernel(timesteps.engine.ctx, {
    ...opts,
    timesteps: timesteps.buffer,
    out: y.buffer,
    batch,
    dim,
  });
  return y;
}
