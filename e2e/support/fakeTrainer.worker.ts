// A stand-in trainer worker for the UI flow e2e test: the full TrainerApi with a fake model and a loop
// that emits LoRA²-shaped progress, previews and checkpoints (in the same IndexedDB store the real trainer
// uses), honours pause/stop, resumes from its last checkpoint, and loses its "device" once (at step 7)
// when the seed is 13. It checks the studio, not the training; the real trainer is tested in src/.
import * as Comlink from 'comlink';
import { createStore, get, keys, set } from 'idb-keyval';
import { previewPromptOf } from '../../src/train/trainSettings';
import type { GeneratedImage, ModelInfo, TrainerApi, TrainProgress } from '../../workers/api';

const store = createStore('lora2-studio', 'kv');
const STEP_MS = 60;
const LAYERS: ModelInfo['layers'] = [
  ...[0, 1].flatMap((b) =>
    ['to_q', 'to_k', 'to_v'].map((p) => ({
      name: `down_blocks.${b}.attentions.0.transformer_blocks.0.attn1.${p}`,
      block: 'down' as const,
      inFeatures: 64,
      outFeatures: 64,
    })),
  ),
  ...['to_q', 'to_k'].map((p) => ({
    name: `mid_block.attentions.0.transformer_blocks.0.attn2.${p}`,
    block: 'mid' as const,
    inFeatures: 128,
    outFeatures: 128,
  })),
  ...[0, 1].flatMap((b) =>
    ['to_q', 'to_v'].map((p) => ({
      name: `up_blocks.${b}.attentions.0.transformer_blocks.0.attn1.${p}`,
      block: 'up' as const,
      inFeatures: 64,
      outFeatures: 64,
    })),
  ),
];

let request: 'pause' | 'stop' | undefined;
let lostOnce = false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A gradient that depends on the seed and, through its green, on `tint` (which LoRA drew it). */
function image(seed: number, size = 32, tint = 0): GeneratedImage {
  const t = tint;
  const rgba = new Uint8ClampedArray(size * size * 4);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 4;
      rgba.set([(x * 8 + seed * 40) % 256, (y * 8 + t) % 256, (seed * 90) % 256, 255], o);
    }
  return { width: size, height: size, rgba };
}

async function checkpoints(sessionId: string): Promise<{ step: number; bytes: number }[]> {
  const ks = (await keys(store)).map(String).filter((k) => k.startsWith(`ckpt:${sessionId}:`));
  return ks.map((k) => ({ step: Number(k.split(':')[2]), bytes: 64 * 4 }));
}

const api: TrainerApi = {
  async init() {
    return {
      ok: true as const,
      gpu: {
        adapter: {
          vendor: 'fake',
          architecture: '',
          device: '',
          description: 'fake trainer',
          isFallback: true,
        },
        name: 'fake trainer',
        features: { shaderF16: false, subgroups: false, timestampQuery: false },
        limits: {},
      },
    };
  },
  async selfTest() {
    return { ok: true, what: 'fake trainer in a worker', maxAbsError: 0, elapsedMs: 1 };
  },
  async loseDevice() {
    return undefined;
  },
  async compileCheck() {
    return undefined;
  },
  async capabilities() {
    return Object.keys(api) as (keyof TrainerApi)[];
  },
  async loadModel(url) {
    return {
      url,
      name: 'fake-tiny',
      resolution: 32,
      layers: LAYERS,
      identifierTokens: ['<v1>', '<v2>'],
      sampling: {
        guidance: 2.5,
        steps: 25,
        recomputeEpsilon: true,
        trainPrompt: '<v1> dog face',
        source: 'sampling.json' as const,
      },
    };
  },
  async startTraining(sessionId, images, settings, onProgress, onPreview) {
    if (images.length === 0 || images.some((i) => i.rgba.length !== 32 * 32 * 4)) {
      throw new Error(
        `expected 32×32 RGBA images, got ${images.map((i) => `${i.width}×${i.height}`).join(', ')}`,
      );
    }
    request = undefined;
    const done = await checkpoints(sessionId);
    let step = done.length ? Math.max(...done.map((c) => c.step)) : 0;
    const t0 = performance.now();
    const progress = (state: TrainProgress['state'], extra: Partial<TrainProgress> = {}): TrainProgress => {
      // The fixed-rank baseline keeps its rank and ends a little higher (the Compare panel tells them apart).
      const fixed = settings.mode === 'fixed';
      const ranks = LAYERS.map((l, i) =>
        fixed ? settings.fixedRank : Math.max(1, Math.round(4 + (i % 5) * (1 - Math.exp(-step / 8)))),
      );
      return {
        sessionId,
        step,
        total: settings.steps,
        loss: 0.3 * Math.exp(-step / 20) + 0.02 * ((step * 7) % 3) + (fixed ? 0.05 : 0),
        layers: LAYERS.map((l, i) => ({
          name: l.name,
          rank: ranks[i],
          capacity: 8,
          rate: Math.log(10) / ranks[i],
        })),
        contributions:
          step % 2 === 0
            ? ranks.map((r) => Array.from({ length: 8 }, (_, i) => Math.exp(-i / r)))
            : undefined,
        adapterBytes: ranks.reduce((a, r) => a + r * 128 * 4, 0),
        fixedRankBytes: LAYERS.length * settings.maxRank * 128 * 4,
        peakGpuBytes: 0,
        stepMs: STEP_MS,
        elapsedMs: performance.now() - t0,
        etaMs: (settings.steps - step) * STEP_MS,
        state,
        ...extra,
      };
    };
    while (step < settings.steps) {
      await sleep(STEP_MS);
      if (request) {
        const state = request === 'pause' ? 'paused' : 'stopped';
        await set(`ckpt:${sessionId}:${step}`, { sessionId, step, a: new Float32Array(64) }, store);
        request = undefined;
        onProgress(progress(state));
        return;
      }
      step++;
      if (settings.seed === 13 && step === 7 && !lostOnce) {
        lostOnce = true;
        onProgress(
          progress('error', {
            error: {
              name: 'DeviceLostError',
              kind: 'device-lost',
              message: 'The GPU device was lost (unknown): fake driver reset.',
              advice:
                'The GPU driver reset or the GPU was taken away. Training can resume from the last checkpoint.',
            },
          }),
        );
        return;
      }
      if (step % settings.checkpointEvery === 0) {
        await set(`ckpt:${sessionId}:${step}`, { sessionId, step, a: new Float32Array(64) }, store);
      }
      onProgress(progress('running'));
      if (settings.previewEvery && step % settings.previewEvery === 0) {
        onPreview({ sessionId, step, prompt: previewPromptOf(settings), image: image(step) });
      }
    }
    onProgress(progress('done'));
  },
  async pause() {
    request = 'pause';
  },
  async stop() {
    request = 'stop';
  },
  async generate(req, onStep) {
    for (let s = 1; s <= req.steps; s++) {
      await sleep(10);
      onStep?.(s, req.steps);
    }
    // With a session's LoRA the picture's green shifts by the session's mode (LoRA² 80, fixed rank 160).
    const session =
      req.sessionId && req.loraStrength !== 0 ? await get(`session:${req.sessionId}`, store) : undefined;
    const mode = (session as { settings?: { mode?: string } } | undefined)?.settings?.mode;
    return image(req.seed + 1, 48, mode === undefined ? 0 : mode === 'fixed' ? 160 : 80);
  },
  async exportLora(sessionId, format) {
    if (!(await checkpoints(sessionId)).length) throw new Error('nothing trained yet');
    const header = JSON.stringify({
      __metadata__: { format },
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight': {
        dtype: 'F32',
        shape: [1, 4],
        data_offsets: [0, 16],
      },
    });
    const h = new TextEncoder().encode(header);
    const out = new Uint8Array(8 + h.length + 16);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    return out;
  },
  async importLora(sessionId, bytes) {
    await set(`ckpt:${sessionId}:1`, { sessionId, bytes }, store);
  },
  listCheckpoints: checkpoints,
};
Comlink.expose(api);
