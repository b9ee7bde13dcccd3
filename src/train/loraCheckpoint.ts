// An imported LoRA file (kohya or PEFT) as a session's checkpoint: each layer becomes a fresh adapter state
// whose export is the file's ΔW, so sampling, export and further training treat it like a trained one.
import { LoraFormatError, type LoraLayerWeights } from '../io/lora';
import {
  adapterStateFromLayer,
  PlainLoraAdapter,
  type AdapterTarget,
  type Lora2Settings,
} from '../lora/adapter';
import type { UNet2DConditionModel } from '../models/unet';
import { Rng } from '../models/rng';
import { CHECKPOINT_SCHEMA_VERSION, type TrainerCheckpoint } from './checkpoint';

/** Every layer must sit on a linear (or, with a kernel, a convolution) of the model with the same shape. */
export function checkLayersFit(layers: LoraLayerWeights[], targets: readonly AdapterTarget[]): void {
  if (layers.length === 0) throw new LoraFormatError('the file has no LoRA layers');
  const byPath = new Map(targets.map((t) => [t.path, t]));
  for (const l of layers) {
    const t = byPath.get(l.path);
    if (!t) throw new LoraFormatError(`${l.path}: this model has no such linear or conv layer`);
    const kind = (k?: [number, number]) => (k ? `a ${k[0]}×${k[1]} conv` : 'a linear');
    if (kind(t.kernel) !== kind(l.kernel))
      throw new LoraFormatError(
        `${l.path}: the file's layer is ${kind(l.kernel)}, the model's ${kind(t.kernel)}`,
      );
    if (t.inFeatures !== l.inFeatures || t.outFeatures !== l.outFeatures)
      throw new LoraFormatError(
        `${l.path}: the file's layer is ${l.outFeatures}×${l.inFeatures}, the model's ${t.outFeatures}×${t.inFeatures}`,
      );
  }
}

/**
 * Attaches finished LoRA layers (scales folded in) to the UNet at `strength` (0 = off, 1 = as trained);
 * returns the detach, which also frees their GPU buffers. Checks first that every layer fits the model.
 */
export async function attachLora(
  unet: UNet2DConditionModel,
  layers: LoraLayerWeights[],
  strength: number,
): Promise<() => void> {
  checkLayersFit(layers, unet.linearTargets([/./]));
  const adapters: PlainLoraAdapter[] = [];
  try {
    for (const l of layers) adapters.push(await PlainLoraAdapter.create(unet.engine, l, strength));
  } catch (err) {
    // A layer the checks let through but the GPU upload refused (bad data length, lost device): free the
    // ones already made before passing the error on.
    for (const a of adapters) a.release();
    throw err;
  }
  for (const a of adapters) unet.params.adapters.set(a.path, a);
  return () => {
    for (const a of adapters) {
      if (unet.params.adapters.get(a.path) === a) unet.params.adapters.delete(a.path);
      a.release();
    }
  };
}

/**
 * The checkpoint that replaces the session's latest (`base`): at base's step, with base's RNG and settings,
 * and its loss/rank history when the layers are the same ones (else the history starts empty).
 */
export function checkpointFromLora(
  sessionId: string,
  layers: LoraLayerWeights[],
  opts: { base?: TrainerCheckpoint; settings: Lora2Settings; seed: number; source?: string },
): TrainerCheckpoint {
  const { base, settings, seed } = opts;
  const init = new Rng(seed ^ 0x1a7047);
  const states = layers.map((l) => adapterStateFromLayer(settings, l, init.nextU32()));
  const sameLayers =
    base !== undefined && base.layers.map((l) => l.path).join() === layers.map((l) => l.path).join();
  return {
    schemaVersion: CHECKPOINT_SCHEMA_VERSION,
    sessionId,
    step: base?.step ?? 0,
    settings: { ...base?.settings, lora: settings, importedFrom: opts.source ?? 'LoRA file' },
    rng: base?.rng ?? new Rng(seed).state(),
    layers: states,
    rankHistory: sameLayers ? base.rankHistory : [],
    lossHistory: sameLayers ? base.lossHistory : [],
    elapsedMs: base?.elapsedMs ?? 0,
  };
}
