// Edits still waiting for their debounced IndexedDB write when the page goes away (a reload right after
// typing): an IndexedDB transaction started on pagehide may be aborted with the page, so they are also noted
// synchronously in localStorage, and the next start writes them before it opens the session.
import type { TrainSettings } from '../../workers/api';
import type { SessionStore } from './sessionStore';

export const PENDING_KEY = 'lora2-studio.pending';

export interface PendingWrites {
  sessionId: string;
  settings?: TrainSettings;
  /** Photo number → caption ("" removes it). */
  captions?: Record<number, string>;
}

type SyncStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

/** Notes the edits synchronously (call it on pagehide); nothing to note clears the note. */
export function notePendingWrites(pending: PendingWrites[], storage: SyncStorage = localStorage): void {
  const worth = pending.filter((p) => p.settings || Object.keys(p.captions ?? {}).length);
  try {
    if (worth.length) storage.setItem(PENDING_KEY, JSON.stringify(worth));
    else storage.removeItem(PENDING_KEY);
  } catch {
    // A full or disabled localStorage: the IndexedDB writes started beside it are all there is.
  }
}

/**
 * A page restored from the back/forward cache lives on with the edits it noted on pagehide, whose writes were
 * started then (a page with an IndexedDB transaction still open is not restored but reloaded, and the next
 * start replays the note). Its note is stale from now on: left in place, the next start would replay it over
 * the edits made after the restore. This forgets it on such a pageshow.
 */
export function forgetPendingWritesOnRestore(
  target: Pick<EventTarget, 'addEventListener'> = globalThis,
  storage: SyncStorage = localStorage,
): void {
  target.addEventListener('pageshow', (e) => {
    if (!(e as PageTransitionEvent).persisted) return;
    try {
      storage.removeItem(PENDING_KEY);
    } catch {
      // localStorage disabled: there was no note.
    }
  });
}

/**
 * Writes the edits a page noted as it went away, then forgets them. Sessions or photos deleted since are
 * skipped; a note that cannot be read is dropped. Returns how many writes it made.
 */
export async function replayPendingWrites(
  store: SessionStore,
  storage: SyncStorage = localStorage,
): Promise<number> {
  let pending: PendingWrites[];
  try {
    pending = JSON.parse(storage.getItem(PENDING_KEY) ?? '[]') as PendingWrites[];
  } catch {
    pending = [];
  }
  let writes = 0;
  for (const p of Array.isArray(pending) ? pending : []) {
    if (typeof p?.sessionId !== 'string' || !(await store.get(p.sessionId))) continue;
    if (p.settings) {
      await store.update(p.sessionId, { settings: p.settings });
      writes++;
    }
    for (const [n, caption] of Object.entries(p.captions ?? {})) {
      if (typeof caption !== 'string') continue;
      await store.setPhotoCaption(p.sessionId, Number(n), caption).then(
        () => writes++,
        () => undefined, // the photo was removed since
      );
    }
  }
  storage.removeItem(PENDING_KEY);
  return writes;
}
