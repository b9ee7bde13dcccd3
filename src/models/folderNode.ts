// A model folder on the local disk (Node CLI and tests); large files are read through a file handle.
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileHandleSource, type ByteSource } from '../io/sources';
import { ModelFolderError, type ModelFolder } from './folder';

export class DirectoryFolder implements ModelFolder {
  constructor(readonly name: string) {}

  async has(file: string): Promise<boolean> {
    return stat(join(this.name, file)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  async bytes(file: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(join(this.name, file)));
    } catch (e) {
      throw new ModelFolderError(this.name, file, missingOr(e));
    }
  }

  async source(file: string): Promise<ByteSource> {
    try {
      const handle = await open(join(this.name, file));
      const { size } = await handle.stat();
      return fileHandleSource(handle, size);
    } catch (e) {
      throw new ModelFolderError(this.name, file, missingOr(e));
    }
  }

  async text(file: string): Promise<string> {
    return new TextDecoder().decode(await this.bytes(file));
  }

  async json<T>(file: string): Promise<T> {
    try {
      return JSON.parse(await this.text(file)) as T;
    } catch (e) {
      if (e instanceof ModelFolderError) throw e;
      throw new ModelFolderError(this.name, file, `is not valid JSON (${(e as Error).message})`);
    }
  }
}

function missingOr(e: unknown): string {
  return (e as NodeJS.ErrnoException).code === 'ENOENT'
    ? 'missing from the model folder'
    : `could not be read (${(e as Error).message})`;
}
