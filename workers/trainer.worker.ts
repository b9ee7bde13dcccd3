// The trainer worker: owns the GPU device and exposes the typed TrainerApi through comlink.
import * as Comlink from 'comlink';
import { acquireBrowserGpu } from '../src/gpu/browser';
import { adapterName, compileShader, type Gpu } from '../src/gpu/device';
import { serializeGpuError } from '../src/gpu/errors';
import type { GpuInfo, InitResult, SelfTestResult, TrainerImplementation, TrainerMethod } from './api';
import { matmulSelfTest } from './selftest';
import { UrlFolder } from '../src/models/folder';
import { DiffusionModel } from '../src/models/pipeline';
import { Engine } from '../src/tensor/engine';
import type { GenerateRequest, GeneratedImage, ModelInfo } from './api';

let gpuPromise: Promise<Gpu> | undefined;

function gpu(): Promise<Gpu> {
  if (!gpuPromise) {
    gpuPromise = acquireBrowserGpu({ label: 'trainer-worker' });
    // A failed acquisition may succeed later (e.g. after the user enables WebGPU); don't cache failure.
    gpuPromise.catch(() => (gpuPromise = undefined));
  }
  return gpuPromise;
}

function describe(g: Gpu): GpuInfo {
  return { adapter: g.adapter, name: adapterName(g.adapter), features: g.features, limits: g.limits };
}

function toPlainError(e: unknown): NonNullable<SelfTestResult['error']> {
  return (
    serializeGpuError(e) ?? {
      name: (e as Error)?.name ?? 'Error',
      message: String((e as Error)?.message ?? e),
    }
  );
}

let model: { url: string; promise: Promise<DiffusionModel> } | undefined;

/** Loads (once per URL) a model folder onto the worker's device; ORT's wasm is served from /ort/. */
function loadDiffusionModel(url: string): Promise<DiffusionModel> {
  if (!model || model.url !== url) {
    const promise = gpu().then(async (g) => {
      const base = new URL(url, self.location.origin).toString();
      return DiffusionModel.load(new Engine(g), new UrlFolder(base), {
        wasmPaths: new URL('/ort/', self.location.origin).toString(),
      });
    });
    promise.catch(() => (model = undefined));
    model = { url, promise };
  }
  return model.promise;
}

const DEFAULT_MODEL_URL = '/models/emoji-tiny/';

const api: TrainerImplementation = {
  async loadModel(url: string): Promise<ModelInfo> {
    const m = await loadDiffusionModel(url);
    const identifierTokens = ['<v1>', '<v2>', '<v3>', '<v4>', '<v5>', '<v6>', '<v7>', '<v8>'].filter(
      (t) => m.tokenizer.encode(t).tokens[0] === t,
    );
    return {
      url,
      name: url.replace(/\/+$/, '').split('/').pop() ?? url,
      resolution: m.resolution,
      layers: m.unet.linearTargets().map((t) => ({
        name: t.path,
        block: t.block,
        inFeatures: t.inFeatures,
        outFeatures: t.outFeatures,
      })),
      identifierTokens,
    };
  },

  async generate(
    req: GenerateRequest,
    onStep?: (step: number, total: number) => void,
  ): Promise<GeneratedImage> {
    if (req.sessionId)
      throw new Error('Generating with a trained LoRA needs the trainer, which is not in this build yet');
    const m = await loadDiffusionModel(model?.url ?? DEFAULT_MODEL_URL);
    const img = await m.generate({
      prompt: req.prompt,
      negativePrompt: req.negativePrompt,
      seed: req.seed,
      steps: req.steps,
      guidance: req.guidance,
      sampler: req.sampler,
      onStep: onStep ? (s, n) => void onStep(s, n) : undefined,
    });
    return Comlink.transfer({ width: img.width, height: img.height, rgba: img.data }, [img.data.buffer]);
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
