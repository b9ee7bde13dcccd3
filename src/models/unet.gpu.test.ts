// The WGSL UNet against the PyTorch golden reference (tools/reference/make_golden.py): forward output,
// MSE loss, ∂loss/∂sample, and the gradients of a LoRA pair on one attention projection; gradient
// checkpointing must give the same gradients with less peak memory.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ops from '../autograd/ops';
import { backward, zeroGrad } from '../autograd/tape';
import { relativeError } from '../autograd/testing';
import { testGpu } from '../gpu/testing';
import { bytesSource } from '../io/sources';
import { SafetensorsReader, writeSafetensors, type WritableTensor } from '../io/safetensors';
import type { LinearAdapter } from '../nn/params';
import { Engine } from '../tensor/engine';
import type { Tensor } from '../tensor/tensor';
import { parseUNetConfig } from './config';
import { UNet2DConditionModel } from './unet';

const DIR = 'tools/reference/golden';

describe('UNet2DConditionModel vs PyTorch golden', { timeout: 900_000 }, () => {
  let engine: Engine;
  let unet: UNet2DConditionModel;
  let golden: SafetensorsReader;
  let timesteps: number[];
  const input = async (name: string, requiresGrad = false): Promise<Tensor> => {
    const t = golden.info(name);
    return engine.fromArray(await golden.readFloat32(name), t.shape, { label: name, requiresGrad });
  };

  beforeAll(async () => {
    engine = new Engine(await testGpu());
    const config = parseUNetConfig(readFileSync(`${DIR}/unet_config.json`, 'utf8'));
    const weights = await SafetensorsReader.open(
      bytesSource(new Uint8Array(readFileSync(`${DIR}/unet_weights.safetensors`))),
    );
    unet = await UNet2DConditionModel.fromReader(engine, config, weights);
    golden = await SafetensorsReader.open(
      bytesSource(new Uint8Array(readFileSync(`${DIR}/unet_golden.safetensors`))),
    );
    timesteps = Array.from(await golden.readFloat32('inputs.timestep'));
  }, 900_000);
  afterAll(() => unet?.params.release());

  async function forwardLoss(opts: { checkpoint?: boolean } = {}) {
    const sample = await input('inputs.sample', true);
    const ehs = await input('inputs.encoder_hidden_states');
    const target = await input('inputs.target');
    const out = await unet.forward(sample, timesteps, ehs, { gradientCheckpointing: opts.checkpoint });
    const loss = await ops.mseLoss(out, target);
    return { sample, out, loss };
  }

  it('forward output and loss match (relative error ≤ 1e-3)', async () => {
    await engine.scope(async () => {
      const { out, loss } = await forwardLoss();
      const e = relativeError(await out.read(), await golden.readFloat32('forward.out'));
      console.log(`[golden] UNet forward rel err ${e.toExponential(2)}`);
      expect(e).toBeLessThan(1e-3);
      const l = (await loss.read())[0];
      const want = (await golden.readFloat32('forward.loss'))[0];
      expect(Math.abs(l - want) / want).toBeLessThan(1e-3);
      await backward(loss);
    });
  });

  it('∂loss/∂sample matches (≤ 1e-2), with and without gradient checkpointing', async () => {
    const want = await golden.readFloat32('grad.sample');
    const grads: Float32Array[] = [];
    const peaks: number[] = [];
    for (const checkpoint of [false, true]) {
      await engine.scope(async () => {
        engine.pool.resetPeak();
        const { sample, loss } = await forwardLoss({ checkpoint });
        await backward(loss);
        peaks.push(engine.stats().peakLiveBytes);
        grads.push(await sample.grad!.read());
        zeroGrad([sample]);
      });
    }
    const e = relativeError(grads[0], want);
    console.log(
      `[golden] ∂loss/∂sample rel err ${e.toExponential(2)}; peak bytes plain ${peaks[0]}, checkpointed ${peaks[1]}`,
    );
    expect(e).toBeLessThan(1e-2);
    expect(relativeError(grads[1], grads[0])).toBeLessThan(1e-5);
    expect(peaks[1]).toBeLessThan(peaks[0]);
  });

  it('LoRA pair gradients on attn1.to_q match (≤ 1e-2)', async () => {
    const path = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q';
    await engine.scope(async () => {
      const A = await input('lora.A', true);
      const B = await input('lora.B', true);
      const adapter: LinearAdapter = {
        forward: async (x) => ops.scale(await ops.linear(await ops.linear(x, A), B), 0.75),
      };
      unet.params.adapters.set(path, adapter);
      try {
        const { out, loss } = await forwardLoss();
        expect(relativeError(await out.read(), await golden.readFloat32('lora.out'))).toBeLessThan(1e-3);
        await backward(loss);
        const eA = relativeError(await A.grad!.read(), await golden.readFloat32('lora.grad.A'));
        const eB = relativeError(await B.grad!.read(), await golden.readFloat32('lora.grad.B'));
        console.log(`[golden] LoRA grad rel err A ${eA.toExponential(2)} B ${eB.toExponential(2)}`);
        expect(eA).toBeLessThan(1e-2);
        expect(eB).toBeLessThan(1e-2);
        zeroGrad([A, B]);
      } finally {
        unet.params.adapters.delete(path);
      }
    });
  });

  it('with f16 weight storage (the F32 file rounded), forward and LoRA gradients stay near the golden', async () => {
    const config = parseUNetConfig(readFileSync(`${DIR}/unet_config.json`, 'utf8'));
    const weights = await SafetensorsReader.open(
      bytesSource(new Uint8Array(readFileSync(`${DIR}/unet_weights.safetensors`))),
    );
    const half = await UNet2DConditionModel.fromReader(engine, config, weights, { weights: 'f16' });
    const path = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q';
    try {
      const storage = half.weightStorage();
      expect(storage.f16).toBeGreaterThan(0);
      expect(storage.bytes).toBeLessThan(0.6 * unet.weightStorage().bytes);
      await engine.scope(async () => {
        const A = await input('lora.A', true);
        const B = await input('lora.B', true);
        half.params.adapters.set(path, {
          forward: async (x) => ops.scale(await ops.linear(await ops.linear(x, A), B), 0.75),
        });
        const sample = await input('inputs.sample');
        const out = await half.forward(sample, timesteps, await input('inputs.encoder_hidden_states'));
        await backward(await ops.mseLoss(out, await input('inputs.target')));
        // Rounding every weight to 11 significant bits moves the results by ~1e-4 of their size.
        const eOut = relativeError(await out.read(), await golden.readFloat32('lora.out'));
        const eA = relativeError(await A.grad!.read(), await golden.readFloat32('lora.grad.A'));
        console.log(
          `[golden, f16 weights] rel err out ${eOut.toExponential(2)}, LoRA A grad ${eA.toExponential(2)}`,
        );
        expect(eOut).toBeLessThan(1e-2);
        expect(eA).toBeLessThan(2e-2);
        // The rounding is really there: the f32 model is closer than this.
        expect(eOut).toBeGreaterThan(1e-6);
      });
    } finally {
      half.params.release();
    }
  });

  it('stores weights per file dtype and mode: BF16 as f16, F32 kept under auto, out-of-range F32 kept under f16', async () => {
    const config = parseUNetConfig(readFileSync(`${DIR}/unet_config.json`, 'utf8'));
    const src = await SafetensorsReader.open(
      bytesSource(new Uint8Array(readFileSync(`${DIR}/unet_weights.safetensors`))),
    );
    const tensors: Record<string, WritableTensor> = {};
    for (const [name, info] of src.tensors) {
      tensors[name] = { dtype: 'F32', shape: info.shape, data: await src.readFloat32(name) };
    }
    const big = Float32Array.from(tensors['conv_in.weight'].data as Float32Array);
    big[0] = 1e6; // past f16's 65504
    tensors['conv_in.weight'] = { ...tensors['conv_in.weight'], data: big };
    tensors['conv_out.weight'] = { ...tensors['conv_out.weight'], dtype: 'BF16' };
    const file = writeSafetensors(tensors);
    const dtypes = async (weights: 'auto' | 'f16') => {
      const reader = await SafetensorsReader.open(bytesSource(file));
      const m = await UNet2DConditionModel.fromReader(engine, config, reader, { weights });
      const d = (name: string) => m.params.get(name).dtype;
      const out = {
        convIn: d('conv_in.weight'),
        convOut: d('conv_out.weight'),
        convOutBias: d('conv_out.bias'),
        toQ: d('down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight'),
        norm: d('conv_norm_out.weight'),
      };
      m.params.release();
      return out;
    };
    expect(await dtypes('auto')).toEqual({
      convIn: 'f32',
      convOut: 'f16',
      convOutBias: 'f32',
      toQ: 'f32',
      norm: 'f32',
    });
    expect(await dtypes('f16')).toEqual({
      convIn: 'f32',
      convOut: 'f16',
      convOutBias: 'f32',
      toQ: 'f16',
      norm: 'f32',
    });
  });
});
