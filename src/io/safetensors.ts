// safetensors read/write: header parsing with the format's validation rules (those of the reference Rust
// implementation), tensor-at-a-time streaming over a ByteSource, f16/bf16 <-> f32 conversion, and a writer.
// Format: u64 LE header length N, N bytes of JSON header, then the data section; offsets are relative to it.
import { f16BitsToF32, f32ToF16Bits } from '../tensor/dtype';
import type { ByteSource } from './sources';

export const SAFETENSORS_DTYPES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPES;
export const FLOAT_DTYPES: readonly SafetensorsDtype[] = ['F16', 'BF16', 'F32', 'F64'];

/** Same cap as the reference implementation: a larger header is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

export type SafetensorsProblem =
  | 'truncated'
  | 'header-length'
  | 'header-json'
  | 'header-schema'
  | 'dtype'
  | 'size-mismatch'
  | 'offsets'
  | 'conversion';

export class SafetensorsError extends Error {
  constructor(
    readonly problem: SafetensorsProblem,
    message: string,
    /** The tensor the problem is in, when it is in one. */
    readonly tensor?: string,
  ) {
    super(tensor === undefined ? `safetensors: ${message}` : `safetensors: tensor "${tensor}": ${message}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** [begin, end) relative to the start of the data section, as written in the header. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute position in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  /** Tensors in file (offset) order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** N, the JSON header's length in bytes. */
  readonly headerLength: number;
  /** 8 + N: where the data section starts. */
  readonly dataOffset: number;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPES, s);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Reads the 8-byte little-endian header length; rejects values that cannot fit in a file of `fileSize`. */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError(
      'truncated',
      `file is ${fileSize} bytes, too short for the 8-byte header length`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n < 2n)
    throw new SafetensorsError('header-length', `header length ${n} is too small for a JSON object`);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      'header-length',
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(
      'truncated',
      `header length ${n} runs past the end of the file (${fileSize} bytes): truncated file or not safetensors`,
    );
  }
  return Number(n);
}

/**
 * Parses and validates the JSON header. `fileSize` is the whole file's size; the data section must be
 * covered exactly by the tensors (sorted, contiguous, no overlap, no trailing bytes), and each tensor's byte
 * length must equal numel(shape)·itemsize.
 */
export function parseHeader(json: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = json.byteLength;
  const dataOffset = 8 + headerLength;
  const dataSize = fileSize - dataOffset;
  if (dataSize < 0)
    throw new SafetensorsError('truncated', `file of ${fileSize} bytes ends inside the header`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw new SafetensorsError('header-json', 'header is not valid UTF-8');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError('header-json', `corrupt header JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SafetensorsError('header-schema', 'header JSON is not an object');
  }

  let metadata: Record<string, string> = {};
  const entries: TensorInfo[] = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value);
      continue;
    }
    entries.push(parseEntry(name, value, dataOffset));
  }

  // Coverage: sorted by offset, each tensor starts where the previous ended, the last ends at the file end.
  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let previous: string | undefined;
  for (const t of entries) {
    const [begin, end] = t.dataOffsets;
    if (begin < cursor) {
      throw new SafetensorsError(
        'offsets',
        `data_offsets [${begin}, ${end}] overlap tensor "${previous}"`,
        t.name,
      );
    }
    if (begin > cursor) {
      throw new SafetensorsError(
        'offsets',
        `gap of ${begin - cursor} bytes before it in the data section` +
          (previous === undefined ? '' : ` (after tensor "${previous}")`),
        t.name,
      );
    }
    if (end > dataSize) {
      throw new SafetensorsError(
        'truncated',
        `data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes): truncated file`,
        t.name,
      );
    }
    cursor = end;
    previous = t.name;
  }
  if (cursor !== dataSize) {
    throw new SafetensorsError(
      'offsets',
      `data section is ${dataSize} bytes but the tensors cover ${cursor}: ${dataSize - cursor} bytes unaccounted for`,
    );
  }
  return { tensors: new Map(entries.map((t) => [t.name, t])), metadata, headerLength, dataOffset };
}

function parseMetadata(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SafetensorsError('header-schema', '__metadata__ is not an object of strings');
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string')
      throw new SafetensorsError('header-schema', `__metadata__.${k} is not a string`);
  }
  return value as Record<string, string>;
}

function parseEntry(name: string, value: unknown, dataOffset: number): TensorInfo {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SafetensorsError('header-schema', 'header entry is not an object', name);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isDtype(dtype)) throw new SafetensorsError('dtype', `unknown dtype ${JSON.stringify(dtype)}`, name);
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new SafetensorsError(
      'header-schema',
      `shape ${JSON.stringify(shape)} is not a list of sizes`,
      name,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw new SafetensorsError(
      'header-schema',
      `data_offsets ${JSON.stringify(offsets)} is not [begin, end]`,
      name,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin)
    throw new SafetensorsError('offsets', `data_offsets [${begin}, ${end}] end before they begin`, name);
  const expected = numel(shape) * SAFETENSORS_DTYPES[dtype];
  if (end - begin !== expected) {
    throw new SafetensorsError(
      'size-mismatch',
      `holds ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected} (mislabeled dtype or shape)`,
      name,
    );
  }
  return {
    name,
    dtype,
    shape: shape as number[],
    dataOffsets: [begin, end],
    byteOffset: dataOffset + begin,
    byteLength: end - begin,
  };
}

/** Reads and validates just the header: two small reads, whatever the file size. */
export async function readHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const n = parseHeaderLength(await source.read(0, 8), source.size);
  const json = await source.read(8, n);
  if (json.byteLength !== n)
    throw new SafetensorsError('truncated', `header cut short: ${json.byteLength} of ${n} bytes`);
  return parseHeader(json, source.size);
}

/** An open safetensors file: header in memory, tensors read on demand one at a time. */
export class SafetensorsReader {
  private constructor(
    readonly source: ByteSource,
    readonly header: SafetensorsHeader,
  ) {}

  static async open(source: ByteSource): Promise<SafetensorsReader> {
    return new SafetensorsReader(source, await readHeader(source));
  }

  get tensors(): ReadonlyMap<string, TensorInfo> {
    return this.header.tensors;
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (!t) throw new SafetensorsError('header-schema', 'no such tensor in this file', name);
    return t;
  }

  /** The tensor's raw little-endian bytes. */
  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const bytes = await this.source.read(t.byteOffset, t.byteLength);
    if (bytes.byteLength !== t.byteLength) {
      throw new SafetensorsError(
        'truncated',
        `only ${bytes.byteLength} of ${t.byteLength} bytes could be read`,
        name,
      );
    }
    return bytes;
  }

  /** The tensor as f32 (F16/BF16/F64 converted; F32 from an in-memory source may share its memory). */
  async readFloat32(name: string): Promise<Float32Array> {
    const t = this.info(name);
    return decodeFloat32(t.dtype, await this.readBytes(name), name);
  }

  /** The tensor in its own element type (F16/BF16 as raw Uint16 bits). */
  async readTyped(name: string): Promise<TypedTensorData> {
    const t = this.info(name);
    return decodeTyped(t.dtype, await this.readBytes(name));
  }

  /** Tensors as f32 in file order (sequential reads), one in memory at a time unless the caller keeps them. */
  async *float32Tensors(names?: Iterable<string>): AsyncGenerator<[TensorInfo, Float32Array]> {
    const wanted = names ? [...names].map((n) => this.info(n)) : [...this.header.tensors.values()];
    for (const t of wanted) yield [t, await this.readFloat32(t.name)];
  }
}

// ---- element conversion ----

export type TypedTensorData =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface TypedArrayCtor<T> {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/** A typed view over little-endian bytes, copying only when the bytes are misaligned for the element size. */
function view<T>(bytes: Uint8Array, Ctor: TypedArrayCtor<T>): T {
  if (!HOST_LITTLE_ENDIAN) throw new SafetensorsError('conversion', 'big-endian hosts are not supported');
  const size = Ctor.BYTES_PER_ELEMENT;
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new Ctor(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

export function decodeTyped(dtype: SafetensorsDtype, bytes: Uint8Array): TypedTensorData {
  switch (dtype) {
    case 'BOOL':
    case 'U8':
    case 'F8_E5M2':
    case 'F8_E4M3':
      return bytes;
    case 'I8':
      return view(bytes, Int8Array);
    case 'I16':
      return view(bytes, Int16Array);
    case 'U16':
    case 'F16':
    case 'BF16':
      return view(bytes, Uint16Array);
    case 'I32':
      return view(bytes, Int32Array);
    case 'U32':
      return view(bytes, Uint32Array);
    case 'F32':
      return view(bytes, Float32Array);
    case 'F64':
      return view(bytes, Float64Array);
    case 'I64':
      return view(bytes, BigInt64Array);
    case 'U64':
      return view(bytes, BigUint64Array);
  }
}

let f16Table: Float32Array | undefined;

/** All 65536 half values, so decoding a 1.7 GB fp16 UNet is one table lookup per element. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

export function f16ToFloat32(bits: Uint16Array): Float32Array {
  const table = halfTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** bf16 is the top half of an f32: shifting the bits back is exact. */
export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const out32 = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) out32[i] = bits[i] << 16;
  return out;
}

export function float32ToF16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return out;
}

/** Round to nearest even on the dropped 16 bits; NaN stays a quiet NaN (rounding could carry it to Inf). */
export function float32ToBf16(values: ArrayLike<number>): Uint16Array {
  const f = new Float32Array(values);
  const u = new Uint32Array(f.buffer);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

export function decodeFloat32(dtype: SafetensorsDtype, bytes: Uint8Array, tensor?: string): Float32Array {
  switch (dtype) {
    case 'F32':
      return view(bytes, Float32Array);
    case 'F16':
      return f16ToFloat32(view(bytes, Uint16Array));
    case 'BF16':
      return bf16ToFloat32(view(bytes, Uint16Array));
    case 'F64':
      return new Float32Array(view(bytes, Float64Array));
    default:
      throw new SafetensorsError(
        'conversion',
        `dtype ${dtype} is not a float type; read it with readTyped`,
        tensor,
      );
  }
}

// ---- writer ----

export interface WritableTensor {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /**
   * Values, converted to `dtype` (f32 -> F16/BF16 rounds to nearest even). Uint16Array for F16/BF16 and
   * BigInt64Array for I64 are taken as already encoded. Give either `data` or `bytes`.
   */
  data?: ArrayLike<number> | Uint16Array | BigInt64Array | BigUint64Array;
  /** Raw little-endian bytes, written as they are. */
  bytes?: Uint8Array;
}

function encode(name: string, t: WritableTensor): Uint8Array {
  const count = numel(t.shape);
  const want = count * SAFETENSORS_DTYPES[t.dtype];
  let out: Uint8Array;
  if (t.bytes !== undefined) {
    if (t.data !== undefined) throw new SafetensorsError('conversion', 'give data or bytes, not both', name);
    out = t.bytes;
  } else if (t.data === undefined) {
    throw new SafetensorsError('conversion', 'no data', name);
  } else {
    const d = t.data;
    if (d.length !== count) {
      throw new SafetensorsError(
        'size-mismatch',
        `has ${d.length} values but shape ${JSON.stringify(t.shape)} needs ${count}`,
        name,
      );
    }
    out = toBytes(encodeValues(name, t.dtype, d));
  }
  if (out.byteLength !== want) {
    throw new SafetensorsError(
      'size-mismatch',
      `has ${out.byteLength} bytes but ${t.dtype} ${JSON.stringify(t.shape)} needs ${want}`,
      name,
    );
  }
  return out;
}

function encodeValues(
  name: string,
  dtype: SafetensorsDtype,
  d: NonNullable<WritableTensor['data']>,
): TypedTensorData {
  const isBig = d instanceof BigInt64Array || d instanceof BigUint64Array;
  if (dtype === 'I64' || dtype === 'U64') {
    if (isBig) return dtype === 'I64' ? BigInt64Array.from(d, BigInt) : BigUint64Array.from(d, BigInt);
    const nums = d as ArrayLike<number>;
    return dtype === 'I64'
      ? BigInt64Array.from({ length: nums.length }, (_, i) => BigInt(Math.trunc(nums[i])))
      : BigUint64Array.from({ length: nums.length }, (_, i) => BigInt(Math.trunc(nums[i])));
  }
  if (isBig) throw new SafetensorsError('conversion', `BigInt data cannot be written as ${dtype}`, name);
  const nums = d as ArrayLike<number>;
  switch (dtype) {
    case 'F16':
      return d instanceof Uint16Array ? d : float32ToF16(nums);
    case 'BF16':
      return d instanceof Uint16Array ? d : float32ToBf16(nums);
    case 'F32':
      return Float32Array.from(nums);
    case 'F64':
      return Float64Array.from(nums);
    case 'I32':
      return Int32Array.from(nums);
    case 'U32':
      return Uint32Array.from(nums);
    case 'I16':
      return Int16Array.from(nums);
    case 'U16':
      return Uint16Array.from(nums);
    case 'I8':
      return Int8Array.from(nums);
    default:
      return Uint8Array.from(nums);
  }
}

function toBytes(a: TypedTensorData): Uint8Array {
  if (!HOST_LITTLE_ENDIAN) throw new SafetensorsError('conversion', 'big-endian hosts are not supported');
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Serializes tensors to one safetensors buffer. Tensors are laid out by element size (largest first), then
 * name, so every tensor starts aligned to its element size; the header is padded with spaces to 8 bytes.
 */
export function writeSafetensors(
  tensors: Record<string, WritableTensor>,
  metadata?: Record<string, string>,
): Uint8Array<ArrayBuffer> {
  const names = Object.keys(tensors).sort(
    (a, b) =>
      SAFETENSORS_DTYPES[tensors[b].dtype] - SAFETENSORS_DTYPES[tensors[a].dtype] ||
      (a < b ? -1 : a > b ? 1 : 0),
  );
  if (names.includes('__metadata__'))
    throw new SafetensorsError('header-schema', '"__metadata__" is reserved', '__metadata__');
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = parseMetadata(metadata);
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (!isDtype(t.dtype))
      throw new SafetensorsError('dtype', `unknown dtype ${JSON.stringify(t.dtype)}`, name);
    if (!t.shape.every(isCount))
      throw new SafetensorsError('header-schema', `bad shape ${JSON.stringify(t.shape)}`, name);
    const bytes = encode(name, t);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + padded);
  let pos = 8 + padded;
  for (const b of blobs) {
    out.set(b, pos);
    pos += b.byteLength;
  }
  return out;
}
