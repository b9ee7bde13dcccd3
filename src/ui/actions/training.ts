// Training actions: start (or resume from the last checkpoint), pause, stop; progress goes to the
// metrics history every step and to IndexedDB every few seconds; previews become stored samples; a lost
// device or a reload mid-run turns into a Resume offer. LoRA export/import go through the trainer too.
import * as Comlink from 'comlink';
import { forgetPendingWritesOnRestore, notePendingWrites } from '../../train/pendingWrites';
import type { PreviewEvent, TrainingImage, TrainProgress, WorkerError } from '../../../workers/api';
import { captionProblem } from '../../train/captions';
import { checkPhotoPixels, rgbaToPng, toTrainingImage } from '../../train/photos';
import { formatBytes, type SessionState } from '../../train/sessionStore';
import { validateTrainSettings } from '../../train/trainSettings';
import { saveBlob } from '../download';
import { describeError } from '../errorText';
import { metrics, sessionStore } from '../services';
import { isTraining, showNotice, useStudio, type TrainPhase } from '../studioStore';
import { throttle } from '../throttle';
import { trainer } from '../trainerClient';
import { lastCheckpointStep, requireTrainerMethod } from '../trainerCaps';
import { flushCaptionsNow } from './photos';
import { loadModel, noteVaeStatus } from './model';
import { fileStem, flushSettings, flushSettingsNow, openSession, sampleItem } from './session';

const HISTORY_SAVE_MS = 5000;

/** How long to wait, after startTraining resolves, for its last progress event to arrive. */
const TERMINAL_WAIT_MS = 3000;
type EndState = 'paused' | 'stopped' | 'done' | 'error';
type Blocks = ReadonlyMap<string, 'down' | 'mid' | 'up'>;

/**
 * One startTraining call. Its callbacks come through their own comlink ports, so they may arrive after the
 * call's result: the run ends in the state of its last (terminal) progress event, not when the call returns.
 */
class Run {
  lastState?: TrainProgress['state'];
  error?: WorkerError;
  requested?: 'paused' | 'stopped';
  private settle!: (s: EndState) => void;
  private readonly terminal = new Promise<EndState>((resolve) => (this.settle = resolve));

  constructor(
    readonly sessionId: string,
    private readonly blocks: Blocks,
    private readonly checkpointEvery: number,
  ) {}

  progress(p: TrainProgress): void {
    if (p.sessionId !== this.sessionId) return;
    if (p.preparing) {
      // Before the first step (photos through a latent model's VAE, class images being drawn): a line of text,
      // nothing for the charts. The first step's event sets the phase again, which clears it.
      const { what, done, total } = p.preparing;
      const message = total > 0 ? `${what}: ${done} of ${total}` : `${what}…`;
      useStudio.setState({ train: { phase: 'running', message } });
      return;
    }
    metrics.push(p, this.blocks);
    // At a checkpoint step the history is saved too (at most 4×/s): a resume starts from the
    // checkpoint, so the charts up to it must be on disk when the page goes away.
    if (this.checkpointEvery > 0 && p.step % this.checkpointEvery === 0) saveAtCheckpoint.call();
    else saveSoon.call();
    if (p.state === this.lastState) return;
    this.lastState = p.state;
    if (p.state === 'running') setPhase('running');
    else {
      if (p.state === 'error') this.error = p.error;
      this.settle(p.state);
    }
  }

  ended(): Promise<EndState> {
    const fallback = new Promise<EndState>((r) =>
      setTimeout(() => r(this.requested ?? 'done'), TERMINAL_WAIT_MS),
    );
    return Promise.race([this.terminal, fallback]);
  }
}

let run: Run | undefined;

const setPhase = (phase: TrainPhase, extra: { message?: string } = {}) =>
  useStudio.setState({ train: { phase, ...extra } });

/** Writes the charts' history and the session's step (and state) for the running session. */
async function persist(state?: SessionState): Promise<void> {
  const id = run?.sessionId;
  if (!id) return;
  try {
    await sessionStore.saveHistory(id, metrics.toRecord());
    const rec = await sessionStore.update(id, {
      step: metrics.steps.at(-1) ?? 0,
      ...(state ? { state } : {}),
    });
    if (useStudio.getState().session?.id === id) useStudio.setState({ session: rec });
  } catch (e) {
    showNotice(describeError(e));
  }
}

const saveSoon = throttle(() => void persist(), HISTORY_SAVE_MS);
const saveAtCheckpoint = throttle(() => {
  saveSoon.cancel();
  void persist();
}, 250);

/** Saves what the charts show when the page goes away (the session stays 'running', so reload offers resume). */
export function persistOnPageHide(): void {
  addEventListener('pagehide', () => {
    // Start the write now: continuations after an await may never run once the page is gone.
    saveSoon.cancel();
    saveAtCheckpoint.cancel();
    if (run) void sessionStore.saveHistory(run.sessionId, metrics.toRecord());
    // Edits inside their debounce: written now and noted in localStorage (replayed on the next start).
    const settings = flushSettingsNow();
    notePendingWrites([...(settings ? [settings] : []), ...flushCaptionsNow()]);
  });
  forgetPendingWritesOnRestore();
}

async function savePreview(sessionId: string, e: PreviewEvent): Promise<void> {
  if (e.sessionId !== sessionId) return;
  noteVaeStatus(e.image.vae);
  try {
    const image = await rgbaToPng(e.image.rgba, e.image.width, e.image.height);
    const sample = {
      kind: 'preview' as const,
      step: e.step,
      prompt: e.prompt,
      width: e.image.width,
      height: e.image.height,
      image,
    };
    const n = await sessionStore.addSample(e.sessionId, sample);
    if (useStudio.getState().session?.id !== e.sessionId) return;
    const item = sampleItem(n, { ...sample, schemaVersion: 0, createdAt: Date.now() });
    useStudio.setState((s) => ({ samples: [...s.samples, item] }));
  } catch (err) {
    showNotice(describeError(err));
  }
}

async function decodeForTraining(resolution: number): Promise<TrainingImage[]> {
  const images: TrainingImage[] = [];
  for (const p of useStudio.getState().photos) {
    const img = await toTrainingImage(p.blob, p.name, resolution);
    images.push(p.caption ? { ...img, caption: p.caption } : img);
  }
  return images;
}

/** Why training cannot start now, in words; undefined when it can. */
function startProblem(): string | undefined {
  const { model, photos, settings } = useStudio.getState();
  if (model.phase === 'loading') return 'The model is still loading.';
  if (!model.info) return model.error?.message ?? 'No model is loaded.';
  const issue = validateTrainSettings(settings, model.info.identifierTokens, model.info.codec).find(
    (i) => i.level === 'error',
  );
  if (issue) return issue.message;
  if (photos.length === 0) return 'Add photos of your subject first.';
  for (const p of photos) {
    const problem = p.caption ? captionProblem(p.caption, model.info.identifierTokens) : undefined;
    if (problem) return `${p.name}: ${problem}`;
  }
  const small = photos
    .map((p) => checkPhotoPixels(p.name, p.width, p.height, model.info!.resolution))
    .find(Boolean);
  return small?.message;
}

/** Starts training, or resumes it from the session's last checkpoint when there is one. */
export async function startTraining(): Promise<void> {
  const st = useStudio.getState();
  const session = st.session;
  if (!session || isTraining(st.train.phase)) return;
  try {
    await requireTrainerMethod('startTraining');
    if (st.resumeOffer?.reason === 'device-lost') await loadModel(true);
    const problem = startProblem();
    if (problem) {
      useStudio.setState((s) => ({
        train: { phase: s.train.phase === 'error' ? 'idle' : s.train.phase, message: problem },
      }));
      return;
    }
    const model = useStudio.getState().model.info!;
    setPhase('preparing', { message: 'Preparing photos…' });
    useStudio.setState({ resumeOffer: undefined });
    await flushSettings();
    const settings = useStudio.getState().settings;
    const images = await decodeForTraining(model.resolution);
    const resuming =
      (session.state === 'paused' || session.state === 'running') &&
      (session.step > 0 || metrics.steps.length > 0);
    if (!resuming) {
      metrics.reset(model.layers.map((l) => ({ name: l.name, block: l.block })));
      await sessionStore.saveHistory(session.id, metrics.toRecord());
    }
    const blocks: Blocks = new Map(model.layers.map((l) => [l.name, l.block]));
    const current = new Run(session.id, blocks, settings.checkpointEvery);
    run = current;
    useStudio.setState({ session: await sessionStore.update(session.id, { state: 'running', settings }) });
    setPhase('running');
    await trainer().startTraining(
      session.id,
      Comlink.transfer(
        images,
        images.map((i) => i.rgba.buffer as ArrayBuffer),
      ),
      settings,
      Comlink.proxy((p: TrainProgress) => current.progress(p)),
      Comlink.proxy((e: PreviewEvent) => void savePreview(session.id, e)),
    );
    const state = await current.ended();
    if (state === 'error') throw current.error ?? new Error('Training failed.');
    await finish(state);
  } catch (e) {
    await fail(e);
  }
}

async function finish(state: 'paused' | 'stopped' | 'done'): Promise<void> {
  saveSoon.cancel();
  saveAtCheckpoint.cancel();
  await persist(state);
  run = undefined;
  setPhase(state);
}

async function fail(e: unknown): Promise<void> {
  console.error(e);
  const id = run?.sessionId ?? useStudio.getState().session?.id;
  const checkpointStep = id ? await lastCheckpointStep(id).catch(() => undefined) : undefined;
  const error = describeError(e, { checkpointStep });
  if (run) {
    saveSoon.cancel();
    saveAtCheckpoint.cancel();
    // Paused, not failed: the run can continue from its last checkpoint.
    await persist(metrics.latest ? 'paused' : undefined);
    run = undefined;
  }
  useStudio.setState({
    train: { phase: 'error', error },
    resumeOffer:
      error.action === 'resume'
        ? { step: checkpointStep ?? metrics.latest?.step ?? 0, reason: 'device-lost' }
        : undefined,
  });
}

export async function pauseTraining(): Promise<void> {
  try {
    await requireTrainerMethod('pause');
    if (run) run.requested = 'paused';
    setPhase('pausing');
    await trainer().pause();
  } catch (e) {
    showNotice(describeError(e));
  }
}

export async function stopTraining(): Promise<void> {
  const session = useStudio.getState().session;
  if (!run && session) {
    // Paused or interrupted: nothing runs, so stopping only closes the session for resuming.
    try {
      useStudio.setState({
        session: await sessionStore.update(session.id, { state: 'stopped' }),
        resumeOffer: undefined,
      });
      setPhase('stopped');
    } catch (e) {
      showNotice(describeError(e));
    }
    return;
  }
  try {
    await requireTrainerMethod('stop');
    if (run) run.requested = 'stopped';
    setPhase('stopping');
    await trainer().stop();
  } catch (e) {
    showNotice(describeError(e));
  }
}

export const dismissResume = () => useStudio.setState({ resumeOffer: undefined });

/**
 * A new session with this one's photos and settings (to train again, or to compare with the baseline). With
 * `fixedRank`: its fixed-rank twin at that rank, ticked beside this one in the Sessions tab's Compare.
 */
export async function trainAgain(opts: { fixedRank?: number } = {}): Promise<void> {
  const { session, photos, settings } = useStudio.getState();
  if (!session) return;
  try {
    const twin = opts.fixedRank !== undefined;
    const rec = await sessionStore.create({
      name: twin ? `${session.name} (fixed r=${opts.fixedRank})` : `${session.name} (again)`,
      settings: twin ? { ...settings, mode: 'fixed', fixedRank: opts.fixedRank! } : settings,
      modelUrl: session.modelUrl,
      trainedFrom: session.id,
    });
    if (twin) useStudio.setState((s) => ({ compare: { ...s.compare, ids: [session.id, rec.id] } }));
    const stored = await sessionStore.photos(session.id);
    await sessionStore.addPhotos(
      rec.id,
      stored
        .filter(({ n }) => photos.some((p) => p.n === n))
        .map(({ photo: { schemaVersion: _v, addedAt: _a, ...p } }) => p),
    );
    await openSession(rec.id);
  } catch (e) {
    showNotice(describeError(e));
  }
}

// LoRA files

export async function exportLora(format: 'kohya' | 'peft'): Promise<void> {
  const session = useStudio.getState().session;
  if (!session) return;
  try {
    await requireTrainerMethod('exportLora');
    const bytes = await trainer().exportLora(session.id, format);
    const name = `${fileStem(session.name)}-lora2-${format}.safetensors`;
    saveBlob(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }), name);
    showNotice(
      { title: 'LoRA exported', message: `${name} (${formatBytes(bytes.byteLength)})`, action: 'none' },
      { info: true },
    );
  } catch (e) {
    showNotice(describeError(e));
  }
}

export async function importLora(file: File): Promise<void> {
  const session = useStudio.getState().session;
  if (!session) return;
  try {
    await requireTrainerMethod('importLora');
    const bytes = new Uint8Array(await file.arrayBuffer());
    await trainer().importLora(session.id, Comlink.transfer(bytes, [bytes.buffer]));
    if (useStudio.getState().session?.id === session.id) useStudio.setState({ adapterReady: true });
    showNotice(
      {
        title: 'LoRA imported',
        message: `${file.name} is now this session's adapter; try it in the Generate tab.`,
        action: 'none',
      },
      { info: true },
    );
  } catch (e) {
    showNotice(describeError(e));
  }
}
