// The UNet's structure as a config implies it: the block plan (channels of every resnet, attention widths,
// skip concatenations) and from it every diffusers parameter name and shape; matchWeights checks a
// safetensors header against that inventory and reports what is missing, unexpected or mis-shaped.
import type { UNetConfig } from './config';

export interface ResnetPlan {
  inChannels: number;
  outChannels: number;
}

export interface AttentionPlan {
  channels: number;
  heads: number;
  headDim: number;
  /** BasicTransformerBlocks in this Transformer2DModel. */
  depth: number;
  crossAttentionDim: number;
}

export interface BlockPlan {
  /** diffusers module path: `down_blocks.0`, `mid_block`, `up_blocks.3`. */
  path: string;
  resnets: ResnetPlan[];
  /** One per resnet in down/up blocks (after it); one per resnet after the first in the mid block. */
  attentions: AttentionPlan[];
  downsample: boolean;
  upsample: boolean;
}

export interface UNetPlan {
  down: BlockPlan[];
  mid: BlockPlan | null;
  up: BlockPlan[];
  /** For each up block resnet, the channels of the skip it concatenates (diffusers' res_skip_channels). */
  upSkipChannels: number[][];
}

/** The module plan diffusers builds from this config (unet_2d_condition.py / unet_2d_blocks.py). */
export function unetPlan(config: UNetConfig): UNetPlan {
  const ch = config.blockOutChannels;
  const n = ch.length;
  const attention = (level: number): AttentionPlan => ({
    channels: ch[level],
    heads: config.numAttentionHeads[level],
    headDim: config.headDim[level],
    depth: config.transformerLayersPerBlock[level],
    crossAttentionDim: config.crossAttentionDim[level],
  });

  const down: BlockPlan[] = [];
  let prev = ch[0];
  for (let i = 0; i < n; i++) {
    const resnets = Array.from({ length: config.layersPerBlock[i] }, (_, j) => ({
      inChannels: j === 0 ? prev : ch[i],
      outChannels: ch[i],
    }));
    const cross = config.downBlockTypes[i] === 'CrossAttnDownBlock2D';
    down.push({
      path: `down_blocks.${i}`,
      resnets,
      attentions: cross ? resnets.map(() => attention(i)) : [],
      downsample: i < n - 1,
      upsample: false,
    });
    prev = ch[i];
  }

  const mid: BlockPlan | null =
    config.midBlockType === null
      ? null
      : {
          path: 'mid_block',
          resnets: [0, 1].map(() => ({ inChannels: ch[n - 1], outChannels: ch[n - 1] })),
          attentions: [attention(n - 1)],
          downsample: false,
          upsample: false,
        };

  // Up block i works at level n-1-i; its last resnet takes the skip from the level below (the previous
  // down block's output), the others take skips of its own width.
  const up: BlockPlan[] = [];
  const upSkipChannels: number[][] = [];
  let prevOut = ch[n - 1];
  for (let i = 0; i < n; i++) {
    const level = n - 1 - i;
    const out = ch[level];
    const input = ch[Math.max(level - 1, 0)];
    const layers = config.layersPerBlock[level] + 1;
    const skips = Array.from({ length: layers }, (_, j) => (j === layers - 1 ? input : out));
    const resnets = skips.map((skip, j) => ({
      inChannels: (j === 0 ? prevOut : out) + skip,
      outChannels: out,
    }));
    const cross = config.upBlockTypes[i] === 'CrossAttnUpBlock2D';
    up.push({
      path: `up_blocks.${i}`,
      resnets,
      attentions: cross ? resnets.map(() => attention(level)) : [],
      downsample: false,
      upsample: i < n - 1,
    });
    upSkipChannels.push(skips);
    prevOut = out;
  }

  return { down, mid, up, upSkipChannels };
}

/** Every parameter (name -> shape) of the diffusers UNet2DConditionModel, in diffusers' state_dict order. */
export function expectedUnetParameters(config: UNetConfig): Map<string, number[]> {
  const plan = unetPlan(config);
  const p = new Map<string, number[]>();
  const temb = config.timeEmbeddingDim;
  const c0 = config.blockOutChannels[0];

  const conv = (name: string, out: number, inp: number, k: number) => {
    p.set(`${name}.weight`, [out, inp, k, k]);
    p.set(`${name}.bias`, [out]);
  };
  const linear = (name: string, out: number, inp: number, bias = true) => {
    p.set(`${name}.weight`, [out, inp]);
    if (bias) p.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, channels: number) => {
    p.set(`${name}.weight`, [channels]);
    p.set(`${name}.bias`, [channels]);
  };
  const resnet = (name: string, r: ResnetPlan) => {
    norm(`${name}.norm1`, r.inChannels);
    conv(`${name}.conv1`, r.outChannels, r.inChannels, 3);
    linear(`${name}.time_emb_proj`, r.outChannels, temb);
    norm(`${name}.norm2`, r.outChannels);
    conv(`${name}.conv2`, r.outChannels, r.outChannels, 3);
    if (r.inChannels !== r.outChannels) conv(`${name}.conv_shortcut`, r.outChannels, r.inChannels, 1);
  };
  const projection = (name: string, out: number, inp: number) => {
    if (config.useLinearProjection) linear(name, out, inp);
    else conv(name, out, inp, 1);
  };
  const transformer = (name: string, a: AttentionPlan) => {
    const inner = a.heads * a.headDim;
    norm(`${name}.norm`, a.channels);
    projection(`${name}.proj_in`, inner, a.channels);
    for (let k = 0; k < a.depth; k++) {
      const b = `${name}.transformer_blocks.${k}`;
      for (const [attn, kvDim] of [
        ['attn1', inner],
        ['attn2', a.crossAttentionDim],
      ] as const) {
        norm(`${b}.${attn === 'attn1' ? 'norm1' : 'norm2'}`, inner);
        linear(`${b}.${attn}.to_q`, inner, inner, false);
        linear(`${b}.${attn}.to_k`, inner, kvDim, false);
        linear(`${b}.${attn}.to_v`, inner, kvDim, false);
        linear(`${b}.${attn}.to_out.0`, inner, inner);
      }
      norm(`${b}.norm3`, inner);
      linear(`${b}.ff.net.0.proj`, inner * 4 * 2, inner); // GEGLU: value and gate halves
      linear(`${b}.ff.net.2`, inner, inner * 4);
    }
    projection(`${name}.proj_out`, a.channels, inner);
  };
  // Within a block diffusers registers attentions before resnets, then the resampler.
  const block = (b: BlockPlan) => {
    b.attentions.forEach((a, j) => transformer(`${b.path}.attentions.${j}`, a));
    b.resnets.forEach((r, j) => resnet(`${b.path}.resnets.${j}`, r));
    const last = b.resnets[b.resnets.length - 1].outChannels;
    if (b.downsample) conv(`${b.path}.downsamplers.0.conv`, last, last, 3);
    if (b.upsample) conv(`${b.path}.upsamplers.0.conv`, last, last, 3);
  };

  conv('conv_in', c0, config.inChannels, config.convInKernel);
  linear('time_embedding.linear_1', temb, c0);
  linear('time_embedding.linear_2', temb, temb);
  plan.down.forEach(block);
  plan.up.forEach(block); // diffusers creates up_blocks before mid_block
  if (plan.mid) block(plan.mid);
  norm('conv_norm_out', c0);
  conv('conv_out', config.outChannels, c0, config.convOutKernel);
  return p;
}

export function parameterCount(shapes: Iterable<readonly number[]>): number {
  let total = 0;
  for (const s of shapes) total += s.reduce((a, b) => a * b, 1);
  return total;
}

// ---- matching a weight file against the inventory ----

export interface ShapedEntry {
  readonly shape: readonly number[];
}

export interface MisShaped {
  name: string;
  expected: number[];
  actual: number[];
}

const LIST_LIMIT = 10;

function listed(title: string, items: string[]): string {
  if (items.length === 0) return '';
  const shown = items.slice(0, LIST_LIMIT).map((s) => `  ${s}`);
  if (items.length > LIST_LIMIT) shown.push(`  … and ${items.length - LIST_LIMIT} more`);
  return `\n${title} (${items.length}):\n${shown.join('\n')}`;
}

export class WeightMismatchError extends Error {
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly misShaped: MisShaped[],
    readonly hint?: string,
  ) {
    super(
      `UNet weights do not match the config: ${missing.length} missing, ${unexpected.length} unexpected, ` +
        `${misShaped.length} with the wrong shape.` +
        (hint ? ` ${hint}` : '') +
        listed('missing', missing) +
        listed('unexpected', unexpected) +
        listed(
          'wrong shape',
          misShaped.map(
            (m) => `${m.name}: file has [${m.actual.join(', ')}], config implies [${m.expected.join(', ')}]`,
          ),
        ),
    );
    this.name = 'WeightMismatchError';
  }
}

function hintFor(unexpected: string[], misShaped: MisShaped[]): string | undefined {
  if (unexpected.some((n) => n.startsWith('model.diffusion_model.') || n.startsWith('input_blocks.'))) {
    return 'The file looks like an original (LDM / A1111) checkpoint; it needs the diffusers key layout.';
  }
  if (
    misShaped.some((m) => /\.proj_(in|out)\.weight$/.test(m.name) && m.actual.length !== m.expected.length)
  ) {
    return 'proj_in/proj_out rank differs: use_linear_projection in config.json does not match the weights.';
  }
  return undefined;
}

/**
 * Checks a weight file's tensors (a safetensors header's `tensors`, or any name -> {shape} map) against
 * the config's inventory. Returns the file's entries keyed by parameter name in diffusers order; throws
 * WeightMismatchError listing missing, unexpected and mis-shaped names (all of them in its fields).
 */
export function matchWeights<T extends ShapedEntry>(
  config: UNetConfig,
  tensors: ReadonlyMap<string, T> | { readonly tensors: ReadonlyMap<string, T> },
): Map<string, T> {
  const file: ReadonlyMap<string, T> =
    'tensors' in tensors && !(tensors instanceof Map) ? tensors.tensors : (tensors as ReadonlyMap<string, T>);
  const expected = expectedUnetParameters(config);
  const matched = new Map<string, T>();
  const missing: string[] = [];
  const misShaped: MisShaped[] = [];
  for (const [name, shape] of expected) {
    const entry = file.get(name);
    if (!entry) missing.push(name);
    else if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      misShaped.push({ name, expected: shape, actual: [...entry.shape] });
    } else matched.set(name, entry);
  }
  const unexpected = [...file.keys()].filter((name) => !expected.has(name));
  if (missing.length || unexpected.length || misShaped.length) {
    throw new WeightMismatchError(missing, unexpected, misShaped, hintFor(unexpected, misShaped));
  }
  return matched;
}
