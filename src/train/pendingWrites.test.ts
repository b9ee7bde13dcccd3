// Edits noted in localStorage as a page goes away are written on the next start, once.
import { describe, expect, it } from 'vitest';
import {
  forgetPendingWritesOnRestore,
  notePendingWrites,
  PENDING_KEY,
  replayPendingWrites,
} from './pendingWrites';
import { memoryKeyValueStore, SessionStore } from './sessionStore';

function storage() {
  const m = new Map<string, string>();
  return {
    m,
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  };
}

const photo = (name: string) => ({
  name,
  type: 'image/png',
  width: 64,
  height: 64,
  blob: new Blob([new Uint8Array(8)]),
});

describe('pending writes', () => {
  it('writes noted settings and captions on the next start, skipping what was deleted, then forgets them', async () => {
    const store = new SessionStore(memoryKeyValueStore());
    const s = await store.create();
    await store.addPhotos(s.id, [photo('a'), { ...photo('b'), caption: '<v1> dog' }]);
    const ls = storage();
    notePendingWrites(
      [
        { sessionId: s.id, settings: { ...s.settings, prompt: '<v1> corgi' } },
        { sessionId: s.id, captions: { 0: '<v1> corgi, asleep', 1: '', 7: '<v1> gone' } },
        { sessionId: 'deleted', captions: { 0: '<v1> x' } },
        { sessionId: s.id, captions: {} },
      ],
      ls,
    );
    expect(JSON.parse(ls.m.get(PENDING_KEY)!)).toHaveLength(3); // the empty one is not worth noting
    expect(await replayPendingWrites(store, ls)).toBe(3);
    expect((await store.get(s.id))!.settings.prompt).toBe('<v1> corgi');
    expect((await store.photos(s.id)).map((p) => p.photo.caption)).toEqual(['<v1> corgi, asleep', undefined]);
    expect(ls.m.has(PENDING_KEY)).toBe(false);
    expect(await replayPendingWrites(store, ls)).toBe(0);
  });

  it('drops a note it cannot read, and clears the note when nothing is pending', async () => {
    const store = new SessionStore(memoryKeyValueStore());
    const ls = storage();
    ls.setItem(PENDING_KEY, '{not json');
    expect(await replayPendingWrites(store, ls)).toBe(0);
    expect(ls.m.has(PENDING_KEY)).toBe(false);
    ls.setItem(PENDING_KEY, '[]');
    notePendingWrites([], ls);
    expect(ls.m.has(PENDING_KEY)).toBe(false);
  });
  it('forgets the note when the page comes back from the back/forward cache, not on a fresh load', () => {
    const ls = storage();
    const page = new EventTarget();
    forgetPendingWritesOnRestore(page, ls);
    const pageshow = (persisted: boolean) =>
      page.dispatchEvent(Object.assign(new Event('pageshow'), { persisted }));
    notePendingWrites([{ sessionId: 's', captions: { 0: '<v1> dog' } }], ls);
    pageshow(false); // a fresh load: the start replays the note
    expect(ls.m.has(PENDING_KEY)).toBe(true);
    pageshow(true); // restored: the page's own state is newer than its note
    expect(ls.m.has(PENDING_KEY)).toBe(false);
  });
});
