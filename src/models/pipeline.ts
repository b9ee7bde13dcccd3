// Text-to-image sampling: prompt → tokenizer → text encoder (ORT) → scheduler loop with classifier-free
// guidance over the WGSL UNet (plus any adapters) → codec → image. Pixel-space models use the identity codec;
// latent models decode with their VAE in onnxruntime-web (codec.ts), and training photos go through its encoder.
import { noGrad } from '../autograd/tape';
import type { RgbaImage } from '../io/png';
import type { Engine } from '../tensor/engine';
import { identifiersIn } from '../train/trainSettings';
import { loadCodec, rgbaToModelInput, toImage, type ImageCodec } from './codec';
import { ModelFolderError, type ModelFolder } from './folder';
import { Rng } from './rng';
import { readSamplingDefaults, SAMPLING_FILE, type SamplingDefaults } from './sampling';
import { createSampler, guide, guidanceAt, parseSchedulerConfig, type SchedulerConfig } from './schedulers';
import { OnnxTextEncoder, type OrtOptions, type TextEmbeddings } from './textEncoder';
import type { Tokenizer } from './tokenizer';
import { loadTokenizer } from './tokenizerFolder';
import { UNet2DConditionModel, type UNetLoadOptions } from './unet';

export interface GenerateOptions {
  prompt: string;
  negativePrompt?: string;
  seed: number;
  steps: number;
  guidance: number;
  /** Apply the guidance only at timesteps ≤ this; above it the conditional prediction alone (unset: every step). */
  guidanceBelow?: number;
  sampler: 'ddim' | 'euler-a';
  /** ε from the clipped x₀ (DDIM) / x₀ clipped (Euler; SamplerOptions); unset: the model's sampling.json. */
  recomputeEpsilon?: boolean;
  onStep?: (step: number, total: number) => void;
}

/** A loaded text-to-image model: UNet on the engine, tokenizer, text encoder, scheduler settings. */
export class DiffusionModel {
  private readonly embeddingCache = new Map<string, TextEmbeddings>();

  private constructor(
    readonly name: string,
    readonly unet: UNet2DConditionModel,
    readonly tokenizer: Tokenizer,
    readonly textEncoder: OnnxTextEncoder,
    readonly scheduler: SchedulerConfig,
    /** Square image side in pixels (the UNet's sample_size × the codec's downscale). */
    readonly resolution: number,
    /** Pixels ↔ the UNet's space: the identity, or the folder's VAE. */
    readonly codec: ImageCodec,
    /** The folder's recommended guidance and steps (sampling.json), or the built-in ones. */
    readonly sampling: SamplingDefaults,
  ) {}

  static async load(
    engine: Engine,
    folder: ModelFolder,
    ort: OrtOptions = {},
    unetOptions: UNetLoadOptions = {},
  ): Promise<DiffusionModel> {
    // The small files first: a bad scheduler or sampling file is reported before gigabytes of weights load.
    const tokenizer = await loadTokenizer(folder);
    const scheduler = parseSchedulerConfig(
      await folder.json<Record<string, unknown>>('scheduler_config.json'),
    );
    const sampling = await readSamplingDefaults(folder);
    const unet = await UNet2DConditionModel.load(engine, folder, undefined, unetOptions);
    let textEncoder: OnnxTextEncoder | undefined;
    let codec: ImageCodec | undefined;
    try {
      textEncoder = await OnnxTextEncoder.load(await folder.bytes('text_encoder.onnx'), ort);
      codec = await loadCodec(folder, unet.config.inChannels, ort);
      const size = (unet.config.sampleSize?.[0] ?? 32) * codec.downscale;
      const model = new DiffusionModel(
        folder.name,
        unet,
        tokenizer,
        textEncoder,
        scheduler,
        size,
        codec,
        sampling,
      );
      model.checkTrainPrompt(folder.name);
      return model;
    } catch (e) {
      unet.params.release();
      await textEncoder?.dispose();
      await codec?.dispose();
      throw e;
    }
  }

  /** sampling.json's example prompt must use identifiers this tokenizer keeps whole. */
  private checkTrainPrompt(folderName: string): void {
    const sampling = this.sampling;
    const reserved = this.identifierTokens();
    const unknown = identifiersIn(sampling.trainPrompt ?? '').filter((t) => !reserved.includes(t));
    if (unknown.length > 0) {
      throw new ModelFolderError(
        folderName,
        SAMPLING_FILE,
        `"trainPrompt" uses ${unknown.join(', ')}, which the tokenizer does not keep whole ` +
          `(it reserves ${reserved.length > 0 ? reserved.join(', ') : 'no identifier tokens'})`,
      );
    }
  }

  /** The identifier tokens <v1>…<v8> that the tokenizer keeps as one token (reserved for personalization). */
  identifierTokens(): string[] {
    return Array.from({ length: 8 }, (_, i) => `<v${i + 1}>`).filter(
      (t) => this.tokenizer.encode(t).tokens[0] === t,
    );
  }

  /** Text embeddings [1, L, D] for a prompt (cached: prompts repeat across previews and steps). */
  async embed(prompt: string): Promise<TextEmbeddings> {
    let e = this.embeddingCache.get(prompt);
    if (!e) {
      e = await this.textEncoder.encode(this.tokenizer.encode(prompt).ids, 1);
      this.embeddingCache.set(prompt, e);
    }
    return e;
  }

  /** Renders one image. The conditional and unconditional passes run as one batch of 2. */
  async generate(opts: GenerateOptions): Promise<RgbaImage> {
    const c = this.unet.config;
    const cond = await this.embed(opts.prompt);
    const uncond = await this.embed(opts.negativePrompt ?? '');
    const sampler = createSampler(opts.sampler, this.scheduler, opts.steps);
    const rng = new Rng(opts.seed);
    const side = this.latentSize;
    const noise = rng.normals(c.inChannels * side * side, sampler.initNoiseSigma);
    const x = await this.denoise(noise, uncond, cond, { ...opts, rng });
    return toImage(await this.codec.decode(x, side), 3, this.resolution);
  }

  /** Side of the UNet's input (pixels for a pixel-space model, latent cells for a latent one). */
  get latentSize(): number {
    return this.resolution / this.codec.downscale;
  }

  /** The UNet's input shape for one image: [channels, side, side]. */
  get inputShape(): [number, number, number] {
    return [this.unet.config.inChannels, this.latentSize, this.latentSize];
  }

  /**
   * Training images in the UNet's space: RGBA at the model's resolution, composited over white, then through
   * the codec (a latent model's VAE encoder, one image at a time).
   */
  async encodeImages(
    images: readonly { data: ArrayLike<number>; width: number; height: number }[],
    onImage?: (done: number, total: number) => void,
  ): Promise<Float32Array[]> {
    const size = this.resolution;
    const out: Float32Array[] = [];
    for (const img of images) {
      if (img.width !== size || img.height !== size || img.data.length !== size * size * 4)
        throw new Error(`an image is ${img.width}×${img.height}; this model trains on ${size}×${size} RGBA`);
      out.push(await this.codec.encode(rgbaToModelInput(img.data, size, size), size));
      onImage?.(out.length, images.length);
    }
    return out;
  }

  /** Releases the UNet's GPU weights and the ORT sessions. */
  async dispose(): Promise<void> {
    this.unet.params.release();
    await this.textEncoder.dispose();
    await this.codec.dispose();
  }

  /**
   * The sampler loop from given initial noise (already scaled by the sampler's initNoiseSigma) and text
   * embeddings [1, L, D]: what generate runs after drawing its noise, open for comparing with another
   * implementation from the same noise. `inspect` sees x after each step.
   */
  async denoise(
    noise: Float32Array,
    uncond: TextEmbeddings,
    cond: TextEmbeddings,
    opts: Pick<
      GenerateOptions,
      'steps' | 'guidance' | 'guidanceBelow' | 'sampler' | 'recomputeEpsilon' | 'onStep'
    > & {
      rng: Rng;
      inspect?: (step: number, x: Float32Array) => void;
    },
  ): Promise<Float32Array> {
    const engine = this.unet.engine;
    const c = this.unet.config;
    const size = this.latentSize;
    const n = c.inChannels * size * size;
    if (noise.length !== n) throw new Error(`denoise: noise has ${noise.length} values, the UNet takes ${n}`);
    const [, len, dim] = cond.shape;
    const ehsData = new Float32Array(2 * len * dim);
    ehsData.set(uncond.data, 0);
    ehsData.set(cond.data, len * dim);
    const sampler = createSampler(opts.sampler, this.scheduler, opts.steps, {
      recomputeEpsilon: opts.recomputeEpsilon ?? this.sampling.recomputeEpsilon,
    });
    let x = noise;
    await noGrad(engine, async () => {
      const ehs = engine.keep(engine.fromArray(ehsData, [2, len, dim], { label: 'ehs' }));
      try {
        for (let i = 0; i < sampler.timesteps.length; i++) {
          const input = sampler.scaleModelInput(x, i);
          const both = new Float32Array(2 * n);
          both.set(input, 0);
          both.set(input, n);
          const out = await engine.scope(async () => {
            const sample = engine.fromArray(both, [2, c.inChannels, size, size], { label: 'sample' });
            const t = sampler.timesteps[i];
            const eps = await this.unet.forward(sample, [t, t], ehs);
            return eps.read();
          });
          const g = guidanceAt(sampler.timesteps[i], opts.guidance, opts.guidanceBelow);
          x = sampler.step(guide(out.subarray(0, n), out.subarray(n), g), i, x, opts.rng);
          opts.inspect?.(i + 1, x);
          opts.onStep?.(i + 1, sampler.timesteps.length);
        }
      } finally {
        ehs.release();
      }
    });
    return x;
  }
}
