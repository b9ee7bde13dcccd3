// A model folder (config.json, unet.safetensors, text_encoder.onnx, tokenizer, scheduler config) read from
// a URL, a local directory in Node, or files the user picked — one interface, with errors naming the file.
import { blobSource, bytesSource, type ByteSource } from '../io/sources';

export class ModelFolderError extends Error {
  override name = 'ModelFolderError';
  constructor(
    readonly folder: string,
    readonly file: string,
    message: string,
  ) {
    super(`${folder}: ${file}: ${message}`);
  }
}

export interface ModelFolder {
  /** Where it came from, for messages ("/models/emoji-tiny/", "/path/to/dir", "picked files"). */
  readonly name: string;
  has(file: string): Promise<boolean>;
  bytes(file: string): Promise<Uint8Array>;
  /** Random access for large files (safetensors are read header first, tensor by tensor). */
  source(file: string): Promise<ByteSource>;
  text(file: string): Promise<string>;
  json<T = unknown>(file: string): Promise<T>;
}

export abstract class BaseFolder implements ModelFolder {
  abstract readonly name: string;
  abstract has(file: string): Promise<boolean>;
  abstract bytes(file: string): Promise<Uint8Array>;

  async source(file: string): Promise<ByteSource> {
    return bytesSource(await this.bytes(file));
  }

  async text(file: string): Promise<string> {
    return new TextDecoder().decode(await this.bytes(file));
  }

  async json<T>(file: string): Promise<T> {
    const text = await this.text(file);
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new ModelFolderError(this.name, file, `is not valid JSON (${(e as Error).message})`);
    }
  }

  protected missing(file: string, detail = ''): ModelFolderError {
    return new ModelFolderError(
      this.name,
      file,
      `missing from the model folder${detail ? ` (${detail})` : ''}`,
    );
  }
}

/** A folder served over HTTP (the embedded default model, or a URL the user gives). */
export class UrlFolder extends BaseFolder {
  readonly name: string;
  private readonly cache = new Map<string, Promise<Response>>();

  constructor(
    readonly baseUrl: string,
    private readonly fetchFn: typeof fetch = (...a) => fetch(...a),
  ) {
    super();
    this.name = baseUrl;
  }

  private url(file: string): string {
    return new URL(file, this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`).toString();
  }

  private get(file: string): Promise<Response> {
    let r = this.cache.get(file);
    if (!r) {
      r = this.fetchFn(this.url(file));
      this.cache.set(file, r);
    }
    return r.then((res) => res.clone());
  }

  /** True for a real file: dev servers answer unknown paths with their index.html (SPA fallback). */
  private static found(res: Response, file: string): boolean {
    const html = (res.headers.get('content-type') ?? '').includes('text/html');
    return res.ok && (!html || file.endsWith('.html'));
  }

  async has(file: string): Promise<boolean> {
    try {
      return UrlFolder.found(await this.get(file), file);
    } catch {
      return false;
    }
  }

  async bytes(file: string): Promise<Uint8Array> {
    let res: Response;
    try {
      res = await this.get(file);
    } catch (e) {
      throw new ModelFolderError(
        this.name,
        file,
        `could not be fetched (${(e as Error).message}); are you offline?`,
      );
    }
    if (!UrlFolder.found(res, file)) throw this.missing(file, `HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  }

  override async source(file: string): Promise<ByteSource> {
    const res = await this.get(file).catch((e) => {
      throw new ModelFolderError(this.name, file, `could not be fetched (${(e as Error).message})`);
    });
    if (!UrlFolder.found(res, file)) throw this.missing(file, `HTTP ${res.status}`);
    return blobSource(await res.blob());
  }
}

/** Files the user picked or dropped (a directory upload or several files). */
export class FileListFolder extends BaseFolder {
  readonly name = 'picked files';
  private readonly files = new Map<string, Blob>();

  constructor(files: Iterable<File>) {
    super();
    for (const f of files) this.files.set(f.name, f);
  }

  async has(file: string): Promise<boolean> {
    return this.files.has(file);
  }

  async bytes(file: string): Promise<Uint8Array> {
    const f = this.files.get(file);
    if (!f) throw this.missing(file);
    return new Uint8Array(await f.arrayBuffer());
  }

  override async source(file: string): Promise<ByteSource> {
    const f = this.files.get(file);
    if (!f) throw this.missing(file);
    return blobSource(f);
  }
}

/** In-memory files (tests, generated models). */
export class MemoryFolder extends BaseFolder {
  constructor(
    readonly name: string,
    private readonly files: Map<string, Uint8Array>,
  ) {
    super();
  }

  async has(file: string): Promise<boolean> {
    return this.files.has(file);
  }

  async bytes(file: string): Promise<Uint8Array> {
    const f = this.files.get(file);
    if (!f) throw this.missing(file);
    return f;
  }
}
