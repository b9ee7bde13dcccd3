// A whole session as one file: "LORA2SES", a u32 format version, a u32 header length, a JSON header with
// every IndexedDB record of the session, then the binary parts (photos, samples, checkpoint tensors)
// that the header points into. No zip; Blobs are sliced lazily on import, never copied twice.

export const SESSION_FILE_MAGIC = 'LORA2SES';
export const SESSION_FILE_VERSION = 1;
export const SESSION_FILE_EXTENSION = '.lora2session';
const PREFIX_BYTES = 16;

export interface SessionFileHeader {
  meta: Record<string, unknown>;
  entries: [string, unknown][];
}

export class SessionFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SessionFileError';
  }
}

type Part = Blob | Uint8Array<ArrayBuffer>;
type TypedArrayName =
  | 'Int8Array'
  | 'Uint8Array'
  | 'Uint8ClampedArray'
  | 'Int16Array'
  | 'Uint16Array'
  | 'Int32Array'
  | 'Uint32Array'
  | 'Float32Array'
  | 'Float64Array'
  | 'BigInt64Array'
  | 'BigUint64Array'
  | 'DataView'
  | 'ArrayBuffer';

const VIEW_TYPES: Record<Exclude<TypedArrayName, 'ArrayBuffer'>, new (b: ArrayBuffer) => ArrayBufferView> = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
};

/** Encodes structured-clone data into JSON plus binary parts; `$`-keys mark what JSON cannot hold. */
class Encoder {
  parts: Part[] = [];
  offset = 0;

  private add(part: Part): { offset: number; length: number } {
    const at = { offset: this.offset, length: part instanceof Blob ? part.size : part.byteLength };
    this.parts.push(part);
    this.offset += at.length;
    return at;
  }

  value(v: unknown): unknown {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? v : { $num: String(v) };
    if (v === undefined) return { $undef: 1 };
    if (v instanceof Blob) return { $blob: { type: v.type, ...this.add(v) } };
    if (v instanceof ArrayBuffer)
      return { $bin: { type: 'ArrayBuffer', ...this.add(new Uint8Array(v.slice(0))) } };
    if (ArrayBuffer.isView(v)) {
      const bytes = new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer);
      return { $bin: { type: v.constructor.name, ...this.add(bytes) } };
    }
    if (v instanceof Date) return { $date: v.getTime() };
    if (Array.isArray(v)) return v.map((x) => this.value(x));
    if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      const out: Record<string, unknown> = {};
      let escaped = false;
      for (const [k, x] of Object.entries(v)) {
        out[k] = this.value(x);
        if (k.startsWith('$')) escaped = true;
      }
      return escaped ? { $obj: out } : out;
    }
    throw new SessionFileError(`cannot store a ${Object.prototype.toString.call(v)} in a session file`);
  }
}

/** The session file for `entries` (IndexedDB key/value pairs) and `meta` (format, ids, dates). */
export function encodeSessionFile(header: SessionFileHeader): Blob {
  const enc = new Encoder();
  const json = JSON.stringify({
    meta: header.meta,
    entries: header.entries.map(([k, v]) => [k, enc.value(v)]),
  });
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(PREFIX_BYTES);
  prefix.set(new TextEncoder().encode(SESSION_FILE_MAGIC));
  const dv = new DataView(prefix.buffer);
  dv.setUint32(8, SESSION_FILE_VERSION, true);
  dv.setUint32(12, headerBytes.byteLength, true);
  return new Blob([prefix, headerBytes, ...enc.parts], { type: 'application/octet-stream' });
}

class Decoder {
  private bytes?: Promise<ArrayBuffer>;
  constructor(private readonly payload: Blob) {}

  private region(r: { offset: number; length: number }): void {
    if (!(r.offset >= 0 && r.length >= 0 && r.offset + r.length <= this.payload.size)) {
      throw new SessionFileError('a part points past the end of the file (truncated download?)');
    }
  }

  async value(v: unknown): Promise<unknown> {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return Promise.all(v.map((x) => this.value(x)));
    const o = v as Record<string, unknown>;
    if ('$num' in o) return Number(o.$num);
    if ('$undef' in o) return undefined;
    if ('$date' in o) return new Date(o.$date as number);
    if ('$blob' in o) {
      const b = o.$blob as { type: string; offset: number; length: number };
      this.region(b);
      return this.payload.slice(b.offset, b.offset + b.length, b.type);
    }
    if ('$bin' in o) {
      const b = o.$bin as { type: TypedArrayName; offset: number; length: number };
      this.region(b);
      this.bytes ??= this.payload.arrayBuffer();
      const buf = (await this.bytes).slice(b.offset, b.offset + b.length);
      if (b.type === 'ArrayBuffer') return buf;
      const View = VIEW_TYPES[b.type];
      if (!View) throw new SessionFileError(`unknown binary type ${b.type}`);
      return new View(buf);
    }
    const src = ('$obj' in o ? o.$obj : o) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(src)) out[k] = await this.value(x);
    return out;
  }
}

/** Reads a session file; throws SessionFileError with a readable reason for anything else. */
export async function decodeSessionFile(file: Blob): Promise<SessionFileHeader> {
  const prefix = new Uint8Array(await file.slice(0, PREFIX_BYTES).arrayBuffer());
  if (
    prefix.byteLength < PREFIX_BYTES ||
    new TextDecoder().decode(prefix.subarray(0, 8)) !== SESSION_FILE_MAGIC
  ) {
    throw new SessionFileError('This is not a LoRA² Studio session file.');
  }
  const dv = new DataView(prefix.buffer);
  const version = dv.getUint32(8, true);
  if (version > SESSION_FILE_VERSION) {
    throw new SessionFileError(
      `This session file has format ${version}; this version of LoRA² Studio reads up to ${SESSION_FILE_VERSION}.`,
    );
  }
  const headerLength = dv.getUint32(12, true);
  if (PREFIX_BYTES + headerLength > file.size) throw new SessionFileError('The session file is truncated.');
  let header: { meta: Record<string, unknown>; entries: [string, unknown][] };
  try {
    header = JSON.parse(await file.slice(PREFIX_BYTES, PREFIX_BYTES + headerLength).text());
  } catch {
    throw new SessionFileError('The session file header is damaged.');
  }
  if (!Array.isArray(header?.entries)) throw new SessionFileError('The session file header is damaged.');
  const dec = new Decoder(file.slice(PREFIX_BYTES + headerLength));
  const entries: [string, unknown][] = [];
  for (const [k, v] of header.entries) entries.push([String(k), await dec.value(v)]);
  return { meta: header.meta ?? {}, entries };
}
