// Generate actions: sample with the session's LoRA (or the base model), keep each image in the session's
// gallery in IndexedDB, delete from it.
import * as Comlink from 'comlink';
import type { GeneratedImage, GenerateRequest } from '../../../workers/api';
import { StepClock } from '../../train/eta';
import { rgbaToPng } from '../../train/photos';
import { describeError } from '../errorText';
import { sessionStore } from '../services';
import { showNotice, useStudio } from '../studioStore';
import { throttle } from '../throttle';
import { trainer } from '../trainerClient';
import { requireTrainerMethod } from '../trainerCaps';
import { noteVaeStatus } from './model';
import { sampleItem } from './session';

/**
 * Renders `requests` one after another in the worker with one progress line: steps done of all, and the time
 * left from the steady pace. Each image's first step is left out of the pace: in a fresh worker it compiles the
 * UNet's pipelines (minutes on a software adapter), and a later image's follows the previous one's decode.
 * `onImage` gets each image when it is done (its VAE status already noted).
 */
export async function renderAll(
  requests: readonly GenerateRequest[],
  report: (p: { step: number; total: number; etaMs?: number }) => void,
  onImage: (k: number, img: GeneratedImage) => Promise<void>,
): Promise<void> {
  const total = requests.reduce((a, r) => a + r.steps, 0);
  const clock = new StepClock();
  let step = 0;
  const progress = throttle(() => report({ step, total, etaMs: clock.etaMs(total - step) }), 250);
  try {
    clock.lap(performance.now(), false);
    let before = 0;
    for (const [k, r] of requests.entries()) {
      const img = await trainer().generate(
        r,
        Comlink.proxy((s: number) => {
          clock.lap(performance.now(), s === 1);
          step = before + s;
          progress.call();
        }),
      );
      before += r.steps;
      noteVaeStatus(img.vae);
      await onImage(k, img);
    }
  } finally {
    progress.cancel();
  }
}

/** Most images one Generate click renders (each seed's before/after pair counts once). */
export const MAX_IMAGES = 8;

/**
 * The renders of one Generate click: `count` images at seeds seed, seed+1, …; with `compare`, each followed by
 * the same request without the LoRA (a before/after pair).
 */
export function generateRequests(req: GenerateRequest, opts: { compare?: boolean; count?: number } = {}) {
  const count = Math.min(MAX_IMAGES, Math.max(1, Math.floor(opts.count ?? 1)));
  return Array.from({ length: count }, (_, k) => {
    const r = { ...req, seed: (req.seed + k) % 2 ** 32 };
    return opts.compare && req.sessionId ? [r, { ...r, sessionId: undefined, loraStrength: 0 }] : [r];
  }).flat();
}

/**
 * Renders `req` into the session's gallery, `count` seeds from its own. With `compare`, renders each a second
 * time without the LoRA (same seed and settings): before/after pairs, shown side by side.
 */
export async function generateImage(
  req: GenerateRequest,
  opts: { compare?: boolean; count?: number } = {},
): Promise<void> {
  const session = useStudio.getState().session;
  if (!session || useStudio.getState().generating.busy) return;
  const requests = generateRequests(req, opts);
  const total = requests.reduce((a, r) => a + r.steps, 0);
  const setGen = (g: Partial<ReturnType<typeof useStudio.getState>['generating']>) =>
    useStudio.setState((s) => ({ generating: { ...s.generating, ...g } }));
  const made: number[] = [];
  try {
    await requireTrainerMethod('generate');
    setGen({ busy: true, step: 0, total, etaMs: undefined, error: undefined });
    await renderAll(requests, setGen, async (k, img) => {
      const r = requests[k];
      const image = await rgbaToPng(img.rgba, img.width, img.height);
      const rec = {
        kind: 'generated' as const,
        prompt: r.prompt,
        request: r,
        width: img.width,
        height: img.height,
        image,
      };
      const n = await sessionStore.addSample(session.id, rec);
      made.push(n);
      const item = sampleItem(n, { ...rec, schemaVersion: 0, createdAt: Date.now() });
      useStudio.setState((s) => ({
        samples: s.session?.id === session.id ? [...s.samples, item] : s.samples,
      }));
    });
    setGen({ busy: false, step: total, total, latest: made });
  } catch (e) {
    console.error(e);
    // What was rendered before the error is kept and shown.
    setGen({ busy: false, error: describeError(e), ...(made.length ? { latest: made } : {}) });
  }
}

export async function removeSample(n: number): Promise<void> {
  const { session, samples } = useStudio.getState();
  if (!session) return;
  const s = samples.find((x) => x.n === n);
  useStudio.setState({ samples: samples.filter((x) => x.n !== n) });
  if (s) URL.revokeObjectURL(s.url);
  try {
    await sessionStore.removeSample(session.id, n);
  } catch (e) {
    showNotice(describeError(e));
  }
}
