// Generate actions: sample with the session's LoRA (or the base model), keep each image in the session's
// gallery in IndexedDB, delete from it.
import * as Comlink from 'comlink';
import type { GenerateRequest } from '../../../workers/api';
import { rgbaToPng } from '../../train/photos';
import { describeError } from '../errorText';
import { sessionStore } from '../services';
import { showNotice, useStudio } from '../studioStore';
import { throttle } from '../throttle';
import { trainer } from '../trainerClient';
import { requireTrainerMethod } from '../trainerCaps';
import { sampleItem } from './session';

export async function generateImage(req: GenerateRequest): Promise<void> {
  const session = useStudio.getState().session;
  if (!session || useStudio.getState().generating.busy) return;
  let step = 0;
  let total = req.steps;
  const setGen = (g: Partial<ReturnType<typeof useStudio.getState>['generating']>) =>
    useStudio.setState((s) => ({ generating: { ...s.generating, ...g } }));
  const report = throttle(() => setGen({ step, total }), 250);
  try {
    await requireTrainerMethod('generate');
    setGen({ busy: true, step: 0, total, error: undefined });
    const img = await trainer().generate(
      req,
      Comlink.proxy((s: number, t: number) => {
        step = s;
        total = t;
        report.call();
      }),
    );
    report.cancel();
    const image = await rgbaToPng(img.rgba, img.width, img.height);
    const rec = {
      kind: 'generated' as const,
      prompt: req.prompt,
      request: req,
      width: img.width,
      height: img.height,
      image,
    };
    const n = await sessionStore.addSample(session.id, rec);
    const item = sampleItem(n, { ...rec, schemaVersion: 0, createdAt: Date.now() });
    useStudio.setState((s) => ({
      samples: s.session?.id === session.id ? [...s.samples, item] : s.samples,
      generating: { busy: false, step: total, total, latest: n },
    }));
  } catch (e) {
    report.cancel();
    console.error(e);
    setGen({ busy: false, error: describeError(e) });
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
