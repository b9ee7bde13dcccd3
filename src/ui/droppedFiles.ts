// Files from a drop, folders included: a kohya dataset folder ("10_dog/" with dog1.png and dog1.txt, maybe
// sub-folders and a dataset.toml) dropped as it is. Folder entries must be taken from the drop event at once
// (the browser forgets them after it); reading them is asynchronous.
import { isCaptionFile } from '../train/captions';

/** The parts of FileSystemEntry this reads (fakes in tests implement the same). */
export interface DropEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
}
interface FileEntry extends DropEntry {
  file(ok: (f: File) => void, fail?: (e: unknown) => void): void;
}
interface DirectoryEntry extends DropEntry {
  createReader(): { readEntries(ok: (entries: DropEntry[]) => void, fail?: (e: unknown) => void): void };
}

/** Most files read out of dropped folders (far past the photo limit; a wrong folder should not hang the page). */
export const MAX_FOLDER_FILES = 500;
const IMAGE_NAME = /\.(jpe?g|png|webp)$/i;

/** The drop's entries, taken synchronously; undefined when it holds no folder (use dataTransfer.files). */
export function folderEntries(dt: DataTransfer | null): DropEntry[] | undefined {
  const entries = [...(dt?.items ?? [])]
    .map((i) => (i.kind === 'file' ? (i.webkitGetAsEntry?.() as DropEntry | null) : null))
    .filter((e): e is DropEntry => e !== null && e !== undefined);
  return entries.some((e) => e.isDirectory) ? entries : undefined;
}

const readBatch = (dir: DirectoryEntry) => {
  const reader = dir.createReader();
  return async () => new Promise<DropEntry[]>((ok, fail) => reader.readEntries(ok, fail));
};

/**
 * Every file under the entries, folders walked depth-first. Inside folders only photos and caption files are
 * kept (hidden files, configs and the like are counted in `skipped`); files dropped directly are all kept, so
 * they get their own message.
 */
export async function filesFromEntries(
  entries: readonly DropEntry[],
): Promise<{ files: File[]; skipped: string[] }> {
  const files: File[] = [];
  const skipped: string[] = [];
  const walk = async (entry: DropEntry, inFolder: boolean): Promise<void> => {
    if (files.length >= MAX_FOLDER_FILES) return;
    if (entry.isDirectory) {
      const next = readBatch(entry as DirectoryEntry);
      // readEntries hands out a folder in batches (100 in Chrome) until an empty one.
      for (let batch = await next(); batch.length; batch = await next())
        for (const e of [...batch].sort((a, b) => a.name.localeCompare(b.name))) await walk(e, true);
      return;
    }
    if (inFolder && (entry.name.startsWith('.') || !(IMAGE_NAME.test(entry.name) || isCaptionFile(entry)))) {
      skipped.push(entry.name);
      return;
    }
    files.push(await new Promise<File>((ok, fail) => (entry as FileEntry).file(ok, fail)));
  };
  for (const e of entries) await walk(e, false);
  return { files, skipped };
}
