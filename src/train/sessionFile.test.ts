// Session file container: every value IndexedDB holds for a session survives a round trip; bad files are named.
import { describe, expect, it } from 'vitest';
import { decodeSessionFile, encodeSessionFile, SessionFileError } from './sessionFile';

describe('session file', () => {
  it('round-trips blobs, typed arrays, non-finite numbers, undefined and $-keys', async () => {
    const photo = new Blob([new Uint8Array([1, 2, 3, 4, 5])], { type: 'image/png' });
    const weights = new Float32Array([1.5, -2, Number.NaN, 3]);
    const entries: [string, unknown][] = [
      [
        'session:abc',
        { id: 'abc', name: 'dog', loss: [0.5, Number.NaN, Infinity], note: undefined, $odd: 1 },
      ],
      ['photo:abc:0', { name: 'a.png', blob: photo }],
      ['ckpt:abc:10', { step: 10, a: weights, raw: new Uint8Array([9, 8]).buffer, at: new Date(5) }],
    ];
    const file = encodeSessionFile({ meta: { format: 'x' }, entries });
    const back = await decodeSessionFile(file);
    expect(back.meta).toEqual({ format: 'x' });
    expect(back.entries.map(([k]) => k)).toEqual(entries.map(([k]) => k));

    const s = back.entries[0][1] as Record<string, unknown>;
    expect(s).toEqual({
      id: 'abc',
      name: 'dog',
      loss: [0.5, Number.NaN, Infinity],
      note: undefined,
      $odd: 1,
    });
    expect('note' in s).toBe(true);

    const p = back.entries[1][1] as { blob: Blob };
    expect(p.blob.type).toBe('image/png');
    expect([...new Uint8Array(await p.blob.arrayBuffer())]).toEqual([1, 2, 3, 4, 5]);

    const c = back.entries[2][1] as { a: Float32Array; raw: ArrayBuffer; at: Date };
    expect(c.a).toBeInstanceOf(Float32Array);
    expect([...c.a]).toEqual([...weights]);
    expect([...new Uint8Array(c.raw)]).toEqual([9, 8]);
    expect(c.at.getTime()).toBe(5);
  });

  it('keeps unaligned typed arrays (a view in the middle of a buffer)', async () => {
    const buf = new ArrayBuffer(64);
    new Float64Array(buf).set([0, 1, 2, 3, 4, 5, 6, 7]);
    const view = new Float64Array(buf, 16, 3);
    const lead = new Uint8Array([7]);
    const back = await decodeSessionFile(encodeSessionFile({ meta: {}, entries: [['k', [lead, view]]] }));
    const [l, v] = back.entries[0][1] as [Uint8Array, Float64Array];
    expect([...l]).toEqual([7]);
    expect([...v]).toEqual([2, 3, 4]);
  });

  it('names what is wrong with a bad file', async () => {
    await expect(decodeSessionFile(new Blob(['hello, not a session']))).rejects.toThrow(/not a LoRA² Studio/);
    const good = encodeSessionFile({ meta: {}, entries: [['k', new Blob(['x'.repeat(100)])]] });
    const truncated = good.slice(0, good.size - 50);
    await expect(decodeSessionFile(truncated)).rejects.toThrow(/past the end/);
    const headerCut = good.slice(0, 20);
    await expect(decodeSessionFile(headerCut)).rejects.toBeInstanceOf(SessionFileError);
  });

  it('refuses values it cannot store rather than dropping them', () => {
    expect(() => encodeSessionFile({ meta: {}, entries: [['k', new Map()]] })).toThrow(/Map/);
  });
});
