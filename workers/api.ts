// The typed surface between the UI and the trainer worker (comlink). Everything crossing it is plain data
// (structured-clone safe); callbacks are passed wrapped in Comlink.proxy.
import type { GpuAdapterSummary, GpuCapabilities } from '../src/gpu/device';
import type { SerializedGpuError } from '../src/gpu/errors';
import type { TargetPreset } from '../src/lora/adapter';
import type { EpBackend, EpStatus } from '../src/models/epFallback';
import type { SamplingDefaults } from '../src/models/sampling';
import type { WeightStorage } from '../src/models/weightStorage';

export interface GpuInfo {
  adapter: GpuAdapterSummary;
  name: string;
  features: GpuCapabilities;
  limits: Record<string, number>;
}

export type InitResult = { ok: true; gpu: GpuInfo } | { ok: false; error: SerializedGpuError };

export interface SelfTestResult {
  ok: boolean;
  /** What ran, e.g. "matmul 37×29 · 29×41 on WebGPU in a worker". */
  what: string;
  maxAbsError: number;
  elapsedMs: number;
  error?: WorkerError;
}

/** Any error crossing the worker boundary: typed GPU errors keep kind/advice; others name and message. */
export type WorkerError =
  SerializedGpuError | { name: string; message: string; kind?: string; advice?: string };

// ---- models ---------------------------------------------------------------------------------------------

/** Where a latent model's VAE runs, and why not on WebGPU when that was asked for (a sentence). */
export type VaeStatus = EpStatus;
/** Where a latent model's VAE runs (onnxruntime-web's execution provider). */
export type VaeBackend = EpBackend;

export interface ModelInfo {
  /** Folder URL the model was loaded from, e.g. "/models/emoji-tiny/". */
  url: string;
  name: string;
  /** Square training/sampling resolution in pixels. */
  resolution: number;
  /** The UNet's space: pixels, or a VAE's latents (vae_encoder.onnx / vae_decoder.onnx; absent in older workers). */
  codec?: 'pixel' | 'vae';
  /** A latent model's VAE: the onnxruntime-web EP it runs on, and why not WebGPU when that was asked for. */
  vae?: VaeStatus;
  /** LoRA target layers (diffusers module paths), in UNet order, with the block they belong to. */
  layers: { name: string; block: 'down' | 'mid' | 'up'; inFeatures: number; outFeatures: number }[];
  /** Identifier tokens reserved for personalization, e.g. ["<v1>", …]. */
  identifierTokens: string[];
  /** Recommended guidance and steps: the folder's sampling.json, or built-in values ("built-in"). */
  sampling: SamplingDefaults;
  /**
   * GPU bytes the worker's models hold when this one is loaded (every engine's weights and pooled buffers): a
   * model another session loaded before is released once nothing uses it, so this is about one model's worth.
   */
  gpuBytes?: number;
  /** The UNet's frozen weights on the GPU: bytes, and how many tensors are stored as f16 and as f32. */
  weights?: { bytes: number; f16: number; f32: number };
}

// ---- training -------------------------------------------------------------------------------------------

export interface TrainSettings {
  /** Instance prompt with identifier and class word, e.g. "a <v1> dog face". */
  prompt: string;
  steps: number;
  batchSize: number;
  /** AdamW learning rate of the A factors. */
  learningRate: number;
  /** AdamW learning rate of the B factors (older sessions: the same as learningRate). */
  learningRateB: number;
  /** Learning rate of the LoRA² rate parameters ρ. */
  rateLearningRate: number;
  /** 'lora2' = adaptive rank; 'fixed' = fixed-rank LoRA baseline at `fixedRank`. */
  mode: 'lora2' | 'fixed';
  fixedRank: number;
  maxRank: number;
  initialRank: number;
  /** Prior rank r₀ (μ is the rate whose k-quantile is r₀). */
  priorRank: number;
  /** Prior width σ on the rate λ: smaller = stronger prior. */
  priorSigma: number;
  /** Quantile mass k for the effective rank. */
  quantile: number;
  seed: number;
  /** Sample a preview every N steps (0 = never). */
  previewEvery: number;
  /** What the previews draw ("" = the training prompt), e.g. the subject somewhere new. */
  previewPrompt: string;
  /** Save a checkpoint every N steps. */
  checkpointEvery: number;
  /**
   * Which layers get adapters: the attention projections, or those plus every ResNet 3×3 convolution (LoCon).
   * Absent in sessions saved before it existed: attention.
   */
  layers?: TargetPreset;
  /** Micro-batches whose gradients make one optimizer step. */
  gradientAccumulation: number;
  /**
   * Recompute each UNet block's activations in the backward pass instead of keeping them: less GPU memory,
   * longer steps. Absent in sessions saved before it existed: off.
   */
  gradientCheckpointing?: boolean;
  /** Learning-rate schedule after the warm-up. */
  lrSchedule: 'constant' | 'cosine';
  /** Linear warm-up steps of every learning rate. */
  warmupSteps: number;
  /** Random left–right flip of the photos. */
  flip: boolean;
  /** Random crop: smallest side as a fraction of the photo (1 = off). */
  minCrop: number;
  /** Prior preservation: the class prompt ("" = off); the base model draws classImages pictures of it once. */
  classPrompt: string;
  classImages: number;
  /** λ: weight of the class images' loss. */
  priorLossWeight: number;
}

/** One photo, already decoded, oriented and cropped to the model's resolution (RGBA, row-major). */
export interface TrainingImage {
  name: string;
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
  /** The photo's own training prompt; absent: the session's prompt. */
  caption?: string;
}

export interface LayerRankState {
  name: string;
  /** Effective rank D_ℓ. */
  rank: number;
  /** Allocated capacity C_ℓ ≥ D_ℓ. */
  capacity: number;
  /** Rate λ_ℓ = softplus(ρ_ℓ). */
  rate: number;
}

export interface TrainProgress {
  sessionId: string;
  step: number;
  total: number;
  /**
   * Work before the first step while it runs, `what` in words with its verb ("Encoding photos with the VAE",
   * "Drawing class images of “dog”"): the UI shows "what: done of total", or "what…" when total is 0 (the
   * first step, compiling the GPU shaders, has no count).
   */
  preparing?: { what: string; done: number; total: number };
  loss: number;
  /** Prior-preservation (class) loss of the step, when the run has class images. */
  classLoss?: number;
  layers: LayerRankState[];
  /** Per layer, per position i < capacity: f(i)·‖B[:,i]‖·‖A[i,:]‖ (sent every few steps; else undefined). */
  contributions?: number[][];
  /** Per layer, per position i < D: the importance s·f(i) (LoRA²) or α/r (fixed rank); sent with contributions. */
  importance?: number[][];
  adapterBytes: number;
  /** Adapter bytes of a fixed-rank LoRA at maxRank on the same layers, for comparison. */
  fixedRankBytes: number;
  peakGpuBytes: number;
  stepMs: number;
  elapsedMs: number;
  /** Time left (training and previews); undefined until a step ran without compiling GPU pipelines. */
  etaMs?: number;
  state: 'running' | 'paused' | 'done' | 'stopped' | 'error';
  error?: WorkerError;
}

export interface GeneratedImage {
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
  /** A latent model's VAE after this render: it moves to WASM if the WebGPU EP fails while decoding. */
  vae?: VaeStatus;
}

export interface PreviewEvent {
  sessionId: string;
  step: number;
  prompt: string;
  image: GeneratedImage;
}

export interface GenerateRequest {
  prompt: string;
  negativePrompt?: string;
  seed: number;
  steps: number;
  guidance: number;
  /** Guide only at timesteps ≤ this, the prompt alone above (a guidance interval); unset: every step. */
  guidanceBelow?: number;
  sampler: 'ddim' | 'euler-a';
  /** ε from the clipped x₀ (DDIM) / x₀ clipped (Euler) (true), or as diffusers (false); unset: the model's sampling.json. */
  recomputeEpsilon?: boolean;
  /** Session whose LoRA to apply (latest checkpoint), or none for the base model. */
  sessionId?: string;
  loraStrength: number;
}

export interface SessionSummary {
  id: string;
  name: string;
  createdAt: number;
  updatedAt: number;
  step: number;
  totalSteps: number;
  mode: TrainSettings['mode'];
  bytes: number;
  state: 'new' | 'running' | 'paused' | 'done' | 'stopped';
}

export interface TrainerApi {
  /** Acquires the worker's GPU device (idempotent). */
  init(): Promise<InitResult>;
  /** Runs a small compute shader on the worker's device and checks it against JavaScript. */
  selfTest(): Promise<SelfTestResult>;
  /** Destroys the device and reports the resulting device-lost error (diagnostics and tests). */
  loseDevice(): Promise<SerializedGpuError | undefined>;
  /** Compiles a WGSL module and reports compile errors as the typed error (diagnostics and tests). */
  compileCheck(code: string): Promise<SerializedGpuError | undefined>;
  /** Names of the methods this worker build implements (the UI asks before offering a feature). */
  capabilities(): Promise<TrainerMethod[]>;

  // ---- trainer (implemented in the worker as they land; `capabilities()` says which exist) ----
  /** Loads a model folder (config, weights, tokenizer) onto the worker's device. */
  /** Loads a model folder; `opts.vae` picks the VAE's EP ('webgpu' by default in the worker, 'wasm' to force). */
  loadModel(url: string, opts?: { vae?: VaeBackend; weights?: WeightStorage }): Promise<ModelInfo>;
  /** Trains until done, paused or stopped; resumes from the session's last checkpoint when one exists. */
  startTraining(
    sessionId: string,
    images: TrainingImage[],
    settings: TrainSettings,
    onProgress: (p: TrainProgress) => void,
    onPreview: (p: PreviewEvent) => void,
  ): Promise<void>;
  /** Pauses after the current step (a checkpoint is written); `startTraining` resumes. */
  pause(): Promise<void>;
  /** Stops after the current step (a checkpoint is written). */
  stop(): Promise<void>;
  generate(req: GenerateRequest, onStep?: (step: number, total: number) => void): Promise<GeneratedImage>;
  /** The session's LoRA as .safetensors bytes (kohya keys, or diffusers/PEFT with rank_pattern). */
  exportLora(sessionId: string, format: 'kohya' | 'peft'): Promise<Uint8Array>;
  /** Reads a LoRA .safetensors (kohya or PEFT) into the session as its latest checkpoint. */
  importLora(sessionId: string, bytes: Uint8Array): Promise<void>;
  listCheckpoints(sessionId: string): Promise<{ step: number; bytes: number }[]>;
}

export type TrainerMethod = keyof TrainerApi;

/** What a worker build must implement now; the trainer methods are added one by one as they land. */
export type TrainerImplementation = Pick<
  TrainerApi,
  'init' | 'selfTest' | 'loseDevice' | 'compileCheck' | 'capabilities'
> &
  Partial<TrainerApi>;
