// Tensor layer on a real device: pool accounting and reuse, uploads/readback in f32 and f16, views,
// scopes, and writes ordered inside a batch.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { f16BitsToF32, f32ToF16Bits } from './dtype';
import { Engine } from './engine';
import { sizeClass } from './pool';
import { TensorReleasedError } from './tensor';

async function engine(): Promise<Engine> {
  return new Engine(await testGpu());
}

describe('size classes', () => {
  it('rounds up by at most 25% above 256 bytes, to 4-byte multiples', () => {
    for (const n of [1, 3, 255, 256, 257, 300, 1000, 4097, 123457, 5_000_001]) {
      const c = sizeClass(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c % 4).toBe(0);
      if (n > 256) expect(c).toBeLessThan(1.25 * n + 4);
    }
    expect(sizeClass(300)).toBe(sizeClass(310)); // same class, so one can reuse the other's buffer
    expect(sizeClass(1000, 900)).toBe(1000); // past the device limit: exact size
  });
});

describe('f16 conversion', () => {
  it('round-trips representable values and rounds to nearest even', () => {
    for (const v of [0, -0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8, 0.333251953125]) {
      expect(f16BitsToF32(f32ToF16Bits(v))).toBe(v);
    }
    expect(f16BitsToF32(f32ToF16Bits(1 + 2 ** -11))).toBe(1); // tie → even
    expect(f16BitsToF32(f32ToF16Bits(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(f16BitsToF32(f32ToF16Bits(1e6))).toBe(Infinity);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
  });
});

describe('buffer pool and tensors', () => {
  it('counts live and peak bytes, reuses released buffers, resets the peak', async () => {
    const e = await engine();
    const a = e.empty([1000], { label: 'a' }); // 4000 B → class 4096
    const b = e.empty([300], { label: 'b' }); // 1200 B → class 1280
    let s = e.stats();
    expect(s.liveBytes).toBe(sizeClass(4000) + sizeClass(1200));
    expect(s.liveBuffers).toBe(2);
    expect(s.created).toBe(2);
    const bufA = a.buffer;
    a.release();
    s = e.stats();
    expect(s.liveBytes).toBe(sizeClass(1200));
    expect(s.peakLiveBytes).toBe(sizeClass(4000) + sizeClass(1200));
    expect(s.cachedBytes).toBe(sizeClass(4000));
    const c = e.empty([990], { label: 'c' }); // same class as a: reused
    expect(c.buffer).toBe(bufA);
    expect(c.buffer.label).toBe('c');
    expect(e.stats().reused).toBe(1);
    expect(e.stats().created).toBe(2);
    e.pool.resetPeak();
    expect(e.stats().peakLiveBytes).toBe(e.stats().liveBytes);
    b.release();
    c.release();
    s = e.stats();
    expect(s.liveBytes).toBe(0);
    expect(s.allocatedBytes).toBe(s.cachedBytes);
    e.pool.trim();
    expect(e.stats().allocatedBytes).toBe(0);
    e.destroy();
  });

  it('gives long-lived (exact) tensors their own size, never reuses them and destroys them on release', async () => {
    const e = await engine();
    const w = e.fromArray(new Float32Array(1100).fill(2), [1100], { label: 'weight', exact: true }); // 4400 B
    expect(sizeClass(4400)).toBeGreaterThan(4400);
    expect(e.stats().liveBytes).toBe(4400);
    expect(w.buffer.size).toBe(4400);
    expect(Array.from(await w.read()).every((v) => v === 2)).toBe(true);
    const buf = w.buffer;
    w.release();
    expect(e.stats()).toMatchObject({ liveBytes: 0, cachedBytes: 0, peakAllocatedBytes: 4400 });
    const next = e.empty([1100], { label: 'activation' }); // pooled: a size class, a new buffer
    expect(next.buffer).not.toBe(buf);
    expect(e.stats().liveBytes).toBe(sizeClass(4400));
    next.release();
    e.destroy();
  });

  it('does not grow past its high-water mark while cached buffers can serve or make room', async () => {
    const footprints: number[] = [];
    for (const trimOnGrowth of [true, false]) {
      const e = new Engine(await testGpu(), { trimOnGrowth });
      const a = e.empty([1000], { label: 'a' }); // 4000 B → class 4096
      const b = e.empty([2000], { label: 'b' }); // 8000 B → class 8192
      const bufB = b.buffer;
      a.release();
      b.release(); // cached 4096 + 8192: the high-water mark is 12288
      const c = e.empty([1500], { label: 'c' }); // 6000 B → class 6144: none cached
      if (trimOnGrowth) {
        // A new 6144 would grow the pool: b's 8192 serves it.
        expect(c.buffer).toBe(bufB);
        expect(e.stats()).toMatchObject({ created: 2, reusedLarger: 1, liveBytes: 8192, cachedBytes: 4096 });
      }
      // 12000 B → class 12288, more than twice nothing cached: a's 4096 is destroyed before it is created.
      const d = e.empty([3000], { label: 'd' });
      if (trimOnGrowth) expect(e.stats()).toMatchObject({ created: 3, evicted: 1, cachedBytes: 0 });
      footprints.push(e.stats().peakAllocatedBytes);
      // Inside a recording nothing is destroyed (an unsubmitted command may use it); stretching still works.
      c.release();
      d.release();
      await e.batch('record', () => {
        const f = e.empty([6000], { label: 'f' }); // class 24576: grows, but may not evict
        const g = e.empty([1100], { label: 'g' }); // class 5120 (none cached): c's 8192 serves it
        if (trimOnGrowth) expect(g.buffer.size).toBe(8192);
        f.release();
        g.release();
      });
      if (trimOnGrowth) expect(e.stats().evicted).toBe(1);
      e.destroy();
    }
    // With the policy the pool peaked at d + c = 12288 + 8192; without it, at a + b + c + d.
    expect(footprints).toEqual([12288 + 8192, 4096 + 8192 + 6144 + 12288]);
  });

  it('uploads and reads back f32 and f16, zeros and fills', async () => {
    const e = await engine();
    const data = Float32Array.from({ length: 7 }, (_, i) => i * 0.5 - 1.25);
    expect(Array.from(await e.fromArray(data, [7]).read())).toEqual(Array.from(data));
    // Odd f16 element count: the upload is padded to 4 bytes.
    const h = e.fromArray([1, -2, 0.5, 3.25, 65504], [5], { dtype: 'f16' });
    expect(h.byteSize).toBe(10);
    expect(Array.from(await h.read())).toEqual([1, -2, 0.5, 3.25, 65504]);
    const z = e.fromArray([9, 9, 9], [3]);
    e.clear(z);
    expect(Array.from(await z.read())).toEqual([0, 0, 0]);
    expect(Array.from(await e.full([2, 2], 3).read())).toEqual([3, 3, 3, 3]);
    e.destroy();
  });

  it('readMany reads f32 and f16 tensors of odd sizes in one wait, in order, equal to read()', async () => {
    const e = await engine();
    const ts = [
      e.fromArray([1, 2, 3], [3]),
      e.fromArray([0.5, -1, 2, 4, -8], [5], { dtype: 'f16' }),
      e.fromArray(
        Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i)),
        [1001],
      ),
      e.fromArray([7], [1]),
    ];
    const many = await e.readMany(ts);
    expect(many.map((a) => a.length)).toEqual([3, 5, 1001, 1]);
    for (let i = 0; i < ts.length; i++) expect(Array.from(many[i])).toEqual(Array.from(await ts[i].read()));
    expect(await e.readMany([])).toEqual([]);
    e.destroy();
  });

  it('views share storage; the buffer returns to the pool when the last reference goes', async () => {
    const e = await engine();
    const t = e.fromArray([1, 2, 3, 4, 5, 6], [2, 3], { label: 't' });
    const v = t.view([3, -1]);
    expect(v.shape).toEqual([3, 2]);
    expect(v.buffer).toBe(t.buffer);
    t.release();
    t.release(); // idempotent
    expect(e.stats().liveBuffers).toBe(1);
    expect(Array.from(await v.read())).toEqual([1, 2, 3, 4, 5, 6]);
    v.release();
    expect(e.stats().liveBuffers).toBe(0);
    expect(() => v.buffer).toThrow(TensorReleasedError);
    expect(() => t.view([6])).toThrow(TensorReleasedError);
    expect(() => e.fromArray([1, 2], [3])).toThrow(/2 values/);
    e.destroy();
  });

  it('scopes release what they made, except what they return or keep', async () => {
    const e = await engine();
    let kept!: ReturnType<Engine['zeros']>;
    const out = await e.scope(async () => {
      e.zeros([10]);
      const inner = await e.scope(() => [e.zeros([20]), e.zeros([30])][1]);
      kept = e.keep(e.zeros([40]));
      return { inner, also: [e.zeros([50])] };
    });
    expect(e.stats().liveBuffers).toBe(3);
    expect(out.inner.size).toBe(30);
    expect(out.also[0].alive).toBe(true);
    expect(kept.alive).toBe(true);
    // A failing scope still releases what it made.
    await expect(
      e.scope(() => {
        e.zeros([60]);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(e.stats().liveBuffers).toBe(3);
    for (const t of [out.inner, out.also[0], kept]) t.release();
    expect(e.stats().liveBytes).toBe(0);
    e.destroy();
  });

  it('orders a write into a reused buffer after recorded work that still reads it', async () => {
    const e = await engine();
    const src = e.fromArray([1, 2, 3, 4], [4], { label: 'src' });
    const dst = e.zeros([4], { label: 'dst' });
    await e.batch('reuse', async () => {
      e.copy(src, dst); // recorded: reads src
      src.release();
      const again = e.fromArray([7, 7, 7, 7], [4], { label: 'again' }); // reuses src's buffer
      expect(again.buffer.label).toBe('again');
      await expect(again.read()).rejects.toThrow(/open batch/);
      again.release();
    });
    expect(Array.from(await dst.read())).toEqual([1, 2, 3, 4]);
    e.destroy();
  });
});
