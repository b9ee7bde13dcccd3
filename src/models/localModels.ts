// Model folders brought from the user's disk: the studio copies the files a model needs from a picked folder into
// the origin-private file system (OPFS, `models/<name>/`), so they survive reloads and work offline, and the
// worker reads them from there (sessions name them `local:<name>`). A picked folder may use the studio's flat
// layout or diffusers' (unet/diffusion_pytorch_model.safetensors, scheduler/, tokenizer/) with optimum's ONNX
// exports (text_encoder/model.onnx, vae_decoder/model.onnx, vae_encoder/model.onnx); each file is stored under
// the flat name the loader reads. Nothing is uploaded anywhere.
import { blobSource, type ByteSource } from '../io/sources';
import { BaseFolder, ModelFolderError } from './folder';

export const LOCAL_SCHEME = 'local:';
const ROOT_DIR = 'models';

/** A file of the picked folder: its path below the folder (first segment of webkitRelativePath removed). */
export interface PickedFile {
  path: string;
  file: Blob;
}

/** Where each stored file may come from in a picked folder, first match wins. */
const FILE_SOURCES: readonly (readonly [target: string, sources: readonly string[], required: boolean])[] = [
  ['config.json', ['config.json', 'unet/config.json'], true],
  [
    'unet.safetensors',
    [
      'unet.safetensors',
      'unet/diffusion_pytorch_model.safetensors',
      'unet/diffusion_pytorch_model.fp16.safetensors',
    ],
    true,
  ],
  ['text_encoder.onnx', ['text_encoder.onnx', 'text_encoder/model.onnx'], true],
  ['scheduler_config.json', ['scheduler_config.json', 'scheduler/scheduler_config.json'], true],
  ['vae_decoder.onnx', ['vae_decoder.onnx', 'vae_decoder/model.onnx'], false],
  ['vae_encoder.onnx', ['vae_encoder.onnx', 'vae_encoder/model.onnx'], false],
  ['vae_config.json', ['vae_config.json', 'vae/config.json', 'vae_decoder/config.json'], false],
  ['sampling.json', ['sampling.json'], false],
  ['README.md', ['README.md'], false],
];
const TOKENIZER_FILES = [
  'tokenizer.json',
  'vocab.json',
  'merges.txt',
  'special_tokens_map.json',
  'tokenizer_config.json',
];

export interface ImportPlan {
  /** Suggested model name (the picked folder's, made safe). */
  name: string;
  /** Stored name → the picked file. */
  files: { target: string; source: PickedFile }[];
  /** What a model needs and the folder lacks, in words; importing is refused while this is not empty. */
  missing: string[];
  bytes: number;
}

/** A model name: lower-case letters, digits and dashes, 1–64 characters. */
export function safeModelName(raw: string): string {
  const s = raw
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64)
    .replace(/-+$/, '');
  return s || 'model';
}

/** `name`, or name-2, name-3 … when taken. */
export function uniqueModelName(name: string, taken: readonly string[]): string {
  if (!taken.includes(name)) return name;
  for (let i = 2; ; i++) {
    const n = `${name.slice(0, 60)}-${i}`;
    if (!taken.includes(n)) return n;
  }
}

/** Which picked files become which stored ones, and what is missing. */
export function planImport(folderName: string, picked: readonly PickedFile[]): ImportPlan {
  const byPath = new Map(picked.map((p) => [p.path.replace(/^\.?\//, ''), p]));
  const files: ImportPlan['files'] = [];
  const missing: string[] = [];
  for (const [target, sources, required] of FILE_SOURCES) {
    const found = sources.find((s) => byPath.has(s));
    if (found) files.push({ target, source: byPath.get(found)! });
    else if (required) missing.push(`${target} (or ${sources.slice(1).join(', ')})`);
  }
  for (const dir of ['', 'tokenizer/'])
    for (const f of TOKENIZER_FILES) {
      const p = byPath.get(dir + f);
      if (p) files.push({ target: dir + f, source: p });
    }
  const has = (t: string) => files.some((f) => f.target === t);
  const tokenizer = ['', 'tokenizer/'].some(
    (d) => has(`${d}tokenizer.json`) || (has(`${d}vocab.json`) && has(`${d}merges.txt`)),
  );
  if (!tokenizer)
    missing.push('a tokenizer (tokenizer.json, or vocab.json + merges.txt, at the top or in tokenizer/)');
  if (has('vae_encoder.onnx') && !has('vae_decoder.onnx'))
    missing.push(
      'vae_decoder.onnx (or vae_decoder/model.onnx): the folder has a VAE encoder without its decoder',
    );
  if (!has('vae_decoder.onnx') && byPath.has('vae/diffusion_pytorch_model.safetensors'))
    missing.push(
      'vae_decoder.onnx (or vae_decoder/model.onnx): the VAE is in PyTorch format (vae/*.safetensors); ' +
        'export it to ONNX (e.g. optimum) first',
    );
  return {
    name: safeModelName(folderName),
    files,
    missing,
    bytes: files.reduce((a, f) => a + f.source.file.size, 0),
  };
}

/** The picked folder's name and its files from an <input webkitdirectory> selection. */
export function pickedFolder(files: Iterable<File>): { folderName: string; files: PickedFile[] } {
  let folderName = '';
  const out: PickedFile[] = [];
  for (const f of files) {
    const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    const parts = rel.split('/');
    if (parts.length > 1) folderName ||= parts[0];
    out.push({ path: parts.length > 1 ? parts.slice(1).join('/') : rel, file: f });
  }
  return { folderName: folderName || 'model', files: out };
}

async function modelsDir(
  root: FileSystemDirectoryHandle,
  create = false,
): Promise<FileSystemDirectoryHandle> {
  return root.getDirectoryHandle(ROOT_DIR, { create });
}

/** Directory handle of `path`'s parent and the file's own name, creating directories when asked. */
async function parentOf(
  dir: FileSystemDirectoryHandle,
  path: string,
  create: boolean,
): Promise<[FileSystemDirectoryHandle, string]> {
  const parts = path.split('/');
  for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p, { create });
  return [dir, parts[parts.length - 1]];
}

/** A model stored in OPFS, read like any other folder (random access for the large files). */
export class OpfsFolder extends BaseFolder {
  private constructor(
    readonly name: string,
    private readonly dir: FileSystemDirectoryHandle,
  ) {
    super();
  }

  /** The stored model `name`; a clear error when it is not there (deleted, or another browser profile). */
  static async open(root: FileSystemDirectoryHandle, name: string): Promise<OpfsFolder> {
    try {
      return new OpfsFolder(`${LOCAL_SCHEME}${name}`, await (await modelsDir(root)).getDirectoryHandle(name));
    } catch {
      throw new ModelFolderError(
        `${LOCAL_SCHEME}${name}`,
        'config.json',
        "is not in this browser's storage: the imported model was deleted (or imported in another browser " +
          'profile); import its folder again in the Sessions tab',
      );
    }
  }

  private async file(path: string): Promise<File | undefined> {
    try {
      const [dir, name] = await parentOf(this.dir, path, false);
      return await (await dir.getFileHandle(name)).getFile();
    } catch {
      return undefined;
    }
  }

  async has(path: string): Promise<boolean> {
    return (await this.file(path)) !== undefined;
  }

  async bytes(path: string): Promise<Uint8Array> {
    const f = await this.file(path);
    if (!f) throw this.missing(path);
    return new Uint8Array(await f.arrayBuffer());
  }

  override async source(path: string): Promise<ByteSource> {
    const f = await this.file(path);
    if (!f) throw this.missing(path);
    return blobSource(f);
  }
}

export interface LocalModelInfo {
  name: string;
  bytes: number;
  files: number;
}

async function entries(dir: FileSystemDirectoryHandle): Promise<[string, FileSystemHandle][]> {
  const out: [string, FileSystemHandle][] = [];
  for await (const e of (
    dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }
  ).entries())
    out.push(e);
  return out;
}

async function dirSize(dir: FileSystemDirectoryHandle): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for (const [, h] of await entries(dir)) {
    if (h.kind === 'file') {
      bytes += (await (h as FileSystemFileHandle).getFile()).size;
      files++;
    } else {
      const s = await dirSize(h as FileSystemDirectoryHandle);
      bytes += s.bytes;
      files += s.files;
    }
  }
  return { bytes, files };
}

const isComplete = (d: FileSystemDirectoryHandle) =>
  d.getFileHandle(COMPLETE_MARK).then(
    () => true,
    () => false,
  );

/** The imported models, by name; an import still being written (no `.complete` mark yet) is left out. */
export async function listLocalModels(root: FileSystemDirectoryHandle): Promise<LocalModelInfo[]> {
  const dir = await modelsDir(root, true);
  const out: LocalModelInfo[] = [];
  for (const [name, h] of await entries(dir)) {
    if (h.kind !== 'directory' || !(await isComplete(h as FileSystemDirectoryHandle))) continue;
    const s = await dirSize(h as FileSystemDirectoryHandle);
    out.push({ name, bytes: s.bytes, files: s.files - 1 });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Removes imports that a closed tab or a crash cut short (no `.complete` mark): called before a new import
 * starts, never while one runs in this page.
 */
export async function removeIncompleteModels(root: FileSystemDirectoryHandle): Promise<string[]> {
  const dir = await modelsDir(root, true);
  const removed: string[] = [];
  for (const [name, h] of await entries(dir)) {
    if (h.kind === 'directory' && !(await isComplete(h as FileSystemDirectoryHandle))) {
      await dir.removeEntry(name, { recursive: true }).catch(() => undefined);
      removed.push(name);
    }
  }
  return removed;
}

/** Written last: a folder without it is an import that a reload or a full disk cut short. */
const COMPLETE_MARK = '.complete';

/**
 * Copies the plan's files into OPFS as model `name` (refused when taken), reporting bytes copied. A failure
 * (a full disk) removes what was written, so no half model stays behind.
 */
export async function importLocalModel(
  root: FileSystemDirectoryHandle,
  name: string,
  plan: ImportPlan,
  onProgress?: (bytes: number, total: number) => void,
): Promise<void> {
  if (plan.missing.length > 0)
    throw new Error(`The folder is not a model: it lacks ${plan.missing.join('; ')}.`);
  if (safeModelName(name) !== name)
    throw new Error(`"${name}" is not a model name (letters, digits, dashes)`);
  const models = await modelsDir(root, true);
  const exists = await models.getDirectoryHandle(name).then(
    () => true,
    () => false,
  );
  if (exists)
    throw new Error(`A model named "${name}" is already imported; delete it first or pick another name.`);
  const dir = await models.getDirectoryHandle(name, { create: true });
  let done = 0;
  try {
    for (const { target, source } of plan.files) {
      const [parent, file] = await parentOf(dir, target, true);
      const writable = await (await parent.getFileHandle(file, { create: true })).createWritable();
      try {
        // In slices, so progress moves during a multi-gigabyte UNet.
        const SLICE = 16 << 20;
        for (let at = 0; at < source.file.size; at += SLICE) {
          await writable.write(await source.file.slice(at, at + SLICE).arrayBuffer());
          done += Math.min(SLICE, source.file.size - at);
          onProgress?.(done, plan.bytes);
        }
        await writable.close();
      } catch (e) {
        await writable.abort().catch(() => undefined);
        throw e;
      }
    }
    await dir.getFileHandle(COMPLETE_MARK, { create: true });
  } catch (e) {
    await models.removeEntry(name, { recursive: true }).catch(() => undefined);
    throw e;
  }
}

export async function deleteLocalModel(root: FileSystemDirectoryHandle, name: string): Promise<void> {
  await (await modelsDir(root, true)).removeEntry(name, { recursive: true });
}
