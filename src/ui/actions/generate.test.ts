// The Generate tab's progress: its ETA leaves out each image's first sampling step (in a fresh worker that
// step compiles the UNet's pipelines, minutes on a software adapter), so it reads the steady pace.
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
const { generateImage } = await import('./generate');
const { useStudio } = await import('../studioStore');

afterEach(() => vi.restoreAllMocks());

describe('generate progress', () => {
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
});
