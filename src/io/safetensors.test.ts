// safetensors: byte-level layout, conversions, every validation error, and streaming over the three sources.
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  SafetensorsError,
  SafetensorsReader,
  bf16ToFloat32,
  f16ToFloat32,
  float32ToBf16,
  float32ToF16,
  parseHeader,
  readHeader,
  writeSafetensors,
  type SafetensorsProblem,
} from './safetensors';
import { blobSource, bytesSource, fileHandleSource, type ByteSource } from './sources';

/** A file built by hand, byte by byte, independent of the writer. */
function handBuilt(header: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

async function expectProblem(
  p: Promise<unknown>,
  problem: SafetensorsProblem,
  tensor?: string,
  text?: RegExp,
) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SafetensorsError);
  const e = err as SafetensorsError;
  expect(e.problem).toBe(problem);
  expect(e.tensor).toBe(tensor);
  if (tensor !== undefined) expect(e.message).toContain(tensor);
  if (text) expect(e.message).toMatch(text);
}

const open_ = (bytes: Uint8Array) => SafetensorsReader.open(bytesSource(bytes));

describe('reading a hand-built file', () => {
  it('parses header, metadata and values; offsets are relative to the data section', async () => {
    const data = new Uint8Array([...f32Bytes([1.5, -2]), 0x00, 0x3c, 0x00, 0xc0, 7, 9]); // f16 1, -2; u8 7, 9
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"h":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},' +
      '"u":{"dtype":"U8","shape":[2],"data_offsets":[12,14]}}';
    const r = await open_(handBuilt(header, data));
    expect(r.metadata).toEqual({ format: 'pt' });
    expect([...r.tensors.keys()]).toEqual(['a', 'h', 'u']);
    expect(r.info('h')).toMatchObject({ dtype: 'F16', shape: [1, 2], byteLength: 4 });
    expect(r.info('h').byteOffset).toBe(8 + header.length + 8);
    expect([...(await r.readFloat32('a'))]).toEqual([1.5, -2]);
    expect([...(await r.readFloat32('h'))]).toEqual([1, -2]);
    expect([...(await r.readTyped('u'))]).toEqual([7, 9]);
    await expectProblem(r.readFloat32('u'), 'conversion', 'u', /not a float/);
    await expectProblem(r.readBytes('nope'), 'header-schema', 'nope');
  });

  it('reads I32 and I64 and BF16, misaligned in the file', async () => {
    const data = new Uint8Array(4 + 8 + 2);
    const dv = new DataView(data.buffer);
    dv.setInt32(0, -123456, true);
    dv.setBigInt64(4, -(2n ** 40n), true);
    dv.setUint16(12, 0x3fc0, true); // bf16 1.5
    const header =
      '{"i":{"dtype":"I32","shape":[],"data_offsets":[0,4]},' +
      '"l":{"dtype":"I64","shape":[1],"data_offsets":[4,12]},' +
      '"b":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]}}';
    // Pad the header (spaces are legal JSON) so the data section starts at an odd offset: every typed
    // view then needs the aligned copy.
    const padded = header + ' '.repeat((8 - ((header.length + 8 + 3) % 8)) % 8);
    expect((8 + padded.length) % 8).toBe(5);
    const r = await open_(handBuilt(padded, data));
    expect([...(await r.readTyped('i'))]).toEqual([-123456]);
    expect([...(await r.readTyped('l'))]).toEqual([-(2n ** 40n)]);
    expect([...(await r.readFloat32('b'))]).toEqual([1.5]);
  });
});

describe('writer', () => {
  it('pads the header with spaces to 8 bytes and aligns each tensor to its element size', () => {
    const file = writeSafetensors(
      {
        z: { dtype: 'U8', shape: [3], data: [1, 2, 3] },
        w: { dtype: 'F16', shape: [1], data: [0.5] },
        d: { dtype: 'F64', shape: [1], data: [Math.PI] },
        f: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      },
      { note: 'x' },
    );
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const json = new TextDecoder().decode(file.subarray(8, 8 + n));
    expect(json.trimEnd().endsWith('}')).toBe(true);
    expect(/^ *$/.test(json.slice(json.trimEnd().length))).toBe(true);
    const parsed = JSON.parse(json);
    expect(Object.keys(parsed)).toEqual(['__metadata__', 'd', 'f', 'w', 'z']); // by element size, then name
    for (const k of ['d', 'f', 'w', 'z']) {
      const size = { d: 8, f: 4, w: 2, z: 1 }[k]!;
      expect(parsed[k].data_offsets[0] % size).toBe(0);
    }
    expect(parseHeader(file.subarray(8, 8 + n), file.length).tensors.size).toBe(4);
  });

  it('round-trips every float dtype and integer passthrough', async () => {
    const vals = [0, 1, -2.5, 1e-3, 65504, 3.14159];
    const file = writeSafetensors({
      f32: { dtype: 'F32', shape: [2, 3], data: vals },
      f16: { dtype: 'F16', shape: [6], data: new Float32Array(vals) },
      bf16: { dtype: 'BF16', shape: [6], data: vals },
      f64: { dtype: 'F64', shape: [6], data: vals },
      i32: { dtype: 'I32', shape: [3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) },
      i64: { dtype: 'I64', shape: [2], data: [-5, 2 ** 40] },
      u8: { dtype: 'U8', shape: [2], data: [0, 255] },
      raw: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xbc00]) },
      bytes: { dtype: 'I32', shape: [1], bytes: new Uint8Array([1, 0, 0, 0]) },
      empty: { dtype: 'F32', shape: [0, 4], data: [] },
    });
    const r = await open_(file);
    expect([...(await r.readFloat32('f32'))]).toEqual(vals.map(Math.fround));
    expect([...(await r.readFloat32('f64'))]).toEqual(vals.map(Math.fround));
    const f16 = await r.readFloat32('f16');
    vals.forEach((v, i) => expect(Math.abs(f16[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11));
    const bf16 = await r.readFloat32('bf16');
    vals.forEach((v, i) => expect(Math.abs(bf16[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8));
    expect([...(await r.readTyped('i32'))]).toEqual([-1, 0, 2 ** 31 - 1]);
    expect([...(await r.readTyped('i64'))]).toEqual([-5n, 2n ** 40n]);
    expect([...(await r.readTyped('u8'))]).toEqual([0, 255]);
    expect([...(await r.readFloat32('raw'))]).toEqual([1, -1]);
    expect([...(await r.readTyped('bytes'))]).toEqual([1]);
    expect((await r.readFloat32('empty')).length).toBe(0);
  });

  it('refuses data that does not fit the shape', () => {
    expect(() => writeSafetensors({ t: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3] } })).toThrow(
      /"t".*3 values.*4/,
    );
    expect(() => writeSafetensors({ t: { dtype: 'F16', shape: [2], bytes: new Uint8Array(3) } })).toThrow(
      /3 bytes.*needs 4/,
    );
    expect(() => writeSafetensors({ t: { dtype: 'Q4' as never, shape: [1], data: [1] } })).toThrow(
      /unknown dtype/,
    );
  });
});

describe('f16 / bf16 conversion', () => {
  it('every finite half survives decode -> encode, and NaN stays NaN', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = f16ToFloat32(all);
    const back = float32ToF16(decoded);
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) expect(Number.isNaN(decoded[h])).toBe(true);
      else if (back[h] !== h)
        throw new Error(`half 0x${h.toString(16)} -> ${decoded[h]} -> 0x${back[h].toString(16)}`);
    }
  });

  it('rounds to nearest even, overflows to Inf, flushes below half the smallest subnormal', () => {
    const ulp = 2 ** -10;
    const cases: [number, number][] = [
      [1 + ulp / 2, 0x3c00], // tie -> even (mantissa 0)
      [1 + (3 * ulp) / 2, 0x3c02], // tie -> even (mantissa 2)
      [1 + ulp / 2 + 2 ** -20, 0x3c01], // just above the tie
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00], // rounds past the largest finite half
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal -> even (0)
      [1.5 * 2 ** -24, 0x0002], // tie between 1 and 2 subnormal ulps -> even (2)
      [-0, 0x8000],
    ];
    const got = float32ToF16(cases.map(([v]) => v));
    cases.forEach(([v, bits], i) => expect([v, got[i].toString(16)]).toEqual([v, bits.toString(16)]));
  });

  it('bf16 keeps the top 16 bits with round-to-nearest-even', () => {
    const cases: [number, number][] = [
      [1, 0x3f80],
      [1 + 2 ** -8, 0x3f80], // tie -> even
      [1 + 3 * 2 ** -8, 0x3f82], // tie -> even (up)
      [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [-2, 0xc000],
      [3.4e38, 0x7f80], // past the largest finite bf16 -> Inf
    ];
    const got = float32ToBf16(cases.map(([v]) => v));
    cases.forEach(([v, bits], i) => expect([v, got[i].toString(16)]).toEqual([v, bits.toString(16)]));
    const nan = float32ToBf16([NaN]);
    expect(Number.isNaN(bf16ToFloat32(nan)[0])).toBe(true);
    expect([...bf16ToFloat32(new Uint16Array([0x4049, 0x0001]))]).toEqual([3.140625, 2 ** -133]);
  });
});

describe('validation errors name the problem and the tensor', () => {
  const good = () =>
    handBuilt(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
      f32Bytes([1, 2, 3]),
    );

  it('truncated files', async () => {
    await expectProblem(open_(new Uint8Array(5)), 'truncated', undefined, /too short/);
    const file = good();
    await expectProblem(
      open_(file.subarray(0, 20)),
      'truncated',
      undefined,
      /header length \d+ runs past the end/,
    );
    // Cut inside the data section: the last tensor runs past the end.
    await expectProblem(open_(file.subarray(0, file.length - 2)), 'truncated', 'b', /truncated/);
  });

  it('header length that is absurd', async () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 60n, true);
    await expectProblem(open_(bytes), 'header-length', undefined, /exceeds/);
    new DataView(bytes.buffer).setBigUint64(0, 1n, true);
    await expectProblem(open_(bytes), 'header-length', undefined, /too small/);
  });

  it('corrupt JSON, non-object header, bad metadata, bad UTF-8', async () => {
    await expectProblem(
      open_(handBuilt('{"a": {"dtype": "F32",', new Uint8Array())),
      'header-json',
      undefined,
      /corrupt header JSON/,
    );
    await expectProblem(
      open_(handBuilt('[1,2]', new Uint8Array())),
      'header-schema',
      undefined,
      /not an object/,
    );
    await expectProblem(
      open_(handBuilt('{"__metadata__":{"a":1}}', new Uint8Array())),
      'header-schema',
      undefined,
      /__metadata__\.a/,
    );
    const bad = handBuilt('{"x":1}', new Uint8Array());
    bad[10] = 0xff;
    await expectProblem(open_(bad), 'header-json', undefined, /UTF-8/);
  });

  it('unknown dtype and malformed entries', async () => {
    await expectProblem(
      open_(handBuilt('{"w":{"dtype":"Q4_0","shape":[2],"data_offsets":[0,8]}}', f32Bytes([1, 2]))),
      'dtype',
      'w',
      /unknown dtype "Q4_0"/,
    );
    await expectProblem(
      open_(handBuilt('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}', f32Bytes([1, 2]))),
      'header-schema',
      'w',
      /shape/,
    );
    await expectProblem(
      open_(handBuilt('{"w":{"dtype":"F32","shape":[2],"data_offsets":[8]}}', f32Bytes([1, 2]))),
      'header-schema',
      'w',
      /data_offsets/,
    );
  });

  it('mislabeled dtype or shape: byte length != numel * itemsize', async () => {
    await expectProblem(
      open_(handBuilt('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}}', f32Bytes([1, 2]))),
      'size-mismatch',
      'w',
      /holds 8 bytes but F16 \[2\] needs 4/,
    );
    await expectProblem(
      open_(handBuilt('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', f32Bytes([1, 2]))),
      'size-mismatch',
      'w',
    );
  });

  it('offsets that overlap, leave gaps, run past the end, or leave trailing bytes', async () => {
    const d = f32Bytes([1, 2, 3, 4]);
    await expectProblem(
      open_(
        handBuilt(
          '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
          d,
        ),
      ),
      'offsets',
      'b',
      /overlap tensor "a"/,
    );
    await expectProblem(
      open_(
        handBuilt(
          '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
          d,
        ),
      ),
      'offsets',
      'b',
      /gap of 4 bytes/,
    );
    await expectProblem(
      open_(handBuilt('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d)),
      'offsets',
      undefined,
      /8 bytes unaccounted/,
    );
    await expectProblem(
      open_(handBuilt('{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}', d)),
      'truncated',
      'a',
      /past the end of the data section \(16 bytes\)/,
    );
    await expectProblem(
      open_(handBuilt('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}', d)),
      'offsets',
      'a',
      /end before they begin/,
    );
  });

  it('a source that returns fewer bytes than the header promised', async () => {
    const file = good();
    const short: ByteSource = {
      size: file.length,
      read: async (o, n) => file.subarray(o, Math.min(o + n, file.length - 4)),
    };
    const r = await SafetensorsReader.open(short);
    await expectProblem(r.readBytes('b'), 'truncated', 'b', /only 0 of 4 bytes/);
  });
});

describe('sources', () => {
  const file = writeSafetensors({
    x: { dtype: 'F32', shape: [3], data: [1, 2, 3] },
    y: { dtype: 'BF16', shape: [2], data: [4, 5] },
  });

  it('Blob source reads the same tensors as the in-memory source', async () => {
    const r = await SafetensorsReader.open(blobSource(new Blob([file])));
    expect([...(await r.readFloat32('x'))]).toEqual([1, 2, 3]);
    expect([...(await r.readFloat32('y'))]).toEqual([4, 5]);
  });

  it('Node file handle source, with partial reads stitched together', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'st-'));
    try {
      const path = join(dir, 'a.safetensors');
      await writeFile(path, file);
      const handle = await open(path, 'r');
      try {
        const r = await SafetensorsReader.open(fileHandleSource(handle, (await handle.stat()).size));
        expect([...(await r.readFloat32('x'))]).toEqual([1, 2, 3]);
      } finally {
        await handle.close();
      }
    } finally {
      await rm(dir, { recursive: true });
    }
    // A handle that returns at most 3 bytes per call.
    const stingy = {
      read: async (buf: Uint8Array, off: number, len: number, pos: number) => {
        const n = Math.max(0, Math.min(len, 3, file.length - pos));
        buf.set(file.subarray(pos, pos + n), off);
        return { bytesRead: n };
      },
    };
    const r = await SafetensorsReader.open(fileHandleSource(stingy, file.length));
    expect([...(await r.readFloat32('y'))]).toEqual([4, 5]);
  });

  it('streams a multi-GB file: header first, then only the bytes of each tensor asked for', async () => {
    // 2 x 1.5 GB of f16 zeros that never exist in memory.
    const big = 3 * 2 ** 28; // elements per tensor
    const header = JSON.stringify({
      a: { dtype: 'F16', shape: [3, 2 ** 28], data_offsets: [0, 2 * big] },
      b: { dtype: 'F16', shape: [2, 2], data_offsets: [2 * big, 2 * big + 8] },
    });
    const json = new TextEncoder().encode(header);
    const size = 8 + json.length + 2 * big + 8;
    const reads: [number, number][] = [];
    const source: ByteSource = {
      size,
      read: async (offset, length) => {
        reads.push([offset, length]);
        const out = new Uint8Array(Math.min(length, size - offset));
        if (offset === 0) new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
        if (offset === 8) out.set(json);
        if (offset === 8 + json.length + 2 * big) out.set([0x00, 0x3c, 0x00, 0x40, 0x00, 0x42, 0x00, 0x44]);
        return out;
      },
    };
    const header_ = await readHeader(source);
    expect(header_.tensors.get('a')!.byteLength).toBe(2 * big);
    const r = await SafetensorsReader.open(source);
    expect([...(await r.readFloat32('b'))]).toEqual([1, 2, 3, 4]);
    expect(reads.slice(-1)).toEqual([[8 + json.length + 2 * big, 8]]);
    expect(Math.max(...reads.map(([, n]) => n))).toBeLessThan(1000);
  });
});
