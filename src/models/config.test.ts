// UNet config parsing: SD 1.5 and SD 2.x forms, the heads/head-dim quirk, defaults, and refusals by key.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseUNetConfig } from './config';

const sd15Text = readFileSync(new URL('./fixtures/sd15-unet-config.json', import.meta.url), 'utf8');
const sd15 = JSON.parse(sd15Text) as Record<string, unknown>;

function refuses(patch: Record<string, unknown>, key: string, text?: RegExp) {
  let err: unknown;
  try {
    parseUNetConfig({ ...sd15, ...patch });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).key).toBe(key);
  expect((err as ConfigError).message).toContain(`"${key}"`);
  if (text) expect((err as ConfigError).message).toMatch(text);
}

describe('parseUNetConfig', () => {
  it('normalises SD 1.5: attention_head_dim 8 means 8 heads of 40/80/160/160 channels', () => {
    const c = parseUNetConfig(sd15Text);
    expect(c).toMatchObject({
      sampleSize: [64, 64],
      inChannels: 4,
      outChannels: 4,
      blockOutChannels: [320, 640, 1280, 1280],
      layersPerBlock: [2, 2, 2, 2],
      transformerLayersPerBlock: [1, 1, 1, 1],
      numAttentionHeads: [8, 8, 8, 8],
      headDim: [40, 80, 160, 160],
      crossAttentionDim: [768, 768, 768, 768],
      normNumGroups: 32,
      normEps: 1e-5,
      useLinearProjection: false,
      flipSinToCos: true,
      freqShift: 0,
      midBlockType: 'UNetMidBlock2DCrossAttn',
      timeEmbeddingDim: 1280,
      actFn: 'silu',
      convInKernel: 3,
      ignoredKeys: [],
    });
    expect(c.downBlockTypes).toEqual(sd15.down_block_types);
    expect(c.upBlockTypes).toEqual(sd15.up_block_types);
  });

  it('SD 2.x: per-block attention_head_dim list and linear projections', () => {
    const c = parseUNetConfig({
      ...sd15,
      attention_head_dim: [5, 10, 20, 20],
      cross_attention_dim: 1024,
      use_linear_projection: true,
      upcast_attention: true,
      sample_size: 96,
    });
    expect(c.numAttentionHeads).toEqual([5, 10, 20, 20]);
    expect(c.headDim).toEqual([64, 64, 64, 64]);
    expect(c.crossAttentionDim).toEqual([1024, 1024, 1024, 1024]);
    expect(c.useLinearProjection).toBe(true);
    expect(c.upcastAttention).toBe(true);
  });

  it('num_attention_heads, when given, is the head count and attention_head_dim is not', () => {
    const c = parseUNetConfig({ ...sd15, num_attention_heads: [4, 8, 16, 16], attention_head_dim: 64 });
    expect(c.numAttentionHeads).toEqual([4, 8, 16, 16]);
    expect(c.headDim).toEqual([80, 80, 80, 80]);
  });

  it('absent keys take diffusers defaults; per-block lists and swish are normalised', () => {
    const c = parseUNetConfig({});
    expect(c.blockOutChannels).toEqual([320, 640, 1280, 1280]);
    expect(c.crossAttentionDim).toEqual([1280, 1280, 1280, 1280]);
    expect(c.sampleSize).toBeNull();
    const d = parseUNetConfig({
      ...sd15,
      layers_per_block: [1, 2, 2, 1],
      act_fn: 'swish',
      sample_size: [32, 48],
    });
    expect(d.layersPerBlock).toEqual([1, 2, 2, 1]);
    expect(d.actFn).toBe('silu');
    expect(d.sampleSize).toEqual([32, 48]);
  });

  it('records keys no UNet option reads', () => {
    expect(parseUNetConfig({ ...sd15, my_note: 1 }).ignoredKeys).toEqual(['my_note']);
  });

  it('refuses unsupported features naming the key', () => {
    refuses(
      { addition_embed_type: 'text_time', addition_time_embed_dim: 256 },
      'addition_embed_type',
      /SDXL/,
    );
    refuses({ class_embed_type: 'projection' }, 'class_embed_type', /class embeddings/);
    refuses({ num_class_embeds: 10 }, 'num_class_embeds');
    refuses({ time_cond_proj_dim: 256 }, 'time_cond_proj_dim');
    refuses({ resnet_time_scale_shift: 'scale_shift' }, 'resnet_time_scale_shift');
    refuses({ time_embedding_type: 'fourier' }, 'time_embedding_type');
    refuses({ encoder_hid_dim_type: 'text_proj', encoder_hid_dim: 512 }, 'encoder_hid_dim');
    refuses({ mid_block_type: 'UNetMidBlock2DSimpleCrossAttn' }, 'mid_block_type');
    refuses({ only_cross_attention: [false, true, false, false] }, 'only_cross_attention');
    refuses({ dual_cross_attention: true }, 'dual_cross_attention');
    refuses({ act_fn: 'gelu' }, 'act_fn', /activation "gelu"/);
    refuses({ _class_name: 'UNet2DModel' }, '_class_name');
  });

  it('refuses malformed or inconsistent values naming the key', () => {
    refuses(
      {
        down_block_types: [
          'CrossAttnDownBlock2D',
          'SimpleCrossAttnDownBlock2D',
          'DownBlock2D',
          'DownBlock2D',
        ],
      },
      'down_block_types',
      /block 1/,
    );
    refuses({ up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'] }, 'up_block_types', /2 blocks/);
    refuses({ layers_per_block: [2, 2] }, 'layers_per_block', /2 entries but there are 4/);
    refuses({ block_out_channels: 320 }, 'block_out_channels');
    refuses({ transformer_layers_per_block: [[1, 2], 1, 1, 1] }, 'transformer_layers_per_block', /nested/);
    refuses({ attention_head_dim: 7 }, 'attention_head_dim', /7 heads do not divide block 0's 320/);
    refuses({ num_attention_heads: 3 }, 'num_attention_heads');
    refuses({ norm_num_groups: 48 }, 'norm_num_groups');
    refuses({ norm_num_groups: null }, 'norm_num_groups');
    refuses({ in_channels: 0 }, 'in_channels');
    refuses({ conv_in_kernel: 2 }, 'conv_in_kernel', /odd/);
    refuses({ sample_size: 'big' }, 'sample_size');
    expect(() => parseUNetConfig('{"a":')).toThrow(ConfigError);
  });
});
