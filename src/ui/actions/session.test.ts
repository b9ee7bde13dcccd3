// Session actions against an in-memory store: a slow, stale sessions refresh must not bring back a deleted
// session, and the "saved" mark must not appear while a newer settings change is still unsaved.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { memoryKeyValueStore, SessionStore } from '../../train/sessionStore';

const kv = memoryKeyValueStore();

vi.mock('../services', () => ({
  sessionStore: new SessionStore(kv),
  metrics: { clear() {}, load() {} },
}));

const { sessionStore } = await import('../services');
const { deleteSession, refreshSessions, updateSettings, flushSettings } = await import('./session');
const { useStudio } = await import('../studioStore');

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
});
