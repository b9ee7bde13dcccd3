// The trainer worker: owns the GPU device and exposes the typed TrainerApi through comlink.
import * as Comlink from 'comlink';
import { createStore } from 'idb-keyval';
import { acquireBrowserGpu } from '../src/gpu/browser';
import { adapterName, compileShader, type Gpu } from '../src/gpu/device';
import { serializeGpuError } from '../src/gpu/errors';
import { exportKohya, exportPeft, importLora as readLoraFile } from '../src/io/lora';
import { lora2Settings, plainLayerFromState } from '../src/lora/adapter';
import { UrlFolder } from '../src/models/folder';
import { DiffusionModel } from '../src/models/pipeline';
import { NoiseSchedule } from '../src/models/schedulers';
import type { WeightStorage } from '../src/models/weightStorage';
import { Engine } from '../src/tensor/engine';
import { idbCheckpointStore } from '../src/train/checkpoint';
import { etaWithPreviews } from '../src/train/eta';
import { captionProblem, promptEmbeddings } from '../src/train/captions';
import { classTrainData, idbClassImageCache } from '../src/train/classImages';
import { attachLora, checkLayersFit, checkpointFromLora } from '../src/train/loraCheckpoint';
import { DB_NAME, STORE_NAME } from '../src/train/sessionStore';
import { Trainer, type TrainData } from '../src/train/trainer';
import { OnnxVaeCodec } from '../src/models/codec';
import { LOCAL_SCHEME, OpfsFolder } from '../src/models/localModels';
import { LATENT_CROP_MESSAGE, previewPromptOf } from '../src/train/trainSettings';
import { trainerConfig } from '../src/train/trainerConfig';
import type {
  GenerateRequest,
  GeneratedImage,
  GpuInfo,
  InitResult,
  ModelInfo,
  PreviewEvent,
  SelfTestResult,
  TrainerImplementation,
  TrainerMethod,
  TrainingImage,
  TrainProgress,
  TrainSettings,
  VaeBackend,
  VaeStatus,
  WorkerError,
} from './api';
import { matmulSelfTest } from './selftest';

let gpuPromise: Promise<Gpu> | undefined;

function gpu(): Promise<Gpu> {
  if (!gpuPromise) {
    const p = acquireBrowserGpu({ label: 'trainer-worker' }).then((g) => {
      // A lost device takes the model (its weights and pipelines) with it: the next call starts afresh.
      void g.lost.then(() => {
        if (gpuPromise === p) gpuPromise = undefined;
        if (model?.gpu === g) model = undefined;
        // Their buffers went with the device: nothing left to release or to count.
        for (const e of loaded) if (e.gpu === g) loaded.delete(e);
      });
      return g;
    });
    // A failed acquisition may succeed later (e.g. after the user enables WebGPU); don't cache failure.
    p.catch(() => {
      if (gpuPromise === p) gpuPromise = undefined;
    });
    gpuPromise = p;
  }
  return gpuPromise;
}

function describe(g: Gpu): GpuInfo {
  return { adapter: g.adapter, name: adapterName(g.adapter), features: g.features, limits: g.limits };
}

function toPlainError(e: unknown): WorkerError {
  return (
    serializeGpuError(e) ?? {
      name: (e as Error)?.name ?? 'Error',
      message: String((e as Error)?.message ?? e),
    }
  );
}

/**
 * Runs a trainer method and throws its error as plain data: comlink would pass an Error as name + message
 * only, and the UI needs the typed GPU errors' kind and advice.
 */
async function plainErrors<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    throw toPlainError(e);
  }
}

interface ModelEntry {
  url: string;
  vae: VaeBackend;
  /** How the UNet's frozen weights are stored on the GPU (`?weights=` in the studio's address; f16 by default). */
  weights: WeightStorage;
  gpu?: Gpu;
  promise: Promise<DiffusionModel>;
  /** Runs, generations and imports using it now (holdModel). */
  users: number;
  /** Replaced by another model: released when its last user ends. */
  retired?: boolean;
}
let model: ModelEntry | undefined;

/** Entries whose model may hold GPU memory: the current one and replaced ones not yet released. */
const loaded = new Set<ModelEntry>();

/** Frees a replaced model's GPU weights, buffers and ORT sessions (an imported SD-class model holds gigabytes). */
function release(entry: ModelEntry): void {
  entry.promise.then(
    async (m) => {
      await m.dispose();
      m.unet.engine.destroy();
      loaded.delete(entry);
    },
    () => loaded.delete(entry),
  );
}

/** GPU bytes the worker's models hold now (weights and pooled buffers of every engine not yet released). */
async function modelGpuBytes(): Promise<number> {
  let bytes = 0;
  for (const e of loaded) {
    if (e.retired && e.users === 0) continue; // being released
    const m = await e.promise.catch(() => undefined);
    if (m && loaded.has(e)) bytes += m.unet.engine.stats().allocatedBytes;
  }
  return bytes;
}

/**
 * The entry of a model folder on the worker's device, loading it (once per URL, VAE backend and weight storage)
 * when it is not the current one; the one it replaces is released when nothing uses it. onnxruntime-web's bundle
 * finds its wasm by itself (the build emits it as an asset beside the worker); a wasmPaths prefix would also move
 * its .mjs.
 */
function modelEntry(url: string, vae: VaeBackend, weights: WeightStorage): ModelEntry {
  if (!model || model.url !== url || model.vae !== vae || model.weights !== weights) {
    const previous = model;
    const entry: ModelEntry = {
      url,
      vae,
      weights,
      users: 0,
      promise: gpu().then(async (g) => {
        entry.gpu = g;
        // An imported model (local:NAME) is read from the origin-private file system, the others over HTTP.
        const folder = url.startsWith(LOCAL_SCHEME)
          ? await OpfsFolder.open(await navigator.storage.getDirectory(), url.slice(LOCAL_SCHEME.length))
          : new UrlFolder(new URL(url, self.location.origin).toString());
        // A latent model's VAE on onnxruntime-web's WebGPU EP (its own device on the adapter), else WASM. The
        // frozen linear/conv weights are kept in f16 unless asked otherwise, as diffusers' and kohya's LoRA
        // scripts cast the frozen UNet to fp16: half the GPU memory of an F32 file (an F16 file's values are
        // unchanged).
        const ort = { vae, webgpuShaderF16: g.features.shaderF16 };
        return DiffusionModel.load(new Engine(g), folder, ort, { weights });
      }),
    };
    entry.promise.catch(() => {
      if (model === entry) model = undefined;
      loaded.delete(entry);
    });
    loaded.add(entry);
    model = entry;
    if (previous) {
      previous.retired = true;
      if (previous.users === 0) release(previous);
    }
  }
  return model;
}

/** Frozen weights in f16 unless the studio asks otherwise. */
const DEFAULT_WEIGHTS: WeightStorage = 'f16';

const DEFAULT_MODEL_URL = '/models/emoji-tiny/';

/**
 * The model loadModel loaded last (the default one when none was asked for), held until `letGo`: a model that
 * another session's loadModel replaces meanwhile stays on the device until its last user lets go.
 */
async function holdModel(): Promise<{ m: DiffusionModel; letGo: () => void }> {
  const entry = model ?? modelEntry(DEFAULT_MODEL_URL, 'webgpu', DEFAULT_WEIGHTS);
  entry.users++;
  let held = true;
  const letGo = () => {
    if (!held) return;
    held = false;
    entry.users--;
    if (entry.retired && entry.users === 0) release(entry);
  };
  try {
    return { m: await entry.promise, letGo };
  } catch (e) {
    letGo();
    throw e;
  }
}

// ---- training ---------------------------------------------------------------------------------------------

/** Checkpoints live beside the studio's sessions (`ckpt:<session>:<step>`), so deleting a session drops them. */
const checkpoints = idbCheckpointStore(createStore(DB_NAME, STORE_NAME));
/** Prior preservation's class images, drawn once per model, class prompt and count. */
const classImageCache = idbClassImageCache(createStore(DB_NAME, STORE_NAME));

/** Sampling steps of the class images (DDIM); their guidance is the model's recommended one (sampling.json). */
const CLASS_IMAGE_STEPS = 20;

/** Sampling steps of a training preview (DDIM): enough to see the subject appear, cheap beside training. The
 * guidance is the model's recommended one. */
const PREVIEW_STEPS = 10;

/** The run in progress; pause/stop requests wait here until its trainer exists. */
interface ActiveRun {
  sessionId: string;
  trainer?: Trainer;
  request?: 'pause' | 'stop';
}
let activeRun: ActiveRun | undefined;

/**
 * Photos at the model's resolution → model input (a latent model's VAE encoder, with progress: on a software
 * adapter or WASM an SD-size encode takes seconds per photo); the prompt → its text embedding.
 */
async function trainData(
  m: DiffusionModel,
  images: TrainingImage[],
  settings: TrainSettings,
  onEncoded: (done: number, total: number) => void,
): Promise<TrainData> {
  const size = m.resolution;
  if (images.length === 0) throw new Error('Training needs at least one photo.');
  if (m.codec.kind === 'vae' && settings.minCrop < 1) throw new Error(LATENT_CROP_MESSAGE);
  for (const img of images) {
    if (img.width !== size || img.height !== size || img.rgba.length !== size * size * 4)
      throw new Error(
        `${img.name} is ${img.width}×${img.height}; this model trains on ${size}×${size} RGBA.`,
      );
  }
  for (const img of images) {
    const problem = img.caption ? captionProblem(img.caption, m.identifierTokens()) : undefined;
    if (problem) throw new Error(`${img.name}: ${problem}`);
  }
  return {
    images: await m.encodeImages(
      images.map((img) => ({ ...img, data: img.rgba })),
      m.codec.kind === 'vae' ? onEncoded : undefined,
    ),
    imageShape: m.inputShape,
    ...(await promptEmbeddings(
      (p) => m.embed(p),
      settings.prompt,
      images.map((img) => img.caption),
    )),
  };
}

/** A progress event before the trainer exists (step 0, no layers yet). */
function emptyProgress(sessionId: string, total: number): TrainProgress {
  return {
    sessionId,
    step: 0,
    total,
    loss: Number.NaN,
    layers: [],
    adapterBytes: 0,
    fixedRankBytes: 0,
    peakGpuBytes: 0,
    stepMs: 0,
    elapsedMs: 0,
    state: 'running',
  };
}

/** When the device was lost, the typed device-lost error explains a failure better than its symptom does. */
async function causeOf(e: unknown, g: Gpu | undefined): Promise<unknown> {
  if (!g) return e;
  const lost =
    g.lostError ?? (await Promise.race([g.lost, new Promise<undefined>((r) => setTimeout(r, 250))]));
  return lost ?? e;
}

/** A callback through comlink answers with a promise; one that fails (the page went away) is no error here. */
function notify(call: () => unknown): void {
  void Promise.resolve(call()).catch(() => undefined);
}

/**
 * Trains in chunks that end at preview steps (the UNet samples a preview between them); the last progress
 * event sent is always terminal (paused, stopped, done or error) and goes out before this resolves.
 */
async function train(
  sessionId: string,
  images: TrainingImage[],
  settings: TrainSettings,
  onProgress: (p: TrainProgress) => void,
  onPreview: (p: PreviewEvent) => void,
): Promise<void> {
  if (activeRun) throw new Error(`Training is already running (session ${activeRun.sessionId}).`);
  const run: ActiveRun = { sessionId };
  activeRun = run;
  let g: Gpu | undefined;
  let last: TrainProgress | undefined;
  // The latest preview's wall time: the ETA counts the previews still to come at that pace.
  let previewMs: number | undefined;
  const progress = (p: TrainProgress) => {
    last = p;
    const event = {
      ...p,
      etaMs: etaWithPreviews(p.etaMs, p.step, p.total, settings.previewEvery, previewMs),
    };
    notify(() => onProgress(event));
  };
  let letGo: (() => void) | undefined;
  try {
    const held = await holdModel();
    letGo = held.letGo;
    const m = held.m;
    g = model?.gpu;
    const config = trainerConfig(sessionId, settings);
    const preparing = (what: string) => (done: number, total: number) =>
      notify(() =>
        onProgress({ ...emptyProgress(sessionId, settings.steps), preparing: { what, done, total } }),
      );
    const data = await trainData(m, images, settings, preparing('Encoding photos with the VAE'));
    const classPrompt = settings.classPrompt.trim();
    if (classPrompt) {
      // Before the trainer attaches its adapters: these are the base model's pictures of the class.
      Object.assign(
        data,
        await classTrainData(
          m,
          {
            model: model?.url ?? DEFAULT_MODEL_URL,
            prompt: classPrompt,
            count: settings.classImages,
            steps: CLASS_IMAGE_STEPS,
            guidance: m.sampling.guidance,
          },
          classImageCache,
          preparing(`Drawing class images of “${classPrompt}”`),
        ),
      );
    }
    const schedule = new NoiseSchedule(m.scheduler);
    const trainer = await Trainer.create(m.unet.engine, m.unet, schedule, data, config, checkpoints);
    run.trainer = trainer;
    // The first step of a fresh worker compiles its pipelines: minutes on a software adapter, with no step
    // event until it ends.
    if (trainer.step < config.steps) preparing('First step: compiling the GPU shaders the first time')(0, 0);
    try {
      let state: TrainProgress['state'] = 'running';
      while (state === 'running') {
        if (run.request) {
          // Asked while the trainer was being built or a preview sampled: the checkpoint is current.
          state = run.request === 'pause' ? 'paused' : 'stopped';
          progress(last ? { ...last, state, contributions: undefined } : trainer.progress(state));
          break;
        }
        if (trainer.step >= config.steps) {
          // Resumed at (or past) the last step: nothing to train.
          state = 'done';
          progress(trainer.progress(state));
          break;
        }
        const every = settings.previewEvery;
        const previewAt = every > 0 ? (Math.floor(trainer.step / every) + 1) * every : undefined;
        state = await trainer.run(progress, { untilStep: previewAt });
        // A pause or stop at a preview step ends the run now, without the preview.
        if (trainer.step === previewAt && (state === 'running' || state === 'done')) {
          const t0 = performance.now();
          await preview(m, trainer, settings, onPreview);
          previewMs = performance.now() - t0;
        }
      }
    } catch (e) {
      const error = toPlainError(await causeOf(e, g));
      progress({ ...trainer.progress('error'), error });
    } finally {
      trainer.release();
    }
  } catch (e) {
    throw await causeOf(e, g);
  } finally {
    activeRun = undefined;
    letGo?.();
  }
}

/** `{ vae }` with where a latent model's VAE runs now; nothing for a pixel model. */
function vaeStatus(m: DiffusionModel): { vae?: VaeStatus } {
  return m.codec instanceof OnnxVaeCodec ? { vae: m.codec.status } : {};
}

/** Samples the preview prompt with the adapters as they are now (they stay attached to the UNet). */
async function preview(
  m: DiffusionModel,
  trainer: Trainer,
  settings: TrainSettings,
  onPreview: (p: PreviewEvent) => void,
): Promise<void> {
  const prompt = previewPromptOf(settings);
  const img = await m.generate({
    prompt,
    seed: settings.seed,
    steps: PREVIEW_STEPS,
    guidance: m.sampling.guidance,
    sampler: 'ddim',
  });
  // Sampling uploaded the importance vectors without gradients; training uploads its own.
  for (const a of trainer.adapters) a.releaseImportance();
  const image = { width: img.width, height: img.height, rgba: img.data, ...vaeStatus(m) };
  const event = { sessionId: trainer.config.sessionId, step: trainer.step, prompt, image };
  notify(() => onPreview(Comlink.transfer(event, [img.data.buffer])));
}

/** The session's latest checkpoint as plain LoRA layers (scales folded in, each at its own rank). */
async function sessionLayers(sessionId: string) {
  const ckpt = await checkpoints.get(sessionId);
  if (!ckpt) throw new Error('This session has no trained LoRA yet: train it or import a LoRA first.');
  return { ckpt, layers: ckpt.layers.map((l) => plainLayerFromState(ckpt.settings.lora, l)) };
}

/** Attaches the session's LoRA to the UNet at `strength`; returns the detach. */
async function attachSessionLora(m: DiffusionModel, sessionId: string, strength: number) {
  const { layers } = await sessionLayers(sessionId);
  return attachLora(m.unet, layers, strength);
}

const api: TrainerImplementation = {
  async loadModel(url: string, opts: { vae?: VaeBackend; weights?: WeightStorage } = {}): Promise<ModelInfo> {
    const m = await modelEntry(url, opts.vae ?? 'webgpu', opts.weights ?? DEFAULT_WEIGHTS).promise;
    return {
      url,
      name: url.startsWith(LOCAL_SCHEME)
        ? url.slice(LOCAL_SCHEME.length)
        : (url.replace(/\/+$/, '').split('/').pop() ?? url),
      resolution: m.resolution,
      codec: m.codec.kind,
      ...vaeStatus(m),
      layers: m.unet.linearTargets().map((t) => ({
        name: t.path,
        block: t.block,
        inFeatures: t.inFeatures,
        outFeatures: t.outFeatures,
      })),
      identifierTokens: m.identifierTokens(),
      sampling: { ...m.sampling },
      gpuBytes: await modelGpuBytes(),
      weights: m.unet.weightStorage(),
    };
  },

  async generate(
    req: GenerateRequest,
    onStep?: (step: number, total: number) => void,
  ): Promise<GeneratedImage> {
    return plainErrors(async () => {
      // The run's adapters sit on the same UNet: sampling between its steps would mix the two.
      if (activeRun) throw new Error('Training is running: pause it to generate images.');
      const { m, letGo } = await holdModel();
      let detach: (() => void) | undefined;
      try {
        if (req.sessionId && req.loraStrength !== 0)
          detach = await attachSessionLora(m, req.sessionId, req.loraStrength);
        const img = await m.generate({
          prompt: req.prompt,
          negativePrompt: req.negativePrompt,
          seed: req.seed,
          steps: req.steps,
          guidance: req.guidance,
          guidanceBelow: req.guidanceBelow,
          sampler: req.sampler,
          recomputeEpsilon: req.recomputeEpsilon,
          onStep: onStep ? (s, n) => notify(() => onStep(s, n)) : undefined,
        });
        return Comlink.transfer({ width: img.width, height: img.height, rgba: img.data, ...vaeStatus(m) }, [
          img.data.buffer,
        ]);
      } finally {
        detach?.();
        letGo();
      }
    });
  },

  async startTraining(sessionId, images, settings, onProgress, onPreview) {
    return plainErrors(() => train(sessionId, images, settings, onProgress, onPreview));
  },

  async pause() {
    if (!activeRun) return;
    activeRun.request ??= 'pause';
    activeRun.trainer?.pause();
  },

  async stop() {
    if (!activeRun) return;
    activeRun.request = 'stop';
    activeRun.trainer?.stop();
  },

  async exportLora(sessionId, format) {
    return plainErrors(async () => {
      const { ckpt, layers } = await sessionLayers(sessionId);
      const extra = { lora2_settings: ckpt.settings.lora, steps: ckpt.step };
      const bytes = format === 'peft' ? exportPeft(layers, extra) : exportKohya(layers, extra);
      return Comlink.transfer(bytes, [bytes.buffer]);
    });
  },

  async importLora(sessionId, bytes) {
    return plainErrors(async () => {
      // The run would write its next checkpoint over the imported one.
      if (activeRun?.sessionId === sessionId)
        throw new Error('Training is running: pause it to import a LoRA.');
      const { m, letGo } = await holdModel();
      let targets;
      try {
        targets = m.unet.linearTargets([/./]);
      } finally {
        letGo();
      }
      const file = await readLoraFile(
        bytes,
        targets.map((t) => t.path),
      );
      checkLayersFit(file.layers, targets);
      const base = await checkpoints.get(sessionId);
      const settings = base?.settings.lora ?? lora2Settings();
      const seed = Number(base?.settings.seed ?? 0);
      await checkpoints.put(
        checkpointFromLora(sessionId, file.layers, { base, settings, seed, source: `${file.format} file` }),
      );
    });
  },

  async listCheckpoints(sessionId) {
    return plainErrors(() => checkpoints.list(sessionId));
  },

  async init(): Promise<InitResult> {
    try {
      return { ok: true, gpu: describe(await gpu()) };
    } catch (e) {
      const error = serializeGpuError(e);
      if (error) return { ok: false, error };
      throw e;
    }
  },

  async selfTest(): Promise<SelfTestResult> {
    try {
      const r = await matmulSelfTest(await gpu());
      return {
        ok: r.maxAbsError < 1e-4,
        what: `matmul ${r.m}×${r.k} · ${r.k}×${r.n} on WebGPU in a worker`,
        maxAbsError: r.maxAbsError,
        elapsedMs: r.elapsedMs,
      };
    } catch (e) {
      return { ok: false, what: 'matmul self-test', maxAbsError: NaN, elapsedMs: 0, error: toPlainError(e) };
    }
  },

  async loseDevice() {
    const g = await gpu();
    gpuPromise = undefined;
    g.destroy();
    return serializeGpuError(await g.lost);
  },

  async compileCheck(code: string) {
    try {
      await compileShader((await gpu()).device, 'compile-check', code);
      return undefined;
    } catch (e) {
      return toPlainError(e) as ReturnType<typeof serializeGpuError>;
    }
  },

  async capabilities() {
    return (Object.keys(api) as TrainerMethod[]).filter((k) => typeof api[k] === 'function');
  },
};

Comlink.expose(api);
