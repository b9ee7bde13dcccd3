// Session actions against an in-memory store: a slow, stale sessions refresh must not bring back a deleted
// session, the "saved" mark must not appear while a newer settings change is still unsaved, and a session takes
// its model's example prompt only while it is untouched.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { memoryKeyValueStore, SessionStore } from '../../train/sessionStore';

const kv = memoryKeyValueStore();

vi.mock('../services', () => ({
  sessionStore: new SessionStore(kv),
  metrics: { clear() {}, load() {}, reset() {}, steps: [] },
}));

const { sessionStore } = await import('../services');
const { adoptModelPrompt, deleteSession, newSession, refreshSessions, updateSettings, flushSettings } =
  await import('./session');
const { useStudio } = await import('../studioStore');
const { DEFAULT_MODEL_URL } = await import('../../train/sessionStore');
const { DEFAULT_TRAIN_SETTINGS } = await import('../../train/trainSettings');
const { BUILT_IN_SAMPLING } = await import('../../models/sampling');
type ModelInfo = import('../../../workers/api').ModelInfo;

const EXAMPLE = '<v1> dog face';
function modelInfo(url: string, trainPrompt?: string): ModelInfo {
  return {
    url,
    name: 'm',
    resolution: 32,
    layers: [],
    identifierTokens: ['<v1>'],
    sampling: { ...BUILT_IN_SAMPLING, trainPrompt },
  };
}

beforeEach(() => {
  kv.data.clear();
});
afterEach(() => vi.useRealTimers());

describe('session actions', () => {
  it('shows the latest sessions list even when an earlier refresh finishes last', async () => {
    const a = await sessionStore.create({ name: 'a' });
    const b = await sessionStore.create({ name: 'b' });
    // This refresh reads the list before the delete and answers after it.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const list = sessionStore.list.bind(sessionStore);
    vi.spyOn(sessionStore, 'list').mockImplementationOnce(async () => {
      const before = await list();
      await gate;
      return before;
    });
    const stale = refreshSessions();
    await deleteSession(b.id);
    expect(useStudio.getState().sessions.items.map((i) => i.session.name)).toEqual(['a']);
    release();
    await stale;
    expect(useStudio.getState().sessions.items.map((i) => i.session.id)).toEqual([a.id]);
    expect(useStudio.getState().sessions.loading).toBe(false);
  });

  it('marks settings saved only when the last change is written', async () => {
    const s = await sessionStore.create();
    useStudio.setState({ session: s, settings: s.settings, settingsSaved: true });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    updateSettings({ steps: 111 });
    expect(useStudio.getState().settingsSaved).toBe(false);
    // The first save starts; a second change arrives while it is being written.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const update = sessionStore.update.bind(sessionStore);
    const spy = vi.spyOn(sessionStore, 'update').mockImplementationOnce(async (...args) => {
      await gate;
      return update(...args);
    });
    vi.advanceTimersByTime(1000);
    updateSettings({ steps: 222 });
    release();
    expect(spy).toHaveBeenCalledTimes(1);
    // The save's own continuation was registered first, so it has run when this await returns.
    await spy.mock.results[0].value;
    expect(useStudio.getState().settingsSaved).toBe(false);
    vi.useRealTimers();
    await flushSettings();
    expect(useStudio.getState().settingsSaved).toBe(true);
    expect((await sessionStore.get(s.id))!.settings.steps).toBe(222);
  });

  it('a new session copies the settings on the same model, and starts from the defaults on another', async () => {
    const store = new Map<string, string>();
    vi.stubGlobal('localStorage', {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
    });
    try {
      const s = await sessionStore.create();
      const tuned = { ...s.settings, prompt: '<v2> corgi', steps: 321 };
      useStudio.setState({ session: s, settings: tuned, settingsSaved: true, model: { phase: 'idle' } });
      await newSession();
      const same = useStudio.getState().session!;
      expect(same.id).not.toBe(s.id);
      expect([same.modelUrl, same.settings.prompt, same.settings.steps]).toEqual([
        DEFAULT_MODEL_URL,
        '<v2> corgi',
        321,
      ]);

      await newSession({ modelUrl: 'local:sd15' });
      const other = useStudio.getState().session!;
      expect(other.modelUrl).toBe('local:sd15');
      expect(other.settings).toEqual(DEFAULT_TRAIN_SETTINGS);
      expect(useStudio.getState().settings).toEqual(DEFAULT_TRAIN_SETTINGS);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("takes the model's example prompt while the session has not trained and keeps the built-in prompt", async () => {
    const s = await sessionStore.create();
    expect(s.settings.prompt).toBe(DEFAULT_TRAIN_SETTINGS.prompt);
    const open = (session: typeof s, prompt = session.settings.prompt) =>
      useStudio.setState({ session, settings: { ...session.settings, prompt }, settingsSaved: true });
    const ready = (info: ModelInfo) => useStudio.setState({ model: { phase: 'ready', info } });

    // A model without an example, or another model than the session's: nothing changes.
    open(s);
    ready(modelInfo(DEFAULT_MODEL_URL));
    adoptModelPrompt();
    ready(modelInfo('/models/other/', EXAMPLE));
    adoptModelPrompt();
    expect(useStudio.getState().settings.prompt).toBe(DEFAULT_TRAIN_SETTINGS.prompt);

    // The session's model has one: taken and saved.
    ready(modelInfo(DEFAULT_MODEL_URL, EXAMPLE));
    adoptModelPrompt();
    expect(useStudio.getState().settings.prompt).toBe(EXAMPLE);
    await flushSettings();
    expect((await sessionStore.get(s.id))!.settings.prompt).toBe(EXAMPLE);

    // A prompt the person typed stays, and so does the prompt of a session that has trained.
    open(s, '<v2> corgi');
    adoptModelPrompt();
    expect(useStudio.getState().settings.prompt).toBe('<v2> corgi');
    open({ ...s, step: 10 }, DEFAULT_TRAIN_SETTINGS.prompt);
    adoptModelPrompt();
    expect(useStudio.getState().settings.prompt).toBe(DEFAULT_TRAIN_SETTINGS.prompt);
    // So does the prompt a "Train again" session copied from a run that trained with the built-in one.
    const again = await sessionStore.create({ trainedFrom: s.id });
    expect((await sessionStore.get(again.id))!.trainedFrom).toBe(s.id);
    open(again, DEFAULT_TRAIN_SETTINGS.prompt);
    adoptModelPrompt();
    expect(useStudio.getState().settings.prompt).toBe(DEFAULT_TRAIN_SETTINGS.prompt);
  });
});
