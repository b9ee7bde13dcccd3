// Text-to-image sampling: prompt → tokenizer → text encoder (ORT) → scheduler loop with classifier-free
// guidance over the WGSL UNet (plus any adapters) → image. Pixel-space models use the identity codec.
import { noGrad } from '../autograd/tape';
import type { RgbaImage } from '../io/png';
import type { Engine } from '../tensor/engine';
import { identifiersIn } from '../train/trainSettings';
import { ModelFolderError, type ModelFolder } from './folder';
import { Rng } from './rng';
import { readSamplingDefaults, SAMPLING_FILE, type SamplingDefaults } from './sampling';
import { createSampler, guide, guidanceAt, parseSchedulerConfig, type SchedulerConfig } from './schedulers';
import { OnnxTextEncoder, type OrtOptions, type TextEmbeddings } from './textEncoder';
import type { Tokenizer } from './tokenizer';
import { loadTokenizer } from './tokenizerFolder';
import { UNet2DConditionModel } from './unet';

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
    readonly resolution: number,
    /** The folder's recommended guidance and steps (sampling.json), or the built-in ones. */
    readonly sampling: SamplingDefaults,
  ) {}

  static async load(engine: Engine, folder: ModelFolder, ort: OrtOptions = {}): Promise<DiffusionModel> {
    if (await folder.has('vae_decoder.onnx')) {
      throw new Error(
        `${folder.name}: latent models (VAE) are not supported yet; only pixel-space models load`,
      );
    }
    const unet = await UNet2DConditionModel.load(engine, folder);
    const tokenizer = await loadTokenizer(folder);
    const textEncoder = await OnnxTextEncoder.load(await folder.bytes('text_encoder.onnx'), ort);
    const scheduler = parseSchedulerConfig(
      await folder.json<Record<string, unknown>>('scheduler_config.json'),
    );
    const sampling = await readSamplingDefaults(folder);
    const size = unet.config.sampleSize?.[0] ?? 32;
    const model = new DiffusionModel(folder.name, unet, tokenizer, textEncoder, scheduler, size, sampling);
    const reserved = model.identifierTokens();
    const unknown = identifiersIn(sampling.trainPrompt ?? '').filter((t) => !reserved.includes(t));
    if (unknown.length > 0) {
      throw new ModelFolderError(
        folder.name,
        SAMPLING_FILE,
        `"trainPrompt" uses ${unknown.join(', ')}, which the tokenizer does not keep whole ` +
          `(it reserves ${reserved.length > 0 ? reserved.join(', ') : 'no identifier tokens'})`,
      );
    }
    return model;
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
    const noise = rng.normals(c.inChannels * this.resolution * this.resolution, sampler.initNoiseSigma);
    const x = await this.denoise(noise, uncond, cond, { ...opts, rng });
    return toImage(x, c.inChannels, this.resolution);
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
    const size = this.resolution;
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

/** Pixel-space codec: [-1, 1] planes (NCHW, 1 or 3 channels) → RGBA bytes. */
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
