// Dropped folders (a kohya dataset folder): walked in batches as Chrome hands them out, photos and captions kept,
// other files counted, the total capped; a drop without folders is left to dataTransfer.files.
import { describe, expect, it } from 'vitest';
import { filesFromEntries, folderEntries, MAX_FOLDER_FILES, type DropEntry } from './droppedFiles';

const file = (name: string): DropEntry & { file(ok: (f: File) => void): void } => ({
  name,
  isFile: true,
  isDirectory: false,
  file: (ok) => ok(new File([name], name)),
});

/** A folder whose reader hands out `batches` one per call, then an empty one (as readEntries does). */
const folder = (name: string, ...batches: DropEntry[][]): DropEntry =>
  ({
    name,
    isFile: false,
    isDirectory: true,
    createReader() {
      const left = [...batches];
      return { readEntries: (ok: (e: DropEntry[]) => void) => ok(left.shift() ?? []) };
    },
  }) as DropEntry;

describe('dropped folders', () => {
  it('walk sub-folders and every batch, keep photos and captions, count the rest', async () => {
    const dataset = folder(
      '10_dog',
      [file('dog1.txt'), file('dataset.toml'), file('dog1.png'), file('.DS_Store')],
      [folder('more', [file('dog2.JPG'), file('dog2.txt')])],
    );
    const { files, skipped } = await filesFromEntries([dataset, file('notes.txt'), file('x.toml')]);
    // Files dropped directly are all kept: they get their own message when they are not photos.
    expect(files.map((f) => f.name)).toEqual([
      'dog1.png',
      'dog1.txt',
      'dog2.JPG',
      'dog2.txt',
      'notes.txt',
      'x.toml',
    ]);
    expect(skipped).toEqual(['.DS_Store', 'dataset.toml']);
  });

  it(`stop at ${MAX_FOLDER_FILES} files`, async () => {
    const many = Array.from({ length: MAX_FOLDER_FILES + 40 }, (_, i) =>
      file(`p${String(i).padStart(4, '0')}.png`),
    );
    const { files } = await filesFromEntries([folder('big', many.slice(0, 300), many.slice(300))]);
    expect(files).toHaveLength(MAX_FOLDER_FILES);
  });

  it('take the entries only from a drop that holds a folder', () => {
    const dt = (entries: DropEntry[]) =>
      ({
        items: entries.map((e) => ({ kind: 'file', webkitGetAsEntry: () => e })),
      }) as unknown as DataTransfer;
    expect(folderEntries(dt([file('a.png'), file('b.png')]))).toBeUndefined();
    const withFolder = [file('a.png'), folder('f')];
    expect(folderEntries(dt(withFolder))).toEqual(withFolder);
    expect(folderEntries(null)).toBeUndefined();
  });
});
