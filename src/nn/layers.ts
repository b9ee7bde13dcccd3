// diffusers building blocks on the autograd engine, addressed by module path in a ParameterStore:
// Linear, Conv2d, GroupNorm, LayerNorm, Attention, FeedForward (GEGLU), BasicTransformerBlock,
// Transformer2DModel, ResnetBlock2D, Downsample2D, Upsample2D. Semantics: tools/reference/ARCHITECTURE.md.
import * as ops from '../autograd/ops';
import type { AttentionPlan, ResnetPlan } from '../models/keys';
import type { Tensor } from '../tensor/tensor';
import type { ConvCall, ParameterStore } from './params';

/** y plus the adapter registered at `path` applied to the layer's input x, if there is one. */
async function withAdapter(
  p: ParameterStore,
  path: string,
  x: Tensor,
  y: Tensor,
  conv?: ConvCall,
): Promise<Tensor> {
  const adapter = p.adapters.get(path);
  if (!adapter) return y;
  return ops.add(y, await adapter.forward(x, conv));
}

/** y = x·Wᵀ + b over the last dim, plus the adapter registered at `path`, if any. */
export async function linear(p: ParameterStore, path: string, x: Tensor): Promise<Tensor> {
  return withAdapter(p, path, x, await ops.linear(x, p.get(`${path}.weight`), p.maybe(`${path}.bias`)));
}

/** Conv2d with "same" padding, plus the adapter registered at `path`, if any (LoCon). */
export async function conv2d(p: ParameterStore, path: string, x: Tensor, stride = 1): Promise<Tensor> {
  const w = p.get(`${path}.weight`);
  const padding = (w.shape[2] - 1) >> 1;
  const y = await ops.conv2d(x, w, p.maybe(`${path}.bias`), { stride, padding });
  return withAdapter(p, path, x, y, { stride, padding });
}

export function groupNorm(
  p: ParameterStore,
  path: string,
  x: Tensor,
  groups: number,
  eps: number,
): Promise<Tensor> {
  return ops.groupNorm(x, p.get(`${path}.weight`), p.get(`${path}.bias`), { groups, eps });
}

export function layerNorm(p: ParameterStore, path: string, x: Tensor, eps = 1e-5): Promise<Tensor> {
  return ops.layerNorm(x, p.get(`${path}.weight`), p.get(`${path}.bias`), { eps });
}

/** attn1 (self, ctx = x) or attn2 (cross, ctx = encoder hidden states): [B, S, C] → [B, S, C]. */
export async function attention(
  p: ParameterStore,
  path: string,
  x: Tensor,
  ctx: Tensor,
  heads: number,
): Promise<Tensor> {
  const q = await ops.splitHeads(await linear(p, `${path}.to_q`, x), heads);
  const k = await ops.splitHeads(await linear(p, `${path}.to_k`, ctx), heads);
  const v = await ops.splitHeads(await linear(p, `${path}.to_v`, ctx), heads);
  const o = await ops.mergeHeads(await ops.attention(q, k, v));
  return linear(p, `${path}.to_out.0`, o);
}

export async function feedForward(p: ParameterStore, path: string, x: Tensor): Promise<Tensor> {
  const h = await ops.geglu(await linear(p, `${path}.net.0.proj`, x));
  return linear(p, `${path}.net.2`, h);
}

/** norm → self-attention → norm → cross-attention → norm → GEGLU feed-forward, each with a residual. */
export async function basicTransformerBlock(
  p: ParameterStore,
  path: string,
  x: Tensor,
  ehs: Tensor,
  heads: number,
): Promise<Tensor> {
  const n1 = await layerNorm(p, `${path}.norm1`, x);
  x = await ops.add(await attention(p, `${path}.attn1`, n1, n1, heads), x);
  const n2 = await layerNorm(p, `${path}.norm2`, x);
  x = await ops.add(await attention(p, `${path}.attn2`, n2, ehs, heads), x);
  const n3 = await layerNorm(p, `${path}.norm3`, x);
  return ops.add(await feedForward(p, `${path}.ff`, n3), x);
}

/** Spatial transformer: GroupNorm(eps 1e-6) → proj_in → tokens → blocks → NCHW → proj_out, plus residual. */
export async function transformer2d(
  p: ParameterStore,
  path: string,
  x: Tensor,
  ehs: Tensor,
  plan: AttentionPlan,
  groups: number,
  useLinearProjection: boolean,
): Promise<Tensor> {
  const [b, c, h, w] = x.shape;
  let y = await groupNorm(p, `${path}.norm`, x, groups, 1e-6);
  let tokens: Tensor;
  if (useLinearProjection) {
    tokens = await linear(p, `${path}.proj_in`, await ops.transposeLast2(ops.reshape(y, [b, c, h * w])));
  } else {
    y = await conv2d(p, `${path}.proj_in`, y);
    tokens = await ops.transposeLast2(ops.reshape(y, [b, c, h * w]));
  }
  for (let i = 0; i < plan.depth; i++) {
    tokens = await basicTransformerBlock(p, `${path}.transformer_blocks.${i}`, tokens, ehs, plan.heads);
  }
  if (useLinearProjection) {
    tokens = await linear(p, `${path}.proj_out`, tokens);
    y = ops.reshape(await ops.transposeLast2(tokens), [b, c, h, w]);
  } else {
    y = await conv2d(p, `${path}.proj_out`, ops.reshape(await ops.transposeLast2(tokens), [b, c, h, w]));
  }
  return ops.add(y, x);
}

/** ResnetBlock2D: GN → SiLU → conv1 (+ time projection) → GN → SiLU → conv2, plus (projected) input. */
export async function resnetBlock(
  p: ParameterStore,
  path: string,
  x: Tensor,
  tembAct: Tensor,
  plan: ResnetPlan,
  groups: number,
  eps: number,
): Promise<Tensor> {
  let h = await ops.silu(await groupNorm(p, `${path}.norm1`, x, groups, eps));
  h = await conv2d(p, `${path}.conv1`, h);
  const t = await linear(p, `${path}.time_emb_proj`, tembAct);
  h = await ops.add(h, ops.reshape(t, [t.shape[0], plan.outChannels, 1, 1]));
  h = await ops.silu(await groupNorm(p, `${path}.norm2`, h, groups, eps));
  h = await conv2d(p, `${path}.conv2`, h);
  const shortcut = plan.inChannels !== plan.outChannels ? await conv2d(p, `${path}.conv_shortcut`, x) : x;
  return ops.add(shortcut, h);
}
