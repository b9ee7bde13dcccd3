import { describe, expect, it } from 'vitest';
import { exportKohya, importLora } from '../io/lora';
import { lora2Settings, plainLayerFromState } from '../lora/adapter';
import { Rng } from '../models/rng';
import { CHECKPOINT_SCHEMA_VERSION, memoryCheckpointStore, type TrainerCheckpoint } from './checkpoint';
import { checkLayersFit, checkpointFromLora } from './loraCheckpoint';

const TARGETS = [
  { path: 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', inFeatures: 8, outFeatures: 8 },
  { path: 'mid_block.attentions.0.transformer_blocks.0.attn2.to_k', inFeatures: 12, outFeatures: 8 },
];

function layers(ranks: number[]) {
  const rng = new Rng(3);
  return TARGETS.map((t, i) => ({
    ...t,
    rank: ranks[i],
    down: rng.normals(ranks[i] * t.inFeatures),
    up: rng.normals(t.outFeatures * ranks[i]),
  }));
}

describe('imported LoRA → checkpoint', () => {
  it('refuses layers the model does not have or of another shape', () => {
    expect(() => checkLayersFit(layers([2, 3]), TARGETS)).not.toThrow();
    expect(() => checkLayersFit([], TARGETS)).toThrow(/no LoRA layers/);
    expect(() => checkLayersFit([{ ...layers([2, 3])[0], path: 'up_blocks.9.x' }], TARGETS)).toThrow(
      /up_blocks\.9\.x: this model has no such linear/,
    );
    const wrong = { ...layers([2, 3])[1], inFeatures: 4, down: new Float32Array(12) };
    expect(() => checkLayersFit([wrong], TARGETS)).toThrow(/8×4, the model's 8×12/);
  });

  it('a kohya file with mixed ranks becomes a checkpoint that exports the same ΔW', async () => {
    const original = layers([2, 5]);
    const file = await importLora(exportKohya(original));
    const settings = lora2Settings();
    const ckpt = checkpointFromLora('s', file.layers, { settings, seed: 1 });
    expect(ckpt).toMatchObject({ schemaVersion: CHECKPOINT_SCHEMA_VERSION, sessionId: 's', step: 0 });
    expect(ckpt.layers.map((l) => l.rank)).toEqual([2, 5]);
    for (const [i, state] of ckpt.layers.entries()) {
      const back = plainLayerFromState(settings, state);
      expect([...back.down]).toEqual([...original[i].down]);
      back.up.forEach((v, j) => expect(v).toBeCloseTo(original[i].up[j], 5));
    }
    // It survives a store round trip and becomes the latest.
    const store = memoryCheckpointStore();
    await store.put(ckpt);
    expect((await store.get('s'))?.layers[1].Bt).toEqual(ckpt.layers[1].Bt);
  });

  it('replaces the latest checkpoint at its step, keeping the history only for the same layers', () => {
    const base: TrainerCheckpoint = {
      ...checkpointFromLora('s', layers([1, 1]), { settings: lora2Settings(), seed: 0 }),
      step: 16,
      lossHistory: [0.3, 0.2],
      rankHistory: [
        [1, 1],
        [2, 1],
      ],
      elapsedMs: 1234,
    };
    const same = checkpointFromLora('s', layers([3, 2]), { base, settings: lora2Settings(), seed: 2 });
    expect(same).toMatchObject({ step: 16, lossHistory: [0.3, 0.2], elapsedMs: 1234, rng: base.rng });
    const other = checkpointFromLora('s', layers([3, 2]).slice(1), {
      base,
      settings: lora2Settings(),
      seed: 2,
    });
    expect(other).toMatchObject({ step: 16, lossHistory: [], rankHistory: [] });
  });
});
