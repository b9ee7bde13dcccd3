// attachLora on the golden UNet: attaches every layer and the detach frees them; a layer that passes the
// shape checks but that the GPU upload refuses leaves nothing behind (no adapter attached, no buffer held).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import type { LoraLayerWeights } from '../io/lora';
import { loadGoldenUNet } from '../lora/testing';
import type { UNet2DConditionModel } from '../models/unet';
import { Engine } from '../tensor/engine';
import { attachLora } from './loraCheckpoint';

describe('attachLora', () => {
  let engine: Engine;
  let unet: UNet2DConditionModel;
  let layers: LoraLayerWeights[];

  beforeAll(async () => {
    engine = new Engine(await testGpu());
    unet = await loadGoldenUNet(engine);
    layers = unet.linearTargets([/attn1\.to_[qkv]$/]).map((t) => ({
      path: t.path,
      rank: 2,
      inFeatures: t.inFeatures,
      outFeatures: t.outFeatures,
      down: new Float32Array(2 * t.inFeatures).fill(0.01),
      up: new Float32Array(2 * t.outFeatures).fill(0.01),
    }));
  }, 900_000);
  afterAll(() => {
    unet?.params.release();
    engine?.destroy();
  });

  it('attaches every layer; the detach removes them and frees their buffers', async () => {
    expect(layers.length).toBeGreaterThan(2);
    const live = engine.pool.stats().liveBytes;
    const detach = await attachLora(unet, layers, 1);
    expect(layers.every((l) => unet.params.adapters.has(l.path))).toBe(true);
    expect(engine.pool.stats().liveBytes).toBeGreaterThan(live);
    detach();
    expect(layers.some((l) => unet.params.adapters.has(l.path))).toBe(false);
    expect(engine.pool.stats().liveBytes).toBe(live);
  });

  it('a layer whose upload fails after others were made: the error passes on, nothing stays attached or allocated', async () => {
    const live = engine.pool.stats().liveBytes;
    const last = layers[layers.length - 1];
    // Passes checkLayersFit (path and shapes are right) but holds one value too few for [rank, in].
    const bad = { ...last, down: last.down.subarray(1) };
    await expect(attachLora(unet, [...layers.slice(0, -1), bad], 1)).rejects.toThrow(/values for shape/);
    expect(layers.some((l) => unet.params.adapters.has(l.path))).toBe(false);
    expect(engine.pool.stats().liveBytes).toBe(live);
  });
});
