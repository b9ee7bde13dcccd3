// The Generate tab: its ETA leaves out each image's first sampling step (in a fresh worker that step compiles
// the UNet's pipelines, minutes on a software adapter), so it reads the steady pace; one click renders `count`
// seeds, each with its before/after pair.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { GenerateRequest } from '../../../workers/api';
import { memoryKeyValueStore, SessionStore } from '../../train/sessionStore';

let now = 0;
/** Wall time of sampling step s: the first of an image compiles (60 s), the rest take 1 s. */
const stepMs = (s: number) => (s === 1 ? 60_000 : 1_000);

vi.mock('../services', () => ({ sessionStore: new SessionStore(memoryKeyValueStore()) }));
vi.mock('../trainerCaps', () => ({ requireTrainerMethod: async () => undefined }));
vi.mock('../../train/photos', () => ({ rgbaToPng: async () => new Blob([new Uint8Array(4)]) }));
vi.mock('../trainerClient', () => ({
  trainer: () => ({
    async generate(req: GenerateRequest, onStep: (s: number, n: number) => void) {
      for (let s = 1; s <= req.steps; s++) {
        now += stepMs(s);
        onStep(s, req.steps);
      }
      return { width: 1, height: 1, rgba: new Uint8ClampedArray(4) };
    },
  }),
}));

const { sessionStore } = await import('../services');
const { generateImage, generateRequests, MAX_IMAGES } = await import('./generate');
const { useStudio } = await import('../studioStore');

afterEach(() => vi.restoreAllMocks());

describe('generate', () => {
  it('has no ETA until a step after an image’s first; then the steady pace × steps left', async () => {
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const session = await sessionStore.create({ name: 'g' });
    useStudio.setState({ session });
    const seen: { step: number; etaMs?: number }[] = [];
    const unsubscribe = useStudio.subscribe((s, prev) => {
      const g = s.generating;
      if (g !== prev.generating && g.busy && g.step > 0) seen.push({ step: g.step, etaMs: g.etaMs });
    });
    const req = {
      sessionId: session.id,
      prompt: 'dog face',
      seed: 1,
      steps: 4,
      guidance: 5,
    } as GenerateRequest;
    await generateImage(req, { compare: true });
    unsubscribe();
    // Two images of 4 steps: the second image's first step (step 5) is left out as well.
    expect(seen).toEqual([
      { step: 1, etaMs: undefined },
      { step: 2, etaMs: 6 * 1_000 },
      { step: 3, etaMs: 5 * 1_000 },
      { step: 4, etaMs: 4 * 1_000 },
      { step: 5, etaMs: 3 * 1_000 },
      { step: 6, etaMs: 2 * 1_000 },
      { step: 7, etaMs: 1 * 1_000 },
      { step: 8, etaMs: 0 },
    ]);
    expect(useStudio.getState().generating).toMatchObject({ busy: false, step: 8, total: 8 });
    expect(useStudio.getState().generating.latest).toHaveLength(2);
  });

  it('renders `count` seeds from the form’s, each with its before/after pair, all kept in the gallery', async () => {
    const req = { sessionId: 's', prompt: 'dog face', seed: 7, steps: 2, guidance: 5, loraStrength: 1 };
    const plan = generateRequests(req as GenerateRequest, { compare: true, count: 3 });
    expect(plan.map((r) => [r.seed, r.sessionId ?? 'base', r.loraStrength])).toEqual([
      [7, 's', 1],
      [7, 'base', 0],
      [8, 's', 1],
      [8, 'base', 0],
      [9, 's', 1],
      [9, 'base', 0],
    ]);
    expect(
      generateRequests({ ...req, sessionId: undefined } as GenerateRequest, { compare: true, count: 2 }),
    ).toHaveLength(2);
    expect(generateRequests(req as GenerateRequest, { count: 99 })).toHaveLength(MAX_IMAGES);
    expect(
      generateRequests({ ...req, seed: 2 ** 32 - 1 } as GenerateRequest, { count: 2 }).map((r) => r.seed),
    ).toEqual([2 ** 32 - 1, 0]);

    const session = await sessionStore.create({ name: 'count' });
    useStudio.setState({ session, samples: [] });
    await generateImage({ ...req, sessionId: session.id } as GenerateRequest, { compare: true, count: 2 });
    expect(useStudio.getState().generating).toMatchObject({ busy: false, step: 8, total: 8 });
    expect(useStudio.getState().generating.latest).toHaveLength(4);
    expect(
      useStudio.getState().samples.map((s) => [s.request?.seed, s.request?.sessionId ? 'lora' : 'base']),
    ).toEqual([
      [7, 'lora'],
      [7, 'base'],
      [8, 'lora'],
      [8, 'base'],
    ]);
    expect(await sessionStore.samples(session.id)).toHaveLength(4);
  });
});
