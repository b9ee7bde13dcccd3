// LoRA files: kohya (`lora_unet_<path>.lora_down/.lora_up/.alpha`, what ComfyUI/A1111 load) and diffusers/PEFT
// (`base_model.model.<path>.lora_A/.lora_B` + rank_pattern/alpha_pattern). Mixed per-layer ranks both ways.
// Conv layers (LoCon) are stored as both formats do: down [rank, Cin, kh, kw], up [out, rank, 1, 1].
import {
  SafetensorsReader,
  writeSafetensors,
  type SafetensorsDtype,
  type WritableTensor,
} from './safetensors';
import { bytesSource } from './sources';

/** One layer as a plain LoRA: ΔW = up · down (any scale already folded into up). */
export interface LoraLayerWeights {
  /** diffusers module path, e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`. */
  path: string;
  rank: number;
  inFeatures: number;
  outFeatures: number;
  /** [rank, in]; a conv layer's in is Cin·kh·kw (the file holds [rank, Cin, kh, kw]). */
  down: Float32Array;
  /** [out, rank] (a conv layer's file holds [out, rank, 1, 1]) */
  up: Float32Array;
  /** [kh, kw] of a conv layer (LoCon); absent for a linear one. */
  kernel?: [number, number];
}

/** File shapes of a layer's down and up tensors. */
function fileShapes(l: LoraLayerWeights): { down: number[]; up: number[] } {
  if (!l.kernel) return { down: [l.rank, l.inFeatures], up: [l.outFeatures, l.rank] };
  const [kh, kw] = l.kernel;
  if (l.inFeatures % (kh * kw) !== 0)
    throw new LoraFormatError(`${l.path}: ${l.inFeatures} inputs are not channels × a ${kh}×${kw} kernel`);
  return { down: [l.rank, l.inFeatures / (kh * kw), kh, kw], up: [l.outFeatures, l.rank, 1, 1] };
}

/** A layer read from a file: 2-D down/up (linear) or 4-D (conv, up 1×1). */
function layerFromShapes(
  name: string,
  downShape: readonly number[],
  upShape: readonly number[],
): Pick<LoraLayerWeights, 'rank' | 'inFeatures' | 'outFeatures' | 'kernel'> {
  const [rank, cin, kh, kw] = downShape;
  const [outFeatures, upRank] = upShape;
  if (downShape.length === 2 && upShape.length === 2 && upRank === rank)
    return { rank, inFeatures: cin, outFeatures };
  if (
    downShape.length === 4 &&
    upShape.length === 4 &&
    upRank === rank &&
    upShape[2] === 1 &&
    upShape[3] === 1
  )
    return { rank, inFeatures: cin * kh * kw, outFeatures, kernel: [kh, kw] };
  throw new LoraFormatError(
    `${name}: down [${downShape.join(', ')}] and up [${upShape.join(', ')}] are not a LoRA pair ` +
      '(expected [r, in] and [out, r], or [r, Cin, kh, kw] and [out, r, 1, 1])',
  );
}

export type LoraFormat = 'kohya' | 'peft';

export interface LoraFile {
  format: LoraFormat;
  layers: LoraLayerWeights[];
  metadata: Record<string, string>;
}

export class LoraFormatError extends Error {
  override name = 'LoraFormatError';
}

export const KOHYA_PREFIX = 'lora_unet_';
export const PEFT_PREFIX = 'base_model.model.';

export function kohyaName(path: string): string {
  return KOHYA_PREFIX + path.replace(/\./g, '_');
}

function ranksOf(layers: LoraLayerWeights[]): Record<string, number> {
  return Object.fromEntries(layers.map((l) => [l.path, l.rank]));
}

function checkLayer(l: LoraLayerWeights): void {
  if (l.down.length !== l.rank * l.inFeatures || l.up.length !== l.outFeatures * l.rank)
    throw new LoraFormatError(`${l.path}: down/up sizes do not match rank ${l.rank}`);
}

/**
 * kohya file: `.alpha` = rank, so the loader's alpha/rank scale is 1 and the folded up matrix is used as is.
 * Metadata carries per-layer ranks (`lora2_ranks`, JSON) and any extra settings the caller passes.
 */
export function exportKohya(
  layers: LoraLayerWeights[],
  extra: Record<string, unknown> = {},
  dtype: SafetensorsDtype = 'F32',
): Uint8Array {
  const tensors: Record<string, WritableTensor> = {};
  for (const l of layers) {
    checkLayer(l);
    const k = kohyaName(l.path);
    const shapes = fileShapes(l);
    tensors[`${k}.lora_down.weight`] = { dtype, shape: shapes.down, data: l.down };
    tensors[`${k}.lora_up.weight`] = { dtype, shape: shapes.up, data: l.up };
    tensors[`${k}.alpha`] = { dtype, shape: [], data: [l.rank] };
  }
  return writeSafetensors(tensors, {
    ss_network_module: 'networks.lora',
    ss_network_dim: String(Math.max(0, ...layers.map((l) => l.rank))),
    ss_network_alpha: String(Math.max(0, ...layers.map((l) => l.rank))),
    lora2_ranks: JSON.stringify(ranksOf(layers)),
    lora2_paths: JSON.stringify(layers.map((l) => l.path)),
    ...stringify(extra),
  });
}

/** PEFT's adapter_config.json for these layers (write it beside the weights; also embedded as metadata). */
export function peftAdapterConfig(layers: LoraLayerWeights[]): Record<string, unknown> {
  const ranks = ranksOf(layers);
  const r = Math.max(1, ...layers.map((l) => l.rank));
  return {
    peft_type: 'LORA',
    r,
    lora_alpha: r,
    target_modules: [
      ...new Set(
        layers.map((l) =>
          l.kernel
            ? l.path.split('.').pop()!
            : l.path
                .split('.')
                .slice(-2)
                .join('.')
                .replace(/^attn\d\./, ''),
        ),
      ),
    ],
    rank_pattern: ranks,
    // alpha = rank per layer: the scale alpha/r is 1 and the folded lora_B is used as is.
    alpha_pattern: ranks,
    lora_dropout: 0,
    bias: 'none',
  };
}

export function exportPeft(
  layers: LoraLayerWeights[],
  extra: Record<string, unknown> = {},
  dtype: SafetensorsDtype = 'F32',
): Uint8Array {
  const tensors: Record<string, WritableTensor> = {};
  for (const l of layers) {
    checkLayer(l);
    const shapes = fileShapes(l);
    tensors[`${PEFT_PREFIX}${l.path}.lora_A.weight`] = { dtype, shape: shapes.down, data: l.down };
    tensors[`${PEFT_PREFIX}${l.path}.lora_B.weight`] = { dtype, shape: shapes.up, data: l.up };
  }
  return writeSafetensors(tensors, {
    format: 'pt',
    adapter_config: JSON.stringify(peftAdapterConfig(layers)),
    ...stringify(extra),
  });
}

function stringify(extra: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(extra).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );
}

/**
 * Reads a kohya or PEFT LoRA. kohya names lose the dots of module paths: they are mapped back through the
 * file's own `lora2_paths` metadata, else through `knownPaths` (e.g. every linear of the UNet). Scales
 * (kohya alpha/rank, PEFT alpha_pattern/r) are folded into `up`.
 */
export async function importLora(bytes: Uint8Array, knownPaths: readonly string[] = []): Promise<LoraFile> {
  const reader = await SafetensorsReader.open(bytesSource(bytes));
  const names = [...reader.tensors.keys()];
  const metadata = { ...reader.metadata };
  if (names.some((n) => n.startsWith(KOHYA_PREFIX)))
    return { format: 'kohya', layers: await readKohya(reader, knownPaths), metadata };
  if (names.some((n) => n.startsWith(PEFT_PREFIX) || n.includes('.lora_A.')))
    return { format: 'peft', layers: await readPeft(reader), metadata };
  throw new LoraFormatError('no kohya (lora_unet_…) or PEFT (…lora_A.weight) keys in this file');
}

async function readKohya(
  reader: SafetensorsReader,
  knownPaths: readonly string[],
): Promise<LoraLayerWeights[]> {
  const paths = new Map<string, string>();
  const own = reader.metadata.lora2_paths;
  for (const p of [...knownPaths, ...(own ? (JSON.parse(own) as string[]) : [])]) paths.set(kohyaName(p), p);
  const out: LoraLayerWeights[] = [];
  for (const name of reader.tensors.keys()) {
    if (!name.endsWith('.lora_down.weight')) continue;
    const k = name.slice(0, -'.lora_down.weight'.length);
    const path = paths.get(k);
    if (!path) throw new LoraFormatError(`${k}: unknown module (not a linear or conv of this model)`);
    const upName = `${k}.lora_up.weight`;
    if (!reader.tensors.has(upName)) throw new LoraFormatError(`${k}: lora_down without lora_up`);
    const shape = layerFromShapes(k, reader.info(name).shape, reader.info(upName).shape);
    const down = await reader.readFloat32(name);
    const up = await reader.readFloat32(upName);
    const alpha = reader.tensors.has(`${k}.alpha`) ? (await reader.readFloat32(`${k}.alpha`))[0] : shape.rank;
    out.push({ path, ...shape, down, up: scaled(up, alpha / shape.rank) });
  }
  return out;
}

async function readPeft(reader: SafetensorsReader): Promise<LoraLayerWeights[]> {
  const config = reader.metadata.adapter_config
    ? (JSON.parse(reader.metadata.adapter_config) as {
        r?: number;
        lora_alpha?: number;
        alpha_pattern?: Record<string, number>;
        rank_pattern?: Record<string, number>;
      })
    : {};
  const out: LoraLayerWeights[] = [];
  for (const name of reader.tensors.keys()) {
    if (!name.endsWith('.lora_A.weight')) continue;
    const base = name.slice(0, -'.lora_A.weight'.length);
    const path = base.startsWith(PEFT_PREFIX) ? base.slice(PEFT_PREFIX.length) : base;
    const upName = `${base}.lora_B.weight`;
    if (!reader.tensors.has(upName)) throw new LoraFormatError(`${base}: lora_A without lora_B`);
    const shape = layerFromShapes(base, reader.info(name).shape, reader.info(upName).shape);
    const alpha = patternValue(config.alpha_pattern, path) ?? config.lora_alpha ?? shape.rank;
    out.push({
      path,
      ...shape,
      down: await reader.readFloat32(name),
      up: scaled(await reader.readFloat32(upName), alpha / shape.rank),
    });
  }
  return out;
}

/** PEFT pattern keys match a module path exactly or as a dotted suffix. */
function patternValue(pattern: Record<string, number> | undefined, path: string): number | undefined {
  if (!pattern) return undefined;
  if (path in pattern) return pattern[path];
  const key = Object.keys(pattern).find((k) => path.endsWith(`.${k}`));
  return key === undefined ? undefined : pattern[key];
}

function scaled(x: Float32Array, s: number): Float32Array {
  return s === 1 ? x : x.map((v) => v * s);
}
