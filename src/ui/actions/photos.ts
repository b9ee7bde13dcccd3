// Photo actions: decode and validate dropped files one by one (thumbnails appear as they are ready),
// store each in the session (with its caption file when one came along), remove, caption, select for the
// crop preview.
import type { PendingWrites } from '../../train/pendingWrites';
import { cleanCaption, captionStem, pairCaptionFiles } from '../../train/captions';
import { admitPhotos, decodePhoto, PhotoError } from '../../train/photos';
import { formatBytes } from '../../train/sessionStore';
import { filesFromEntries, type DropEntry } from '../droppedFiles';
import { describeError } from '../errorText';
import { sessionStore } from '../services';
import { nextNoteId, showNotice, useStudio, type PhotoNote } from '../studioStore';

/** Resolution assumed for the size check until the model says (the embedded model trains at ≤ 64 px). */
export const FALLBACK_RESOLUTION = 64;

export function modelResolution(): number {
  return useStudio.getState().model.info?.resolution ?? FALLBACK_RESOLUTION;
}

function note(name: string, message: string, level: PhotoNote['level'] = 'error'): PhotoNote {
  return { id: nextNoteId(), name, message, level };
}

/** Adds what a dropped folder holds (a kohya dataset folder: photos and their .txt captions). */
export async function addDroppedFolder(entries: DropEntry[]): Promise<void> {
  let found: Awaited<ReturnType<typeof filesFromEntries>>;
  try {
    found = await filesFromEntries(entries);
  } catch (e) {
    useStudio.setState({
      photoNotes: [note('', `The dropped folder could not be read: ${(e as Error)?.message ?? e}`)],
    });
    return;
  }
  const { files, skipped } = found;
  const extra = skipped.length
    ? [
        note(
          '',
          `Left out ${skipped.length} file${skipped.length > 1 ? 's' : ''} of the folder that ${skipped.length > 1 ? 'are' : 'is'} ` +
            `neither a photo nor a caption: ${skipped.slice(0, 3).join(', ')}${skipped.length > 3 ? ', …' : ''}.`,
          'warning',
        ),
      ]
    : [];
  if (files.length === 0) {
    useStudio.setState({
      photoNotes: [...extra, note('', 'The dropped folder holds no JPEG, PNG or WebP photos.')],
    });
    return;
  }
  await addPhotoFiles(files, extra);
}

export async function addPhotoFiles(dropped: File[], extraNotes: PhotoNote[] = []): Promise<void> {
  const st = useStudio.getState();
  const session = st.session;
  if (!session || dropped.length === 0) return;
  const notes: PhotoNote[] = [...extraNotes];
  // kohya's captions: `dog.txt` beside `dog.png` (dropped with it, or for a photo already here).
  const {
    images: files,
    captions,
    strays,
    tooLarge,
  } = pairCaptionFiles(
    dropped,
    st.photos.map((p) => p.name),
  );
  for (const f of tooLarge)
    notes.push(
      note(f.name, `${f.name} is ${formatBytes(f.size)}: too large for a caption (a line of text).`),
    );
  for (const f of strays)
    notes.push(
      note(
        f.name,
        `${f.name} is not an image, nor named like one of the photos (a caption file: dog.txt beside dog.png).`,
      ),
    );
  const captionOf = async (name: string) => {
    const f = captions.get(captionStem(name));
    return f ? cleanCaption(await f.text()) : undefined;
  };
  for (const p of st.photos) {
    const caption = await captionOf(p.name).catch(() => undefined);
    if (caption !== undefined) await setPhotoCaption(p.n, caption, { now: true });
  }
  const fresh = files.filter((f) => {
    const dup = st.photos.some((p) => p.name === f.name && p.bytes === f.size);
    if (dup) notes.push(note(f.name, `${f.name} is already in this session.`, 'warning'));
    return !dup;
  });
  const { accepted, message } = admitPhotos(st.photos.length + st.photosBusy, fresh.length);
  if (message) notes.push(note('', message));
  const batch = fresh.slice(0, accepted);
  useStudio.setState((s) => ({ photoNotes: notes, photosBusy: s.photosBusy + batch.length }));

  for (const file of batch) {
    try {
      const d = await decodePhoto(file, { resolution: modelResolution() });
      const blob = file.slice(0, file.size, file.type || `image/${d.format}`);
      // An unreadable caption file leaves the photo without one (the photo itself is fine).
      const caption = (await captionOf(file.name).catch(() => undefined)) || undefined;
      const [n] = await sessionStore.addPhotos(session.id, [
        {
          name: file.name,
          type: blob.type,
          width: d.width,
          height: d.height,
          blob,
          thumbnail: d.thumbnail,
          ...(caption ? { caption } : {}),
        },
      ]);
      if (useStudio.getState().session?.id !== session.id) continue;
      useStudio.setState((s) => ({
        photos: [
          ...s.photos,
          {
            n,
            name: file.name,
            type: blob.type,
            width: d.width,
            height: d.height,
            bytes: blob.size,
            blob,
            thumbUrl: URL.createObjectURL(d.thumbnail),
            ...(caption ? { caption } : {}),
          },
        ],
        selectedPhoto: s.selectedPhoto ?? n,
      }));
    } catch (e) {
      if (e instanceof PhotoError) {
        useStudio.setState((s) => ({ photoNotes: [...s.photoNotes, note(file.name, e.message)] }));
      } else if ((e as Error)?.name === 'StorageFullError') {
        showNotice(describeError(e));
      } else {
        console.error(e);
        const msg = `${file.name} could not be read: ${(e as Error)?.message ?? e}`;
        useStudio.setState((s) => ({ photoNotes: [...s.photoNotes, note(file.name, msg)] }));
      }
    } finally {
      useStudio.setState((s) => ({ photosBusy: s.photosBusy - 1 }));
    }
  }
}

export async function removePhoto(n: number): Promise<void> {
  const { session, photos, selectedPhoto } = useStudio.getState();
  if (!session) return;
  const p = photos.find((x) => x.n === n);
  const rest = photos.filter((x) => x.n !== n);
  useStudio.setState({ photos: rest, selectedPhoto: selectedPhoto === n ? rest[0]?.n : selectedPhoto });
  if (p) URL.revokeObjectURL(p.thumbUrl);
  try {
    await sessionStore.removePhoto(session.id, n);
  } catch (e) {
    showNotice(describeError(e));
  }
}

const captionSaves = new Map<
  number,
  { timer: ReturnType<typeof setTimeout>; save: () => Promise<void>; sessionId: string; caption: string }
>();
let captionWrites = 0;
/** The field shows "saved" once no caption waits for its timer or its write. */
const noteCaptionsSaved = () =>
  useStudio.setState({ captionsSaved: captionSaves.size === 0 && captionWrites === 0 });

/**
 * Sets a photo's caption (empty: it trains with the session's prompt). Shown at once, stored after a pause in
 * typing (`now`: at once).
 */
export async function setPhotoCaption(
  n: number,
  caption: string,
  opts: { now?: boolean } = {},
): Promise<void> {
  const session = useStudio.getState().session;
  if (!session) return;
  useStudio.setState((s) => ({
    photos: s.photos.map((p) => {
      if (p.n !== n) return p;
      const { caption: _old, ...rest } = p;
      return caption.trim() ? { ...rest, caption } : rest;
    }),
    captionsSaved: false,
  }));
  clearTimeout(captionSaves.get(n)?.timer);
  const save = async () => {
    captionSaves.delete(n);
    captionWrites++;
    try {
      await sessionStore.setPhotoCaption(session.id, n, cleanCaption(caption));
    } catch (e) {
      showNotice(describeError(e));
    } finally {
      captionWrites--;
      noteCaptionsSaved();
    }
  };
  if (opts.now) return save();
  captionSaves.set(n, {
    timer: setTimeout(() => void save(), 400),
    save,
    sessionId: session.id,
    caption: cleanCaption(caption),
  });
}

/**
 * Starts the writes of captions still waiting for their timer at once, without reading the photo records first
 * (pagehide: the page may be gone before a read's answer arrives).
 */
export function flushCaptionsNow(): PendingWrites[] {
  const out = new Map<string, Record<number, string>>();
  for (const [n, p] of captionSaves) {
    clearTimeout(p.timer);
    sessionStore.setPhotoCaptionNow(p.sessionId, n, p.caption).catch(() => undefined);
    out.set(p.sessionId, { ...out.get(p.sessionId), [n]: p.caption });
  }
  captionSaves.clear();
  return [...out].map(([sessionId, captions]) => ({ sessionId, captions }));
}

export const selectPhoto = (n: number) => useStudio.setState({ selectedPhoto: n });
export const dismissPhotoNote = (id: number) =>
  useStudio.setState((s) => ({ photoNotes: s.photoNotes.filter((x) => x.id !== id) }));
