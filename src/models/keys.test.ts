// Key inventory: SD 1.5's real 686 tensors / 859,520,964 parameters, matched through a streamed 1.7 GB
// fp16 safetensors file that is never in memory; skip-concat channels of a small UNet worked by hand;
// and the mismatch report for wrong shapes, missing and unexpected keys.
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { SafetensorsReader, readHeader } from '../io/safetensors';
import { fileHandleSource, type ByteSource } from '../io/sources';
import { parseUNetConfig, type UNetConfig } from './config';
import { WeightMismatchError, expectedUnetParameters, matchWeights, parameterCount, unetPlan } from './keys';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const sd15 = parseUNetConfig(fixture('sd15-unet-config.json'));
const sd15Keys = JSON.parse(fixture('sd15-unet-keys.json')) as {
  tensors: number;
  parameters: number;
  shapes: [string, number[]][];
};

/**
 * A safetensors file of F16 zeros with these tensors, served from a synthetic source: only the header
 * exists in memory, every data read returns zeros.
 */
function zeroFile(shapes: [string, number[]][]): ByteSource {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = 2 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const size = 8 + json.length + offset;
  return {
    size,
    read: async (at, length) => {
      const out = new Uint8Array(Math.min(length, size - at));
      const prefix = new Uint8Array(8 + json.length);
      new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
      prefix.set(json, 8);
      if (at < prefix.length) out.set(prefix.subarray(at, Math.min(prefix.length, at + out.length)));
      return out;
    },
  };
}

async function mismatch(config: UNetConfig, shapes: [string, number[]][]): Promise<WeightMismatchError> {
  const header = await readHeader(zeroFile(shapes));
  try {
    matchWeights(config, header);
  } catch (e) {
    expect(e).toBeInstanceOf(WeightMismatchError);
    return e as WeightMismatchError;
  }
  throw new Error('matchWeights accepted a mismatched file');
}

describe('SD 1.5', () => {
  it('the fixture is the published size: 686 tensors, 859,520,964 parameters', () => {
    expect(sd15Keys.shapes.length).toBe(686);
    expect(sd15Keys.tensors).toBe(686);
    expect(parameterCount(sd15Keys.shapes.map(([, s]) => s))).toBe(859_520_964);
  });

  it('the config implies exactly the fixture names and shapes, in state_dict order', () => {
    const expected = expectedUnetParameters(sd15);
    expect([...expected.entries()]).toEqual(sd15Keys.shapes);
    expect(parameterCount(expected.values())).toBe(859_520_964);
  });

  it('matchWeights maps every tensor of a streamed 1.7 GB fp16 file, nothing missing or unexpected', async () => {
    const source = zeroFile(sd15Keys.shapes);
    expect(source.size).toBeGreaterThan(1.7e9);
    const reader = await SafetensorsReader.open(source);
    const matched = matchWeights(sd15, reader.header);
    expect(matched.size).toBe(686);
    expect(matched.get('mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight')).toMatchObject({
      dtype: 'F16',
      shape: [1280, 768],
    });
    // Reading one tensor touches only its bytes.
    const w = await reader.readFloat32('conv_in.weight');
    expect(w.length).toBe(320 * 4 * 9);
    expect(w.every((v) => v === 0)).toBe(true);
  });

  it('a wrong shape is reported with both shapes', async () => {
    const shapes = sd15Keys.shapes.map(([n, s]): [string, number[]] =>
      n === 'up_blocks.1.resnets.2.conv1.weight' ? [n, [1280, 2560, 3, 3]] : [n, s],
    );
    const e = await mismatch(sd15, shapes);
    expect(e.missing).toEqual([]);
    expect(e.unexpected).toEqual([]);
    expect(e.misShaped).toEqual([
      {
        name: 'up_blocks.1.resnets.2.conv1.weight',
        expected: [1280, 1920, 3, 3],
        actual: [1280, 2560, 3, 3],
      },
    ]);
    expect(e.message).toContain('1 with the wrong shape');
    expect(e.message).toContain(
      'up_blocks.1.resnets.2.conv1.weight: file has [1280, 2560, 3, 3], config implies [1280, 1920, 3, 3]',
    );
  });

  it('a missing key and an unexpected key are reported by name', async () => {
    const shapes = sd15Keys.shapes.filter(
      ([n]) => n !== 'down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_v.weight',
    );
    shapes.push(['down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_v.bias', [1280]]);
    const e = await mismatch(sd15, shapes);
    expect(e.missing).toEqual(['down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_v.weight']);
    expect(e.unexpected).toEqual(['down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_v.bias']);
    expect(e.message).toMatch(/1 missing, 1 unexpected, 0 with the wrong shape/);
    expect(e.message).toMatch(
      /missing \(1\):\n {2}down_blocks\.2\.attentions\.1\.transformer_blocks\.0\.attn1\.to_v\.weight/,
    );
  });

  it('long lists are cut at 10 with a count, and a projection-rank mismatch gets a hint', async () => {
    const linear = parseUNetConfig({
      ...JSON.parse(fixture('sd15-unet-config.json')),
      use_linear_projection: true,
    });
    const e = await mismatch(linear, sd15Keys.shapes);
    expect(e.misShaped.length).toBe(32); // proj_in + proj_out of 16 transformers
    expect(e.message).toContain('… and 22 more');
    expect(e.message).toMatch(/use_linear_projection/);
    expect(expectedUnetParameters(linear).get('mid_block.attentions.0.proj_in.weight')).toEqual([1280, 1280]);
  });

  it('an LDM-layout checkpoint gets a hint', async () => {
    const e = await mismatch(sd15, [['model.diffusion_model.input_blocks.0.0.weight', [320, 4, 3, 3]]]);
    expect(e.missing.length).toBe(686);
    expect(e.message).toMatch(/LDM/);
  });
});

describe('a small UNet (64/128/128, one resnet per level), channels worked by hand', () => {
  const config = parseUNetConfig({
    block_out_channels: [64, 128, 128],
    down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
    layers_per_block: 1,
    attention_head_dim: [2, 4, 4],
    cross_attention_dim: 96,
    norm_num_groups: 32,
    in_channels: 3,
    out_channels: 3,
    transformer_layers_per_block: [1, 2, 1],
  });

  it('up-block resnets take prev + skip channels, skips popped from the down path', () => {
    // Down path pushes: conv_in 64, d0.r0 64, d0.down 64, d1.r0 128, d1.down 128, d2.r0 128.
    // Up blocks pop from the end, two each.
    const plan = unetPlan(config);
    expect(plan.upSkipChannels).toEqual([
      [128, 128],
      [128, 64],
      [64, 64],
    ]);
    expect(plan.up.map((b) => b.resnets.map((r) => r.inChannels))).toEqual([
      [256, 256],
      [256, 192],
      [192, 128],
    ]);
    expect(plan.down.map((b) => b.resnets.map((r) => [r.inChannels, r.outChannels]))).toEqual([
      [[64, 64]],
      [[64, 128]],
      [[128, 128]],
    ]);
  });

  it('inventory: shortcuts only where channels change, no resampler on the last block, depth per level', () => {
    const p = expectedUnetParameters(config);
    expect(p.get('conv_in.weight')).toEqual([64, 3, 3, 3]);
    expect(p.get('time_embedding.linear_1.weight')).toEqual([256, 64]);
    expect(p.has('down_blocks.0.resnets.0.conv_shortcut.weight')).toBe(false);
    expect(p.get('down_blocks.1.resnets.0.conv_shortcut.weight')).toEqual([128, 64, 1, 1]);
    expect(p.has('down_blocks.2.downsamplers.0.conv.weight')).toBe(false);
    expect(p.get('down_blocks.1.downsamplers.0.conv.weight')).toEqual([128, 128, 3, 3]);
    expect(p.has('down_blocks.1.attentions.0.transformer_blocks.1.norm1.weight')).toBe(true);
    expect(p.has('down_blocks.2.attentions.0.transformer_blocks.1.norm1.weight')).toBe(false);
    // Up block 1 is level 1: depth 2 there too.
    expect(p.has('up_blocks.1.attentions.1.transformer_blocks.1.ff.net.2.weight')).toBe(true);
    expect(p.get('up_blocks.2.resnets.0.conv_shortcut.weight')).toEqual([64, 192, 1, 1]);
    expect(p.has('up_blocks.2.upsamplers.0.conv.weight')).toBe(false);
    expect(p.has('up_blocks.2.attentions.0.norm.weight')).toBe(false);
    expect(p.get('up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight')).toEqual([128, 96]);
    expect(p.has('up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias')).toBe(false);
    expect(p.get('up_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight')).toEqual([1024, 128]);
    expect(p.get('mid_block.resnets.1.conv2.weight')).toEqual([128, 128, 3, 3]);
    expect(p.get('conv_out.weight')).toEqual([3, 64, 3, 3]);
    expect(p.has('mid_block.attentions.1.norm.weight')).toBe(false);
  });
});

describe('the PyTorch reference (tools/reference/golden): written by Python, read here', () => {
  it('unet_weights.safetensors matches its unet_config.json and every tensor decodes', async () => {
    const dir = new URL('../../tools/reference/golden/', import.meta.url);
    const config = parseUNetConfig(readFileSync(new URL('unet_config.json', dir), 'utf8'));
    const handle = await open(new URL('unet_weights.safetensors', dir), 'r');
    try {
      const reader = await SafetensorsReader.open(fileHandleSource(handle, (await handle.stat()).size));
      const matched = matchWeights(config, reader.header);
      expect(matched.size).toBe(expectedUnetParameters(config).size);
      let count = 0;
      for await (const [info, values] of reader.float32Tensors(matched.keys())) {
        expect(values.length).toBe(info.shape.reduce((a, b) => a * b, 1));
        expect(values.every(Number.isFinite)).toBe(true);
        count += values.length;
      }
      expect(count).toBe(parameterCount(expectedUnetParameters(config).values()));
    } finally {
      await handle.close();
    }
  });
});
