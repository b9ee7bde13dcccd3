// UNet2DConditionModel on the WGSL engine: config-driven (diffusers config.json), weights by diffusers key
// names, forward and backward through the autograd tape, optional gradient checkpointing per block.
import * as ops from '../autograd/ops';
import { checkpoint } from '../autograd/tape';
import { SafetensorsReader } from '../io/safetensors';
import { conv2d, groupNorm, linear, resnetBlock, transformer2d } from '../nn/layers';
import { ParameterStore } from '../nn/params';
import type { Engine } from '../tensor/engine';
import type { Tensor } from '../tensor/tensor';
import { parseUNetConfig, type UNetConfig } from './config';
import type { ModelFolder } from './folder';
import { matchWeights, unetPlan, type BlockPlan, type UNetPlan } from './keys';
import type { WeightStorage } from './weightStorage';

export { WEIGHT_STORAGES, type WeightStorage } from './weightStorage';

export interface UNetForwardOptions {
  /** Recompute each block's forward during backward instead of keeping its activations. */
  gradientCheckpointing?: boolean;
  /** Called with named intermediates (diffusers module paths), for golden comparisons and debugging. */
  trace?: (name: string, t: Tensor) => Promise<void> | void;
}

/** A linear map inside the UNet that can carry an adapter (LoRA target). */
export interface LinearTarget {
  path: string;
  /** Linear: in features. Conv2d: Cin·kh·kw (an adapter's down matrix is [rank, Cin·kh·kw]). */
  inFeatures: number;
  outFeatures: number;
  block: 'down' | 'mid' | 'up';
  /** [kh, kw] when the target is a Conv2d (LoCon); absent for a Linear. */
  kernel?: [number, number];
}

export interface UNetLoadOptions {
  weights?: WeightStorage;
}

/**
 * Whether a weight of `rank` stored as `fileDType` goes to the GPU as f16 under `mode` (before the range check):
 * only a linear map's [out, in] or a convolution's [out, in, kh, kw] weight, which the f16 kernels read.
 */
export function storesAsF16(name: string, rank: number, fileDType: string, mode: WeightStorage): boolean {
  const product = name.endsWith('.weight') && (rank === 2 || rank === 4);
  return product && (mode === 'f16' || (mode === 'auto' && fileDType !== 'F32' && fileDType !== 'F64'));
}

/** f16's largest finite value: magnitudes that round past it would become ±Inf. */
const F16_MAX = 65504;

function fitsF16(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!(Math.abs(values[i]) <= F16_MAX)) return false;
  return true;
}

/** Sinusoidal timestep embedding as diffusers' get_timestep_embedding (max_period 10000). */
export function timestepEmbedding(
  timesteps: ArrayLike<number>,
  dim: number,
  flipSinToCos: boolean,
  freqShift: number,
): Float32Array {
  const half = dim >> 1;
  const out = new Float32Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    for (let j = 0; j < half; j++) {
      // Computed in float32 steps like torch, so the embedding matches the reference bit-for-bit-ish.
      const freq = Math.fround(Math.exp(Math.fround((-Math.log(10000) * j) / (half - freqShift))));
      const arg = Math.fround(timesteps[b] * freq);
      const s = Math.sin(arg);
      const c = Math.cos(arg);
      out[b * dim + j] = flipSinToCos ? c : s;
      out[b * dim + half + j] = flipSinToCos ? s : c;
    }
  }
  return out;
}

export class UNet2DConditionModel {
  readonly plan: UNetPlan;

  constructor(
    readonly engine: Engine,
    readonly config: UNetConfig,
    readonly params: ParameterStore,
  ) {
    this.plan = unetPlan(config);
    if (config.actFn !== 'silu') throw new Error(`UNet act_fn ${config.actFn} is not supported`);
  }

  /** Loads config.json and unet.safetensors (any float dtype; frozen; storage per `opts.weights`). */
  static async load(
    engine: Engine,
    folder: ModelFolder,
    file = 'unet.safetensors',
    opts: UNetLoadOptions = {},
  ): Promise<UNet2DConditionModel> {
    const config = parseUNetConfig(await folder.json('config.json'));
    const source = await folder.source(file);
    try {
      const reader = await SafetensorsReader.open(source);
      return await UNet2DConditionModel.fromReader(engine, config, reader, opts);
    } finally {
      // The weights are on the GPU now (or loading failed): let go of the file handle.
      await source.close?.();
    }
  }

  /** Checks every key and shape against the config first, then uploads the weights one tensor at a time. */
  static async fromReader(
    engine: Engine,
    config: UNetConfig,
    reader: SafetensorsReader,
    opts: UNetLoadOptions = {},
  ): Promise<UNet2DConditionModel> {
    const matched = matchWeights(config, reader.tensors);
    const tensors = new Map<string, Tensor>();
    const mode = opts.weights ?? 'auto';
    try {
      await engine.untracked(async () => {
        for (const [name, info] of matched) {
          const o = { label: name, exact: true };
          const fileDType = reader.info(name).dtype;
          const half = storesAsF16(name, info.shape.length, fileDType, mode);
          let t: Tensor;
          if (half && fileDType === 'F16') {
            t = engine.fromHalves((await reader.readTyped(name)) as Uint16Array, info.shape, o);
          } else {
            const values = await reader.readFloat32(name);
            // Past f16's range a weight would become ±Inf: such a tensor stays f32.
            t = engine.fromArray(values, info.shape, {
              ...o,
              dtype: half && fitsF16(values) ? 'f16' : 'f32',
            });
          }
          tensors.set(name, t);
        }
      });
    } catch (e) {
      for (const t of tensors.values()) t.release();
      throw e;
    }
    return new UNet2DConditionModel(engine, config, new ParameterStore(tensors));
  }

  /** GPU bytes of the weights, and how many tensors are stored as f16 and as f32. */
  weightStorage(): { bytes: number; f16: number; f32: number } {
    let bytes = 0;
    let f16 = 0;
    for (const t of this.params.tensors.values()) {
      bytes += t.byteSize;
      if (t.dtype === 'f16') f16++;
    }
    return { bytes, f16, f32: this.params.tensors.size - f16 };
  }

  /**
   * Every linear map and convolution inside the down/mid/up blocks an adapter can attach to, filtered by name
   * patterns (default: the attention projections). Convolutions carry their kernel size.
   */
  linearTargets(patterns: RegExp[] = [/\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$/]): LinearTarget[] {
    const out: LinearTarget[] = [];
    for (const [name, t] of this.params.tensors) {
      if (!name.endsWith('.weight') || (t.rank !== 2 && t.rank !== 4)) continue;
      const path = name.slice(0, -'.weight'.length);
      if (!patterns.some((re) => re.test(path))) continue;
      const block = /^(down|mid|up)_block/.exec(path)?.[1] as LinearTarget['block'] | undefined;
      if (!block) continue;
      if (t.rank === 2) out.push({ path, inFeatures: t.shape[1], outFeatures: t.shape[0], block });
      else {
        const [cout, cin, kh, kw] = t.shape;
        out.push({ path, inFeatures: cin * kh * kw, outFeatures: cout, block, kernel: [kh, kw] });
      }
    }
    return out;
  }

  /** ε (or v) prediction for sample [B, C, H, W] at per-item timesteps, conditioned on ehs [B, S, D]. */
  async forward(
    sample: Tensor,
    timesteps: ArrayLike<number>,
    ehs: Tensor,
    opts: UNetForwardOptions = {},
  ): Promise<Tensor> {
    const c = this.config;
    const p = this.params;
    const e = this.engine;
    if (sample.rank !== 4 || sample.shape[1] !== c.inChannels) {
      throw new Error(`UNet input ${sample} must be [batch, ${c.inChannels}, H, W]`);
    }
    const batch = sample.shape[0];
    if (timesteps.length !== batch) throw new Error(`${timesteps.length} timesteps for batch ${batch}`);
    const levels = c.blockOutChannels.length;
    const div = 2 ** (levels - 1);
    if (sample.shape[2] % div || sample.shape[3] % div) {
      throw new Error(`UNet input ${sample.shape[2]}×${sample.shape[3]} must be divisible by ${div}`);
    }
    const groups = c.normNumGroups;
    const eps = c.normEps;

    const tproj = e.fromArray(
      timestepEmbedding(timesteps, c.blockOutChannels[0], c.flipSinToCos, c.freqShift),
      [batch, c.blockOutChannels[0]],
      { label: 'time_proj' },
    );
    const temb = await linear(
      p,
      'time_embedding.linear_2',
      await ops.silu(await linear(p, 'time_embedding.linear_1', tproj)),
    );
    const trace = opts.trace ?? (() => undefined);
    await trace('time_proj', tproj);
    await trace('time_embedding', temb);
    // Every resnet applies SiLU to temb before its projection: do it once.
    const tembAct = await ops.silu(temb);

    const run = async (fn: (...xs: Tensor[]) => Promise<Tensor[]>, inputs: Tensor[]): Promise<Tensor[]> =>
      opts.gradientCheckpointing ? checkpoint(fn, inputs) : fn(...inputs);

    let x = await conv2d(p, 'conv_in', sample);
    await trace('conv_in', x);
    const skips: Tensor[] = [x];
    for (const block of this.plan.down) {
      const outs = await run((h, t, s) => this.downBlock(block, h, t, s, groups, eps), [x, tembAct, ehs]);
      skips.push(...outs);
      x = outs[outs.length - 1];
      await trace(block.path, x);
    }
    if (this.plan.mid) {
      const mid = this.plan.mid;
      [x] = await run(async (h, t, s) => [await this.midBlock(mid, h, t, s, groups, eps)], [x, tembAct, ehs]);
      await trace(mid.path, x);
    }
    for (const block of this.plan.up) {
      const k = block.resnets.length;
      const mine = skips.splice(skips.length - k, k);
      [x] = await run(
        async (h, t, s, ...sk) => [await this.upBlock(block, h, sk, t, s, groups, eps)],
        [x, tembAct, ehs, ...mine],
      );
      await trace(block.path, x);
    }
    x = await ops.silu(await groupNorm(p, 'conv_norm_out', x, groups, eps));
    return conv2d(p, 'conv_out', x);
  }

  private async downBlock(
    b: BlockPlan,
    x: Tensor,
    temb: Tensor,
    ehs: Tensor,
    groups: number,
    eps: number,
  ): Promise<Tensor[]> {
    const outs: Tensor[] = [];
    for (let j = 0; j < b.resnets.length; j++) {
      x = await resnetBlock(this.params, `${b.path}.resnets.${j}`, x, temb, b.resnets[j], groups, eps);
      if (b.attentions.length) {
        x = await transformer2d(
          this.params,
          `${b.path}.attentions.${j}`,
          x,
          ehs,
          b.attentions[j],
          groups,
          this.config.useLinearProjection,
        );
      }
      outs.push(x);
    }
    if (b.downsample) {
      x = await conv2d(this.params, `${b.path}.downsamplers.0.conv`, x, 2);
      outs.push(x);
    }
    return outs;
  }

  private async midBlock(
    b: BlockPlan,
    x: Tensor,
    temb: Tensor,
    ehs: Tensor,
    groups: number,
    eps: number,
  ): Promise<Tensor> {
    x = await resnetBlock(this.params, `${b.path}.resnets.0`, x, temb, b.resnets[0], groups, eps);
    x = await transformer2d(
      this.params,
      `${b.path}.attentions.0`,
      x,
      ehs,
      b.attentions[0],
      groups,
      this.config.useLinearProjection,
    );
    return resnetBlock(this.params, `${b.path}.resnets.1`, x, temb, b.resnets[1], groups, eps);
  }

  private async upBlock(
    b: BlockPlan,
    x: Tensor,
    skips: Tensor[],
    temb: Tensor,
    ehs: Tensor,
    groups: number,
    eps: number,
  ): Promise<Tensor> {
    for (let j = 0; j < b.resnets.length; j++) {
      // Skips are consumed last-pushed first; the current features come first in the concatenation.
      x = await ops.concat([x, skips[skips.length - 1 - j]]);
      x = await resnetBlock(this.params, `${b.path}.resnets.${j}`, x, temb, b.resnets[j], groups, eps);
      if (b.attentions.length) {
        x = await transformer2d(
          this.params,
          `${b.path}.attentions.${j}`,
          x,
          ehs,
          b.attentions[j],
          groups,
          this.config.useLinearProjection,
        );
      }
    }
    if (b.upsample)
      x = await conv2d(this.params, `${b.path}.upsamplers.0.conv`, await ops.upsampleNearest2x(x));
    return x;
  }
}
