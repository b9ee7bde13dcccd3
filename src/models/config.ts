// Parses a diffusers UNet2DConditionModel config.json into a normalised, validated UNetConfig: every
// per-block setting becomes a per-block list, SD 1.5's heads-vs-head-dim naming quirk is resolved once here,
// and any feature the engine does not implement is refused with the key that asks for it.

export type DownBlockType = 'DownBlock2D' | 'CrossAttnDownBlock2D';
export type UpBlockType = 'UpBlock2D' | 'CrossAttnUpBlock2D';
export type MidBlockType = 'UNetMidBlock2DCrossAttn';
export type Activation = 'silu';

export class ConfigError extends Error {
  constructor(
    /** The config.json key at fault. */
    readonly key: string,
    message: string,
  ) {
    super(`UNet config: "${key}": ${message}`);
    this.name = 'ConfigError';
  }
}

export interface UNetConfig {
  /** Latent [height, width] the model was trained at, when the config says. */
  sampleSize: [number, number] | null;
  inChannels: number;
  outChannels: number;
  centerInputSample: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  /** null: no mid block. */
  midBlockType: MidBlockType | null;
  blockOutChannels: number[];
  /** Resnets per down block (up blocks have one more), per level. */
  layersPerBlock: number[];
  /** BasicTransformerBlocks per Transformer2DModel, per level (the mid block uses the last). */
  transformerLayersPerBlock: number[];
  /** Attention heads per level. SD 1.5 writes these as `attention_head_dim: 8`; see parseUNetConfig. */
  numAttentionHeads: number[];
  /** Channels per head per level: blockOutChannels[i] / numAttentionHeads[i]. */
  headDim: number[];
  /** Width of the encoder hidden states (text embedding) per level. */
  crossAttentionDim: number[];
  normNumGroups: number;
  normEps: number;
  /** Transformer2DModel proj_in/proj_out: Linear when true, 1x1 Conv2d when false. */
  useLinearProjection: boolean;
  /** Compute attention scores in f32 (SD 2.1); a numerics hint, no weights depend on it. */
  upcastAttention: boolean;
  actFn: Activation;
  downsamplePadding: number;
  midBlockScaleFactor: number;
  dropout: number;
  /** Width of the time embedding MLP output (block_out_channels[0] * 4 unless time_embedding_dim says). */
  timeEmbeddingDim: number;
  timeEmbeddingActFn: Activation | null;
  timestepPostAct: Activation | null;
  convInKernel: number;
  convOutKernel: number;
  /** Keys present in the file that no UNet2DConditionModel option reads (diffusers ignores them too). */
  ignoredKeys: string[];
}

const DOWN_TYPES: readonly string[] = ['DownBlock2D', 'CrossAttnDownBlock2D'];
const UP_TYPES: readonly string[] = ['UpBlock2D', 'CrossAttnUpBlock2D'];
const ACTIVATIONS: Record<string, Activation> = { silu: 'silu', swish: 'silu' };

/** diffusers' defaults for UNet2DConditionModel.__init__ (applied when a key is absent, as diffusers does). */
const DEFAULTS: Record<string, unknown> = {
  sample_size: null,
  in_channels: 4,
  out_channels: 4,
  center_input_sample: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  only_cross_attention: false,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  dropout: 0,
  act_fn: 'silu',
  norm_num_groups: 32,
  norm_eps: 1e-5,
  cross_attention_dim: 1280,
  transformer_layers_per_block: 1,
  reverse_transformer_layers_per_block: null,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  attention_head_dim: 8,
  num_attention_heads: null,
  dual_cross_attention: false,
  use_linear_projection: false,
  class_embed_type: null,
  addition_embed_type: null,
  addition_time_embed_dim: null,
  num_class_embeds: null,
  upcast_attention: false,
  resnet_time_scale_shift: 'default',
  resnet_skip_time_act: false,
  resnet_out_scale_factor: 1,
  time_embedding_type: 'positional',
  time_embedding_dim: null,
  time_embedding_act_fn: null,
  timestep_post_act: null,
  time_cond_proj_dim: null,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  projection_class_embeddings_input_dim: null,
  attention_type: 'default',
  class_embeddings_concat: false,
  mid_block_only_cross_attention: null,
  cross_attention_norm: null,
  addition_embed_type_num_heads: 64,
};

/** Options that change the architecture in ways the engine does not implement: value that is accepted. */
const UNSUPPORTED: Record<string, { accepted: unknown; why: string }> = {
  addition_embed_type: {
    accepted: null,
    why: 'added (SDXL-style text/time) embeddings are not supported yet',
  },
  addition_time_embed_dim: { accepted: null, why: 'added time embeddings (SDXL) are not supported yet' },
  class_embed_type: { accepted: null, why: 'class embeddings are not supported' },
  num_class_embeds: { accepted: null, why: 'class embeddings are not supported' },
  class_embeddings_concat: { accepted: false, why: 'class embeddings are not supported' },
  encoder_hid_dim: { accepted: null, why: 'an encoder hidden-state projection is not supported' },
  encoder_hid_dim_type: { accepted: null, why: 'an encoder hidden-state projection is not supported' },
  reverse_transformer_layers_per_block: {
    accepted: null,
    why: 'asymmetric transformer depths are not supported',
  },
  dual_cross_attention: { accepted: false, why: 'dual cross-attention is not supported' },
  resnet_time_scale_shift: {
    accepted: 'default',
    why: 'only additive time conditioning ("default") is supported',
  },
  time_embedding_type: {
    accepted: 'positional',
    why: 'only sinusoidal ("positional") timestep embeddings are supported',
  },
  time_cond_proj_dim: { accepted: null, why: 'guidance-conditioned time embeddings (LCM) are not supported' },
  attention_type: { accepted: 'default', why: 'only "default" attention is supported (no GLIGEN)' },
  cross_attention_norm: { accepted: null, why: 'cross-attention normalisation is not supported' },
};

/** Keys read only by block types this parser already refuses; their values cannot matter. */
const INERT = new Set([
  '_class_name',
  '_diffusers_version',
  '_name_or_path',
  'resnet_skip_time_act',
  'resnet_out_scale_factor',
  'projection_class_embeddings_input_dim',
  'addition_embed_type_num_heads',
]);

/**
 * Parses a diffusers UNet2DConditionModel config (the JSON text or the parsed object). Absent keys take
 * diffusers' defaults. Heads: when `num_attention_heads` is null, diffusers uses `attention_head_dim` as the
 * number of heads (SD 1.5's `attention_head_dim: 8` means 8 heads of 40/80/160 channels); the real channels
 * per head are always block channels / heads.
 */
export function parseUNetConfig(input: string | unknown): UNetConfig {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch (e) {
      throw new ConfigError('(file)', `not valid JSON (${(e as Error).message})`);
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('(file)', 'config must be a JSON object');
  }
  const given = raw as Record<string, unknown>;
  const c: Record<string, unknown> = { ...DEFAULTS };
  for (const [k, v] of Object.entries(given)) if (!k.startsWith('_')) c[k] = v;

  if (given._class_name !== undefined && given._class_name !== 'UNet2DConditionModel') {
    throw new ConfigError(
      '_class_name',
      `is ${JSON.stringify(given._class_name)}, expected "UNet2DConditionModel"`,
    );
  }
  for (const [key, { accepted, why }] of Object.entries(UNSUPPORTED)) {
    if (c[key] !== accepted) throw new ConfigError(key, `${JSON.stringify(c[key])}: ${why}`);
  }
  const ignoredKeys = Object.keys(given).filter((k) => !(k in DEFAULTS) && !INERT.has(k));

  const downBlockTypes = stringList(c, 'down_block_types', DOWN_TYPES) as DownBlockType[];
  const n = downBlockTypes.length;
  if (n === 0) throw new ConfigError('down_block_types', 'needs at least one block');
  const upBlockTypes = stringList(c, 'up_block_types', UP_TYPES) as UpBlockType[];
  if (upBlockTypes.length !== n) {
    throw new ConfigError(
      'up_block_types',
      `has ${upBlockTypes.length} blocks but down_block_types has ${n}`,
    );
  }
  const blockOutChannels = perBlock(c, 'block_out_channels', n, { list: true });
  const layersPerBlock = perBlock(c, 'layers_per_block', n);
  const transformerLayersPerBlock = perBlock(c, 'transformer_layers_per_block', n);
  const crossAttentionDim = perBlock(c, 'cross_attention_dim', n);

  const headsKey = c.num_attention_heads === null ? 'attention_head_dim' : 'num_attention_heads';
  const numAttentionHeads = perBlock(c, headsKey, n);
  if (c.num_attention_heads !== null && c.attention_head_dim !== null) {
    // diffusers ignores attention_head_dim for these block types once heads are given; still check its form.
    perBlockOrNull(c, 'attention_head_dim', n);
  }

  const midBlockType = c.mid_block_type;
  if (midBlockType !== null && midBlockType !== 'UNetMidBlock2DCrossAttn') {
    throw new ConfigError(
      'mid_block_type',
      `${JSON.stringify(midBlockType)} is not supported (UNetMidBlock2DCrossAttn or null)`,
    );
  }
  checkAllFalse(c, 'only_cross_attention', n);
  if (c.mid_block_only_cross_attention !== null && c.mid_block_only_cross_attention !== false) {
    throw new ConfigError(
      'mid_block_only_cross_attention',
      'cross-attention-only transformer blocks are not supported',
    );
  }

  const normNumGroups = positiveInt(c, 'norm_num_groups');
  blockOutChannels.forEach((ch, i) => {
    if (ch % normNumGroups !== 0) {
      throw new ConfigError(
        'norm_num_groups',
        `${normNumGroups} groups do not divide block ${i}'s ${ch} channels`,
      );
    }
  });

  const usesAttention = (i: number) =>
    downBlockTypes[i] === 'CrossAttnDownBlock2D' ||
    upBlockTypes[n - 1 - i] === 'CrossAttnUpBlock2D' ||
    (i === n - 1 && midBlockType !== null);
  const headDim = blockOutChannels.map((ch, i) => {
    if (usesAttention(i) && ch % numAttentionHeads[i] !== 0) {
      throw new ConfigError(
        headsKey,
        `${numAttentionHeads[i]} heads do not divide block ${i}'s ${ch} channels`,
      );
    }
    return Math.floor(ch / numAttentionHeads[i]);
  });

  const timeEmbeddingDim =
    c.time_embedding_dim === null ? blockOutChannels[0] * 4 : positiveInt(c, 'time_embedding_dim');
  return {
    sampleSize: sampleSize(c.sample_size),
    inChannels: positiveInt(c, 'in_channels'),
    outChannels: positiveInt(c, 'out_channels'),
    centerInputSample: bool(c, 'center_input_sample'),
    flipSinToCos: bool(c, 'flip_sin_to_cos'),
    freqShift: finite(c, 'freq_shift'),
    downBlockTypes,
    upBlockTypes,
    midBlockType,
    blockOutChannels,
    layersPerBlock,
    transformerLayersPerBlock,
    numAttentionHeads,
    headDim,
    crossAttentionDim,
    normNumGroups,
    normEps: positive(c, 'norm_eps'),
    useLinearProjection: bool(c, 'use_linear_projection'),
    upcastAttention: bool(c, 'upcast_attention'),
    actFn: activation(c, 'act_fn', false)!,
    downsamplePadding: nonNegativeInt(c, 'downsample_padding'),
    midBlockScaleFactor: finite(c, 'mid_block_scale_factor'),
    dropout: finite(c, 'dropout'),
    timeEmbeddingDim,
    timeEmbeddingActFn: activation(c, 'time_embedding_act_fn', true),
    timestepPostAct: activation(c, 'timestep_post_act', true),
    convInKernel: oddKernel(c, 'conv_in_kernel'),
    convOutKernel: oddKernel(c, 'conv_out_kernel'),
    ignoredKeys,
  };
}

// ---- field readers: each names its key in the error ----

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function positiveInt(c: Record<string, unknown>, key: string): number {
  const v = c[key];
  if (!isInt(v) || v <= 0) throw new ConfigError(key, `${JSON.stringify(v)} is not a positive integer`);
  return v;
}

function nonNegativeInt(c: Record<string, unknown>, key: string): number {
  const v = c[key];
  if (!isInt(v) || v < 0) throw new ConfigError(key, `${JSON.stringify(v)} is not a non-negative integer`);
  return v;
}

function finite(c: Record<string, unknown>, key: string): number {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ConfigError(key, `${JSON.stringify(v)} is not a number`);
  return v;
}

function positive(c: Record<string, unknown>, key: string): number {
  const v = finite(c, key);
  if (v <= 0) throw new ConfigError(key, `${v} must be positive`);
  return v;
}

function bool(c: Record<string, unknown>, key: string): boolean {
  const v = c[key];
  if (typeof v !== 'boolean') throw new ConfigError(key, `${JSON.stringify(v)} is not true or false`);
  return v;
}

function oddKernel(c: Record<string, unknown>, key: string): number {
  const v = positiveInt(c, key);
  if (v % 2 !== 1) throw new ConfigError(key, `${v} must be odd (same-size padding)`);
  return v;
}

function activation(c: Record<string, unknown>, key: string, nullable: boolean): Activation | null {
  const v = c[key];
  if (v === null && nullable) return null;
  const act = typeof v === 'string' ? ACTIVATIONS[v] : undefined;
  if (!act) throw new ConfigError(key, `activation ${JSON.stringify(v)} is not supported (silu)`);
  return act;
}

function stringList(c: Record<string, unknown>, key: string, allowed: readonly string[]): string[] {
  const v = c[key];
  if (!Array.isArray(v)) throw new ConfigError(key, `${JSON.stringify(v)} is not a list`);
  v.forEach((t, i) => {
    if (typeof t !== 'string' || !allowed.includes(t)) {
      throw new ConfigError(
        key,
        `block ${i} type ${JSON.stringify(t)} is not supported (${allowed.join(', ')})`,
      );
    }
  });
  return v as string[];
}

/** An int applying to every block, or a list with one positive int per block. */
function perBlock(
  c: Record<string, unknown>,
  key: string,
  n: number,
  opts: { list?: boolean } = {},
): number[] {
  const v = c[key];
  if (isInt(v) && !opts.list) {
    if (v <= 0) throw new ConfigError(key, `${v} must be positive`);
    return new Array<number>(n).fill(v);
  }
  if (!Array.isArray(v))
    throw new ConfigError(
      key,
      `${JSON.stringify(v)} is not ${opts.list ? 'a list' : 'an integer or a list'}`,
    );
  if (v.length !== n) throw new ConfigError(key, `has ${v.length} entries but there are ${n} down blocks`);
  v.forEach((x, i) => {
    if (Array.isArray(x))
      throw new ConfigError(key, `entry ${i} is a nested list (asymmetric UNets are not supported)`);
    if (!isInt(x) || x <= 0)
      throw new ConfigError(key, `entry ${i} (${JSON.stringify(x)}) is not a positive integer`);
  });
  return [...(v as number[])];
}

function perBlockOrNull(c: Record<string, unknown>, key: string, n: number): void {
  const v = c[key];
  if (Array.isArray(v) && v.every((x) => x === null)) return;
  perBlock(c, key, n);
}

function checkAllFalse(c: Record<string, unknown>, key: string, n: number): void {
  const v = c[key];
  const list = Array.isArray(v) ? v : [v];
  if (Array.isArray(v) && v.length !== n)
    throw new ConfigError(key, `has ${v.length} entries but there are ${n} down blocks`);
  if (list.some((x) => x !== false))
    throw new ConfigError(key, 'cross-attention-only transformer blocks are not supported');
}

function sampleSize(v: unknown): [number, number] | null {
  if (v === null) return null;
  if (isInt(v) && v > 0) return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => isInt(x) && x > 0)) return [v[0], v[1]];
  throw new ConfigError('sample_size', `${JSON.stringify(v)} is not a size or [height, width]`);
}
