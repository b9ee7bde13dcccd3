// Test support for LoRA² and training: the small golden UNet (tools/reference/golden, 16×16) and its dump.
import { readFileSync } from 'node:fs';
import { bytesSource } from '../io/sources';
import { SafetensorsReader } from '../io/safetensors';
import { parseUNetConfig } from '../models/config';
import { UNet2DConditionModel } from '../models/unet';
import type { Engine } from '../tensor/engine';
import type { Tensor } from '../tensor/tensor';

export const GOLDEN_DIR = 'tools/reference/golden';

export async function openSafetensorsFile(path: string): Promise<SafetensorsReader> {
  return SafetensorsReader.open(bytesSource(new Uint8Array(readFileSync(path))));
}

export async function loadGoldenUNet(engine: Engine): Promise<UNet2DConditionModel> {
  const config = parseUNetConfig(readFileSync(`${GOLDEN_DIR}/unet_config.json`, 'utf8'));
  return UNet2DConditionModel.fromReader(
    engine,
    config,
    await openSafetensorsFile(`${GOLDEN_DIR}/unet_weights.safetensors`),
  );
}

/** The golden dump (inputs, outputs, gradients) and golden.json. */
export async function loadGolden(): Promise<{ reader: SafetensorsReader; json: GoldenJson }> {
  return {
    reader: await openSafetensorsFile(`${GOLDEN_DIR}/unet_golden.safetensors`),
    json: JSON.parse(readFileSync(`${GOLDEN_DIR}/golden.json`, 'utf8')) as GoldenJson,
  };
}

export interface GoldenJson {
  timesteps: number[];
  lora2: {
    layers: string[];
    k: number;
    r0: number;
    sigma: number;
    sigma_theta: number;
    N: number;
    s: number;
    capacity: number;
    r_max: number;
    ranks_before: Record<string, number>;
    ranks_after_step: Record<string, number>;
    adamw: { lr_ab: number; lr_rho: number; betas: [number, number]; eps: number; weight_decay: number };
  };
}

/** A golden tensor uploaded as an f32 tensor. */
export async function goldenTensor(
  engine: Engine,
  reader: SafetensorsReader,
  name: string,
  requiresGrad = false,
): Promise<Tensor> {
  return engine.fromArray(await reader.readFloat32(name), reader.info(name).shape, {
    label: name,
    requiresGrad,
  });
}

/** [rows, cols] row-major → [cols, rows]. */
export function transpose(x: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}
