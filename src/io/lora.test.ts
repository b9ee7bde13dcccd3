// LoRA files: kohya and PEFT round trips with mixed per-layer ranks, key grammar, and scale folding on import.
import { describe, expect, it } from 'vitest';
import { exportKohya, exportPeft, importLora, kohyaName, type LoraLayerWeights } from './lora';
import { SafetensorsReader, writeSafetensors } from './safetensors';
import { bytesSource } from './sources';

function layer(path: string, rank: number, inF: number, outF: number, seed: number): LoraLayerWeights {
  const v = (n: number, k: number) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7 + k * 3 + i));
  return { path, rank, inFeatures: inF, outFeatures: outF, down: v(rank * inF, 1), up: v(outF * rank, 2) };
}

const byPath = (ls: LoraLayerWeights[]) => [...ls].sort((a, b) => a.path.localeCompare(b.path));

const LAYERS = [
  layer('down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q', 3, 24, 24, 1),
  layer('up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k', 1, 20, 36, 2),
  layer('mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0', 7, 36, 36, 3),
];

describe('LoRA files', () => {
  it('kohya: key grammar, alpha = rank, mixed ranks round-trip', async () => {
    const bytes = exportKohya(LAYERS, { quantile: 0.9 });
    const reader = await SafetensorsReader.open(bytesSource(bytes));
    const k = 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q';
    expect(kohyaName(LAYERS[0].path)).toBe(k);
    expect(reader.info(`${k}.lora_down.weight`).shape).toEqual([3, 24]);
    expect(reader.info(`${k}.lora_up.weight`).shape).toEqual([24, 3]);
    expect(Array.from(await reader.readFloat32(`${k}.alpha`))).toEqual([3]);
    expect(JSON.parse(reader.metadata.lora2_ranks)).toEqual(
      Object.fromEntries(LAYERS.map((l) => [l.path, l.rank])),
    );
    expect(reader.metadata.quantile).toBe('0.9');
    const back = await importLora(bytes);
    expect(back.format).toBe('kohya');
    expect(byPath(back.layers)).toEqual(byPath(LAYERS));
  });

  it('kohya from elsewhere: paths come from the model, alpha/rank folded into up', async () => {
    const l = LAYERS[2];
    const k = kohyaName(l.path);
    const bytes = writeSafetensors({
      [`${k}.lora_down.weight`]: { dtype: 'F16', shape: [l.rank, l.inFeatures], data: l.down },
      [`${k}.lora_up.weight`]: { dtype: 'F32', shape: [l.outFeatures, l.rank], data: l.up },
      [`${k}.alpha`]: { dtype: 'F32', shape: [], data: [3.5] },
    });
    await expect(importLora(bytes)).rejects.toThrow(/unknown module/);
    const back = await importLora(bytes, [LAYERS[0].path, l.path]);
    expect(back.layers[0].path).toBe(l.path);
    back.layers[0].up.forEach((v, i) => expect(v).toBeCloseTo((l.up[i] * 3.5) / 7, 6));
  });

  it('PEFT: lora_A/lora_B keys, rank_pattern and alpha_pattern, round-trip', async () => {
    const bytes = exportPeft(LAYERS);
    const reader = await SafetensorsReader.open(bytesSource(bytes));
    const p = `base_model.model.${LAYERS[1].path}`;
    expect(reader.info(`${p}.lora_A.weight`).shape).toEqual([1, 20]);
    expect(reader.info(`${p}.lora_B.weight`).shape).toEqual([36, 1]);
    const config = JSON.parse(reader.metadata.adapter_config);
    expect(config.rank_pattern[LAYERS[2].path]).toBe(7);
    expect(config.alpha_pattern[LAYERS[2].path]).toBe(7);
    const back = await importLora(bytes);
    expect(back.format).toBe('peft');
    expect(byPath(back.layers)).toEqual(byPath(LAYERS));
  });

  it('rejects a file with no LoRA keys', async () => {
    await expect(
      importLora(writeSafetensors({ w: { dtype: 'F32', shape: [1], data: [1] } })),
    ).rejects.toThrow(/no kohya/);
  });
});
