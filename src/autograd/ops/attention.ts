// Attention ops with autograd: memory-efficient scaled-dot-product attention on head-major [B, H, N, d]
// tensors (the logsumexp is the only thing kept besides q, k, v and the output), and the head split/merge.
import {
  attentionBackward,
  attentionForward,
  mergeHeads as mergeHeadsKernel,
  splitHeads as splitHeadsKernel,
  type AttentionShape,
} from '../../kernels/attention';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';
import { expectDType, expectRank, expectShape, output, recordUnary } from './util';

export interface AttentionOptions {
  /** Multiplies q·kᵀ; default 1/sqrt(d). */
  scale?: number;
}

/** softmax(scale · q kᵀ) v for q [B, H, Nq, d], k and v [B, H, Nk, d]. */
export async function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Promise<Tensor> {
  const dtype = q.dtype;
  expectDType('attention', [q, k, v], dtype);
  expectRank('attention', q, 4);
  expectRank('attention', k, 4);
  const [batch, heads, queryLen, headDim] = q.shape;
  const keyLen = k.shape[2];
  expectShape('attention', k, [batch, heads, keyLen, headDim]);
  expectShape('attention', v, [batch, heads, keyLen, headDim]);
  const s: AttentionShape = { batch, heads, queryLen, keyLen, headDim, scale: opts.scale, dtype };
  const e = q.engine;
  const out = output(q, q.shape, 'attention');
  const lse = e.empty([batch, heads, queryLen], { label: 'attention.lse' });
  const buffers = () => ({ ...s, q: q.buffer, k: k.buffer, v: v.buffer, out: out.buffer, lse: lse.buffer });
  await attentionForward(e.ctx, buffers());
  record({
    name: 'attention',
    inputs: [q, k, v],
    outputs: [out],
    saved: [q, k, v, out, lse],
    backward: async (g) => {
      const delta = g.temp(e.empty([batch, heads, queryLen], { label: 'attention.delta' }));
      // The kernel writes dq, dk and dv together under one accumulate flag.
      await g.jointly([0, 1, 2], (dst, accumulate) =>
        attentionBackward(e.ctx, {
          ...buffers(),
          dOut: g.grad()!.buffer,
          delta: delta.buffer,
          dq: dst[0].buffer,
          dk: dst[1].buffer,
          dv: dst[2].buffer,
          accumulate,
        }),
      );
    },
  });
  lse.release();
  return out;
}

/** [B, N, H·d] → [B, H, N, d]. */
export async function splitHeads(x: Tensor, heads: number): Promise<Tensor> {
  expectRank('splitHeads', x, 3);
  const [batch, tokens, width] = x.shape;
  if (width % heads !== 0) throw new Error(`splitHeads: ${x} does not split into ${heads} heads`);
  const headDim = width / heads;
  return permute(x, 'splitHeads', [batch, heads, tokens, headDim], { batch, tokens, heads, headDim });
}

/** [B, H, N, d] → [B, N, H·d]. */
export async function mergeHeads(x: Tensor): Promise<Tensor> {
  expectRank('mergeHeads', x, 4);
  const [batch, heads, tokens, headDim] = x.shape;
  return permute(x, 'mergeHeads', [batch, tokens, heads * headDim], { batch, tokens, heads, headDim });
}

async function permute(
  x: Tensor,
  op: 'splitHeads' | 'mergeHeads',
  shape: number[],
  dims: { batch: number; tokens: number; heads: number; headDim: number },
): Promise<Tensor> {
  const ctx = x.engine.ctx;
  const dtype = x.dtype;
  const [fwd, bwd] =
    op === 'splitHeads' ? [splitHeadsKernel, mergeHeadsKernel] : [mergeHeadsKernel, splitHeadsKernel];
  const y = output(x, shape, op);
  await fwd(ctx, { ...dims, dtype, input: x.buffer, output: y.buffer });
  recordUnary(op, x, y, [], (input, output, accumulate) =>
    bwd(ctx, { ...dims, dtype, input, output, accumulate }),
  );
  return y;
}
