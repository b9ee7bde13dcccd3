// Image codecs: how a model's UNet space relates to pixels. Pixel-space models (emoji-tiny) use the identity;
// latent models (Stable Diffusion-class) ship a VAE as two ONNX files run in onnxruntime-web, as the text
// encoder is: vae_encoder.onnx (pixels [B, 3, H, W] in [−1, 1] → the latent distribution's mean ‖ logvar, or the
// mean alone) and vae_decoder.onnx (latents [B, L, h, w] → pixels), with diffusers' vae/config.json beside them
// as vae_config.json (scaling_factor, latent_channels, block_out_channels). The UNet works on latents × scaling.
import * as ort from 'onnxruntime-web';
import type { RgbaImage } from '../io/png';
import { f16ToFloat32, float32ToF16 } from '../io/safetensors';
import { EpFallback, type EpBackend, type EpStatus } from './epFallback';
import { ModelFolderError, type ModelFolder } from './folder';
import { openOrtSession, type OrtOptions } from './textEncoder';

export const VAE_ENCODER_FILE = 'vae_encoder.onnx';
export const VAE_DECODER_FILE = 'vae_decoder.onnx';
export const VAE_CONFIG_FILE = 'vae_config.json';

/** Pixels ↔ the UNet's space, one image at a time ([C, H, W] planes, row-major). */
export interface ImageCodec {
  /** 'pixel' (identity) or 'vae'. */
  readonly kind: 'pixel' | 'vae';
  /** Channels of the UNet's space (3 for pixels, latent_channels for a VAE). */
  readonly channels: number;
  /** Pixels per latent cell along each side (1 for pixels). */
  readonly downscale: number;
  /** Whether encode works (a folder may ship only the decoder: it samples but cannot train). */
  readonly canEncode: boolean;
  /** [3, size, size] pixels in [−1, 1] → [channels, size/downscale, size/downscale]. */
  encode(pixels: Float32Array, size: number): Promise<Float32Array>;
  /** [channels, side, side] → [3, side·downscale, side·downscale] pixels in about [−1, 1]. */
  decode(x: Float32Array, side: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export class CodecError extends Error {
  override name = 'CodecError';
}

/**
 * RGBA bytes (row-major, straight alpha) → [3, H, W] in [−1, 1], composited over white: a transparent PNG's
 * background trains as white, as the default model's emoji were composited (never as the black that transparent
 * pixels hold). Opaque pixels are unchanged.
 */
export function rgbaToModelInput(rgba: ArrayLike<number>, width: number, height: number): Float32Array {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    const a = rgba[i * 4 + 3] / 255;
    for (let c = 0; c < 3; c++) out[c * plane + i] = (rgba[i * 4 + c] * a + 255 * (1 - a)) / 127.5 - 1;
  }
  return out;
}

/** [−1, 1] planes (1 or 3 channels, [C, size, size]) → opaque RGBA bytes. */
export function toImage(x: Float32Array, channels: number, size: number): RgbaImage {
  const data = new Uint8ClampedArray(size * size * 4);
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = x[(channels === 1 ? 0 : ch) * plane + i];
      data[i * 4 + ch] = Math.round((Math.max(-1, Math.min(1, v)) + 1) * 127.5);
    }
    data[i * 4 + 3] = 255;
  }
  return { width: size, height: size, data };
}

/** The identity: the UNet works on pixels (channels 3, or 1 for a grey model). */
export class PixelCodec implements ImageCodec {
  readonly kind = 'pixel';
  readonly downscale = 1;
  readonly canEncode = true;
  constructor(readonly channels: number) {}

  async encode(pixels: Float32Array, size: number): Promise<Float32Array> {
    if (pixels.length !== 3 * size * size)
      throw new CodecError(`encode: ${pixels.length} values are not a 3×${size}×${size} image`);
    if (this.channels === 3) return pixels;
    // A grey model: the mean of the three planes.
    const plane = size * size;
    const out = new Float32Array(plane);
    for (let i = 0; i < plane; i++) out[i] = (pixels[i] + pixels[plane + i] + pixels[2 * plane + i]) / 3;
    return out;
  }

  async decode(x: Float32Array, side: number): Promise<Float32Array> {
    if (this.channels === 3) return x;
    const plane = side * side;
    const out = new Float32Array(3 * plane);
    for (let c = 0; c < 3; c++) out.set(x.subarray(0, plane), c * plane);
    return out;
  }

  async dispose(): Promise<void> {}
}

/** What the codec takes from vae_config.json (diffusers' AutoencoderKL config). */
export interface VaeConfig {
  scalingFactor: number;
  latentChannels: number;
  /** 2^(number of blocks − 1): SD's four blocks give 8. */
  downscale: number;
}

/** Reads vae_config.json; diffusers' defaults (SD 1.5's VAE) for keys it lacks. */
export function parseVaeConfig(folderName: string, raw: unknown): VaeConfig {
  const fail = (msg: string) => new ModelFolderError(folderName, VAE_CONFIG_FILE, msg);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail('must be a JSON object');
  const o = raw as Record<string, unknown>;
  const scalingFactor = o.scaling_factor ?? 0.18215;
  if (typeof scalingFactor !== 'number' || !(scalingFactor > 0) || !Number.isFinite(scalingFactor))
    throw fail(`"scaling_factor" must be a positive number (got ${JSON.stringify(o.scaling_factor)})`);
  const latentChannels = o.latent_channels ?? 4;
  if (typeof latentChannels !== 'number' || !Number.isInteger(latentChannels) || latentChannels < 1)
    throw fail(`"latent_channels" must be a positive integer (got ${JSON.stringify(o.latent_channels)})`);
  const blocks = o.block_out_channels ?? [128, 256, 512, 512];
  if (!Array.isArray(blocks) || blocks.length < 1 || blocks.length > 6)
    throw fail(
      `"block_out_channels" must be a list of 1 to 6 widths (got ${JSON.stringify(o.block_out_channels)})`,
    );
  if (o.shift_factor !== undefined && o.shift_factor !== null && o.shift_factor !== 0)
    throw fail('"shift_factor" is not supported (SD 1.5/2.x-class VAEs have none)');
  return { scalingFactor, latentChannels, downscale: 2 ** (blocks.length - 1) };
}

/** The tensor types a VAE part may take and give: fp16 exports (as web ports ship SD's VAE) use float16. */
type VaeDtype = 'float32' | 'float16';

interface OrtPart {
  session: ort.InferenceSession;
  input: string;
  output: string;
  /** What the input takes: the studio converts its float32 at this boundary. */
  inputType: VaeDtype;
}

/** A part's declared input type; float32 when the model does not say (ONNX always does, for a tensor). */
function declaredInputType(file: string, session: ort.InferenceSession): VaeDtype {
  const meta = session.inputMetadata?.[0];
  if (!meta || !meta.isTensor) return 'float32';
  if (meta.type === 'float32' || meta.type === 'float16') return meta.type;
  throw new CodecError(`${file} takes a ${meta.type} input; a VAE part takes float32 or float16 images`);
}

async function openPart(
  file: string,
  bytes: Uint8Array,
  opts: OrtOptions,
  names: string[],
): Promise<OrtPart> {
  const session = await openOrtSession(bytes, opts, (why) => new CodecError(`${file} ${why}`));
  if (session.inputNames.length !== 1)
    throw new CodecError(
      `${file} has ${session.inputNames.length} inputs; a VAE part takes one image tensor`,
    );
  const output = names.find((n) => session.outputNames.includes(n)) ?? session.outputNames[0];
  try {
    return { session, input: session.inputNames[0], output, inputType: declaredInputType(file, session) };
  } catch (e) {
    await session.release();
    throw e;
  }
}

/** A part's output as float32 values with its dims ([1, C, H, W]). */
interface PartOutput {
  data: Float32Array;
  dims: readonly number[];
}

async function runPart(file: string, part: OrtPart, data: Float32Array, dims: number[]): Promise<PartOutput> {
  // float16 goes in as its bit patterns (Uint16Array): onnxruntime-web takes them with or without Float16Array.
  const input =
    part.inputType === 'float16'
      ? new ort.Tensor('float16', float32ToF16(data), dims)
      : new ort.Tensor('float32', data, dims);
  let out: ort.InferenceSession.OnnxValueMapType;
  try {
    out = await part.session.run({ [part.input]: input });
  } catch (e) {
    throw new CodecError(
      `${file} failed on a ${part.inputType} [${dims}] input: ${(e as Error).message ?? e}`,
    );
  }
  const t = out[part.output];
  if (!t || (t.type !== 'float32' && t.type !== 'float16') || t.dims.length !== 4)
    throw new CodecError(
      `${file}: output ${part.output} is ${t?.type} [${t?.dims}], expected float32 or float16 [1, C, H, W]`,
    );
  return { data: outputFloat32(t), dims: t.dims };
}

/** A float32 or float16 tensor's values as float32 (float16 arrives as bits, or as a Float16Array where one exists). */
function outputFloat32(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  const data = t.data as unknown;
  return data instanceof Uint16Array ? f16ToFloat32(data) : Float32Array.from(data as ArrayLike<number>);
}

/** The VAE's two ONNX sessions (a decoder-only folder has no encoder). */
interface VaeParts {
  encoder?: OrtPart;
  decoder: OrtPart;
}

async function releaseParts(p: VaeParts): Promise<void> {
  await p.encoder?.session.release();
  await p.decoder.session.release();
}

/**
 * A VAE in onnxruntime-web: the encoder's mean × scaling_factor in, latents ÷ scaling_factor out. Asked for the
 * WebGPU EP, it moves to WASM when that EP does not start or fails while running (EpFallback).
 */
export class OnnxVaeCodec implements ImageCodec {
  readonly kind = 'vae';

  private constructor(
    private readonly config: VaeConfig,
    private readonly parts: EpFallback<VaeParts>,
  ) {}

  get channels(): number {
    return this.config.latentChannels;
  }
  get downscale(): number {
    return this.config.downscale;
  }
  get canEncode(): boolean {
    return this.parts.current.encoder !== undefined;
  }
  /** The execution provider the VAE runs on now. */
  get backend(): EpBackend {
    return this.parts.backend;
  }
  /** Why the VAE is not on the WebGPU EP when that was asked for. */
  get fallbackReason(): string | undefined {
    return this.parts.fallbackReason;
  }
  /** Both, as the worker reports them. */
  get status(): EpStatus {
    return this.parts.status;
  }

  static async load(folder: ModelFolder, opts: OrtOptions = {}): Promise<OnnxVaeCodec> {
    const config = (await folder.has(VAE_CONFIG_FILE))
      ? parseVaeConfig(folder.name, await folder.json(VAE_CONFIG_FILE))
      : parseVaeConfig(folder.name, {});
    const hasEncoder = await folder.has(VAE_ENCODER_FILE);
    // The files are read again for a move to WASM rather than held: an SD VAE is hundreds of MB.
    const open = async (ep: EpBackend): Promise<VaeParts> => {
      const o = { ...opts, executionProviders: [ep] };
      /** A float16 part on a WebGPU adapter without shader-f16: onnxruntime-web would compute it wrong. */
      const refuseF16 = (file: string, part: OrtPart) => {
        if (ep === 'webgpu' && part.inputType === 'float16' && opts.webgpuShaderF16 === false)
          throw new CodecError(`${file} is float16 and this adapter has no shader-f16`);
      };
      const decoder = await openPart(VAE_DECODER_FILE, await folder.bytes(VAE_DECODER_FILE), o, ['sample']);
      let encoder: OrtPart | undefined;
      try {
        refuseF16(VAE_DECODER_FILE, decoder);
        if (hasEncoder) {
          encoder = await openPart(VAE_ENCODER_FILE, await folder.bytes(VAE_ENCODER_FILE), o, [
            'latent_parameters',
            'latent_sample',
            'latent_dist',
          ]);
          refuseF16(VAE_ENCODER_FILE, encoder);
        }
        return { encoder, decoder };
      } catch (e) {
        await releaseParts({ encoder, decoder });
        throw e;
      }
    };
    return new OnnxVaeCodec(config, await EpFallback.start(opts.vae ?? 'wasm', open, releaseParts));
  }

  async encode(pixels: Float32Array, size: number): Promise<Float32Array> {
    if (!this.canEncode)
      throw new CodecError(`this model has no ${VAE_ENCODER_FILE}: it can sample but not train on photos`);
    if (pixels.length !== 3 * size * size)
      throw new CodecError(`encode: ${pixels.length} values are not a 3×${size}×${size} image`);
    if (size % this.downscale !== 0)
      throw new CodecError(`encode: ${size} px is not a multiple of the VAE's ${this.downscale}`);
    const t = await this.parts.run('encoding', (p) =>
      runPart(VAE_ENCODER_FILE, p.encoder!, pixels, [1, 3, size, size]),
    );
    const L = this.channels;
    const side = size / this.downscale;
    const [, c, h, w] = t.dims;
    if (h !== side || w !== side || (c !== L && c !== 2 * L))
      throw new CodecError(
        `${VAE_ENCODER_FILE} gave [${t.dims}] for a ${size} px image; expected [1, ${L} or ${2 * L} (mean ‖ logvar), ` +
          `${side}, ${side}] from vae_config.json (latent_channels ${L}, ${this.downscale}× down)`,
      );
    // mean ‖ logvar: the mean (the first L planes) is the deterministic encoding.
    const mean = t.data.subarray(0, L * side * side);
    return mean.map((v) => v * this.config.scalingFactor);
  }

  async decode(x: Float32Array, side: number): Promise<Float32Array> {
    const L = this.channels;
    if (x.length !== L * side * side)
      throw new CodecError(`decode: ${x.length} values are not ${L}×${side}×${side} latents`);
    const scaled = x.map((v) => v / this.config.scalingFactor);
    const t = await this.parts.run('decoding', (p) =>
      runPart(VAE_DECODER_FILE, p.decoder, scaled, [1, L, side, side]),
    );
    const size = side * this.downscale;
    if (t.dims[1] !== 3 || t.dims[2] !== size || t.dims[3] !== size)
      throw new CodecError(
        `${VAE_DECODER_FILE} gave [${t.dims}] for ${side}×${side} latents; expected [1, 3, ${size}, ${size}]`,
      );
    return t.data.slice();
  }

  async dispose(): Promise<void> {
    await this.parts.dispose();
  }
}

/** The folder's codec: a VAE when it ships vae_decoder.onnx, else the identity on the UNet's channels. */
export async function loadCodec(
  folder: ModelFolder,
  unetChannels: number,
  opts: OrtOptions = {},
): Promise<ImageCodec> {
  if (!(await folder.has(VAE_DECODER_FILE))) {
    if (await folder.has(VAE_ENCODER_FILE))
      throw new ModelFolderError(
        folder.name,
        VAE_DECODER_FILE,
        `is missing (the folder has ${VAE_ENCODER_FILE})`,
      );
    if (unetChannels !== 3 && unetChannels !== 1)
      throw new ModelFolderError(
        folder.name,
        'config.json',
        `in_channels is ${unetChannels}: a latent model needs ${VAE_DECODER_FILE} (and ${VAE_ENCODER_FILE} to train); ` +
          'a pixel-space model has 3 (or 1)',
      );
    return new PixelCodec(unetChannels);
  }
  const vae = await OnnxVaeCodec.load(folder, opts);
  if (vae.channels !== unetChannels) {
    await vae.dispose();
    throw new ModelFolderError(
      folder.name,
      'config.json',
      `in_channels is ${unetChannels} but the VAE has ${vae.channels} latent channels (vae_config.json)`,
    );
  }
  return vae;
}
