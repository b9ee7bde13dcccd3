// Session actions: open the current session at startup, switch, create, rename, delete, export and import
// whole sessions, and keep settings saved (debounced) so a reload finds them.
import { replayPendingWrites, type PendingWrites } from '../../train/pendingWrites';
import type { TrainSettings } from '../../../workers/api';
import { decodePhoto } from '../../train/photos';
import {
  DEFAULT_MODEL_URL,
  formatBytes,
  requestedModelUrl,
  type SessionRecord,
} from '../../train/sessionStore';
import { DEFAULT_TRAIN_SETTINGS } from '../../train/trainSettings';
import { SESSION_FILE_EXTENSION } from '../../train/sessionFile';
import { describeError } from '../errorText';
import { metrics, sessionStore } from '../services';
import { isTraining, showNotice, useStudio, type PhotoItem, type SampleItem } from '../studioStore';
import { saveBlob } from '../download';
import { lastCheckpointStep } from '../trainerCaps';

const CURRENT_KEY = 'lora2.currentSession';
const SETTINGS_SAVE_MS = 400;

function report(e: unknown): void {
  console.error(e);
  showNotice(describeError(e));
}

function revokeViews(): void {
  const { photos, samples } = useStudio.getState();
  for (const p of photos) URL.revokeObjectURL(p.thumbUrl);
  for (const s of samples) URL.revokeObjectURL(s.url);
}

export function sampleItem(
  n: number,
  s: Awaited<ReturnType<typeof sessionStore.samples>>[number]['sample'],
): SampleItem {
  return {
    n,
    kind: s.kind,
    step: s.step,
    prompt: s.prompt,
    request: s.request,
    width: s.width,
    height: s.height,
    createdAt: s.createdAt,
    blob: s.image,
    url: URL.createObjectURL(s.image),
  };
}

async function loadPhotos(id: string): Promise<PhotoItem[]> {
  const out: PhotoItem[] = [];
  for (const { n, photo } of await sessionStore.photos(id)) {
    let { thumbnail, width, height } = photo;
    if (!thumbnail || !width) {
      // Records from older schemas carry no thumbnail or size: decode once more.
      const file = new File([photo.blob], photo.name, { type: photo.type });
      const d = await decodePhoto(file, { resolution: 0 }).catch(() => undefined);
      if (!d) continue;
      ({ thumbnail, width, height } = d);
    }
    out.push({
      n,
      name: photo.name,
      type: photo.type,
      width,
      height,
      bytes: photo.blob.size,
      blob: photo.blob,
      thumbUrl: URL.createObjectURL(thumbnail),
      ...(photo.caption ? { caption: photo.caption } : {}),
    });
  }
  return out;
}

/** Makes `rec` the open session: photos, samples, settings and charts come from IndexedDB. */
async function show(rec: SessionRecord): Promise<void> {
  const [photos, samples, history] = await Promise.all([
    loadPhotos(rec.id),
    sessionStore.samples(rec.id),
    sessionStore.history(rec.id),
  ]);
  revokeViews();
  if (history) metrics.load(history);
  else metrics.reset();
  // The history is written more often than the record's step (and last, on leaving the page).
  rec = { ...rec, step: Math.max(rec.step, metrics.steps.at(-1) ?? 0) };
  localStorage.setItem(CURRENT_KEY, rec.id);
  // A record still marked running means the page went away mid-run: offer to resume from its checkpoint.
  const interrupted = rec.state === 'running' || (rec.state === 'paused' && rec.step > 0);
  useStudio.setState({
    session: rec,
    settings: { ...rec.settings },
    settingsSaved: true,
    photos,
    photoNotes: [],
    selectedPhoto: photos[0]?.n,
    samples: samples.map(({ n, sample }) => sampleItem(n, sample)),
    train: {
      phase: interrupted ? 'paused' : rec.state === 'done' || rec.state === 'stopped' ? rec.state : 'idle',
    },
    resumeOffer: interrupted ? { step: rec.step, reason: 'reload' } : undefined,
    adapterReady: rec.step > 0,
  });
  if (rec.step === 0) void checkImportedAdapter(rec.id);
  adoptModelPrompt();
}

/**
 * The open session takes its model's example prompt (sampling.json "trainPrompt") while it has not trained and
 * its prompt is still the studio's built-in one: that one ("a photo of <v1> dog") is phrased for SD-class models,
 * and the default model reads "photo" as a camera. A session made by "Train again" keeps the prompt it copied.
 * Called when a model finishes loading and when a session opens.
 */
export function adoptModelPrompt(): void {
  const { model, session, settings } = useStudio.getState();
  const example = model.info?.sampling.trainPrompt;
  if (!example || !session || session.step > 0 || session.trainedFrom !== undefined) return;
  if (settings.prompt !== DEFAULT_TRAIN_SETTINGS.prompt) return;
  if (model.info!.url !== (session.modelUrl ?? DEFAULT_MODEL_URL)) return;
  updateSettings({ prompt: example });
}

/** A session that never trained may still hold a LoRA imported from a file: its checkpoint says so. */
async function checkImportedAdapter(id: string): Promise<void> {
  const step = await lastCheckpointStep(id).catch(() => undefined);
  if (step !== undefined && useStudio.getState().session?.id === id)
    useStudio.setState({ adapterReady: true });
}

/**
 * Opens the session used last (or the newest, or a new one). With `?model=NAME` in the address, the session
 * is one that trains that model: the last one used if it does, else the newest that does, else a new one.
 */
export async function initStudio(): Promise<void> {
  try {
    // Edits the last page noted as it went away, before anything reads the session.
    await replayPendingWrites(sessionStore);
    const model = requestedModelUrl(location.search);
    const fits = (r: SessionRecord | undefined) => r && (!model || r.modelUrl === model);
    const id = localStorage.getItem(CURRENT_KEY);
    let rec = id ? await sessionStore.get(id) : undefined;
    if (!fits(rec)) rec = (await sessionStore.list()).find(fits);
    rec ??= await sessionStore.create({ modelUrl: model });
    await show(rec);
  } catch (e) {
    report(e);
  }
}

function guardTraining(): boolean {
  if (!isTraining(useStudio.getState().train.phase)) return true;
  showNotice({ title: 'Training is running', message: 'Pause or stop training first.', action: 'none' });
  return false;
}

export async function openSession(id: string): Promise<void> {
  if (!guardTraining()) return;
  await flushSettings();
  try {
    const rec = await sessionStore.get(id);
    if (rec) await show(rec);
    useStudio.setState({ tab: 'train' });
  } catch (e) {
    report(e);
  }
}

/** A new session on the open session's model, or on `opts.modelUrl` (an imported model). */
export async function newSession(opts: { modelUrl?: string } = {}): Promise<void> {
  if (!guardTraining()) return;
  await flushSettings();
  try {
    // A new session on the same model starts from the current settings: people iterate on one subject. On
    // another model it starts from the defaults (and takes that model's example prompt once it loads): a
    // prompt in one model's words, its step count or a crop the other refuses would not carry over.
    const { settings, session } = useStudio.getState();
    const current = session?.modelUrl ?? DEFAULT_MODEL_URL;
    const modelUrl = opts.modelUrl ?? session?.modelUrl;
    const sameModel = (modelUrl ?? DEFAULT_MODEL_URL) === current;
    await show(await sessionStore.create({ ...(sameModel ? { settings } : {}), modelUrl }));
    useStudio.setState({ tab: 'train' });
    void refreshSessions();
  } catch (e) {
    report(e);
  }
}

export async function renameSession(name: string): Promise<void> {
  const s = useStudio.getState().session;
  if (!s || !name.trim()) return;
  try {
    useStudio.setState({ session: await sessionStore.update(s.id, { name: name.trim() }) });
  } catch (e) {
    report(e);
  }
}

export async function deleteSession(id: string): Promise<void> {
  const current = useStudio.getState().session?.id;
  if (id === current && !guardTraining()) return;
  try {
    await sessionStore.delete(id);
    if (id === current) {
      clearTimeout(saveTimer);
      const next = (await sessionStore.list())[0] ?? (await sessionStore.create());
      await show(next);
    }
  } catch (e) {
    report(e);
  }
  await refreshSessions();
}

export async function cleanOrphans(): Promise<void> {
  for (const id of useStudio.getState().sessions.orphans) await sessionStore.delete(id);
  await refreshSessions();
}

/** Deletes cached class-image sets (all of them without `keys`); a later run draws them again. */
export async function deleteClassImages(keys?: string[]): Promise<void> {
  try {
    await sessionStore.deleteClassImages(keys);
  } catch (e) {
    report(e);
  }
  await refreshSessions();
}

let refreshSeq = 0;

/**
 * Reloads the sessions list, sizes and storage use. Only the latest call's answer is shown: an earlier,
 * slower one (sizes read every stored value) would otherwise bring back a session deleted meanwhile.
 */
export async function refreshSessions(): Promise<void> {
  const seq = ++refreshSeq;
  useStudio.setState((s) => ({ sessions: { ...s.sessions, loading: true } }));
  try {
    const [items, sizes, orphans, classSets, est] = await Promise.all([
      sessionStore.list(),
      sessionStore.sizes(),
      sessionStore.orphans(),
      sessionStore.classImageSets(),
      globalThis.navigator?.storage?.estimate?.().catch(() => undefined),
    ]);
    if (seq !== refreshSeq) return;
    useStudio.setState({
      sessions: {
        items: items.map((session) => ({ session, bytes: sizes.get(session.id) ?? 0 })),
        orphans,
        classSets,
        usage: est?.usage,
        quota: est?.quota,
        loading: false,
      },
    });
  } catch (e) {
    if (seq !== refreshSeq) return;
    useStudio.setState((s) => ({ sessions: { ...s.sessions, loading: false } }));
    report(e);
  }
}

// settings

let saveTimer: ReturnType<typeof setTimeout> | undefined;
let savePending: (() => Promise<void>) | undefined;

export function updateSettings(patch: Partial<TrainSettings>): void {
  const settings = { ...useStudio.getState().settings, ...patch };
  useStudio.setState({ settings, settingsSaved: false });
  clearTimeout(saveTimer);
  savePending = async () => {
    savePending = undefined;
    const s = useStudio.getState().session;
    if (!s) return;
    try {
      const rec = await sessionStore.update(s.id, { settings });
      // Saved only if nothing changed while this write ran; a newer change has its own save coming.
      if (useStudio.getState().session?.id === rec.id)
        useStudio.setState({ session: rec, settingsSaved: useStudio.getState().settings === settings });
    } catch (e) {
      report(e);
    }
  };
  saveTimer = setTimeout(() => void savePending?.(), SETTINGS_SAVE_MS);
}

/** Writes settings still waiting for the debounce (before switching sessions or leaving the page). */
export async function flushSettings(): Promise<void> {
  clearTimeout(saveTimer);
  await savePending?.();
}

/**
 * Starts the write of settings still waiting for the debounce at once, without a read first (pagehide: the
 * page may be gone before a read's answer arrives).
 */
export function flushSettingsNow(): PendingWrites | undefined {
  clearTimeout(saveTimer);
  const s = useStudio.getState().session;
  if (!savePending || !s) return undefined;
  savePending = undefined;
  const settings = useStudio.getState().settings;
  sessionStore.updateNow(s.id, { settings }).catch(report);
  return { sessionId: s.id, settings };
}

// whole-session files

export async function exportSession(id: string): Promise<void> {
  try {
    const rec = await sessionStore.get(id);
    const blob = await sessionStore.exportSession(id);
    saveBlob(blob, `${fileStem(rec?.name ?? id)}${SESSION_FILE_EXTENSION}`);
  } catch (e) {
    report(e);
  }
}

export async function importSession(file: File): Promise<void> {
  try {
    const rec = await sessionStore.importSession(file);
    showNotice(
      {
        title: 'Session imported',
        message: `“${rec.name}” (${formatBytes(file.size)}) is in your sessions list.`,
        action: 'none',
      },
      { info: true },
    );
  } catch (e) {
    report(e);
  }
  await refreshSessions();
}

export function fileStem(name: string): string {
  return name.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'session';
}
