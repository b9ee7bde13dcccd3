// Timestep embedding against the reference (diffusers' f32 rounding of t·f mirrored, sin/cos in f64) for
// SD's flags and diffusers' defaults, odd and tiny dims, fractional and large timesteps.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, upload } from './common';
import { timestepEmbedding, timestepFrequencies, type TimestepEmbeddingOptions } from './timestep';
import { timestepEmbeddingExact, timestepEmbeddingRef } from './timestep.ref';
import { assertClose, canaryBuffer, foldingContext, readCanaried, tolerance } from './testing';

const TIMESTEPS = [0, 1, 999, 500.5, 0.001, 981, 37, 4000];

describe('timestep embedding reference', () => {
  it('f32 frequencies are the exact ones rounded', () => {
    const f = timestepFrequencies(320, 0, 10000);
    // Each f32 step rounds the exponent e by ≤ |e|·2⁻²⁴, which exp turns into a relative error.
    f.forEach((v, j) => {
      const e = (-Math.log(10000) * j) / 160;
      expect(Math.abs(v - Math.exp(e))).toBeLessThan((1 + Math.abs(e)) * 2 ** -23 * v);
    });
  });

  it('mirroring f32 rounding moves the embedding by at most ~|t|·2⁻²³', () => {
    const got = timestepEmbeddingRef(TIMESTEPS, 320);
    const exact = timestepEmbeddingExact(TIMESTEPS, 320);
    assertClose(got, exact, { atol: 4000 * 2 ** -22, rtol: 0 }, 'rounded vs exact');
  });

  it('refuses a dim whose frequency denominator half − shift is 0', async () => {
    const k = kernelContext(await testGpu());
    const b = canaryBuffer(k, 'timestep.any', 2);
    await expect(
      timestepEmbedding(k, { timesteps: b, out: b, batch: 1, dim: 2, downscaleFreqShift: 1 }),
    ).rejects.toThrow(/half − shift/);
  });

  it('matches a hand-computed entry (SD flags: [cos | sin], shift 0)', () => {
    const e = timestepEmbeddingRef([10], 4);
    // freqs: exp(0) = 1 and exp(−ln(10000)·1/2) = 0.01
    expect(e[0]).toBeCloseTo(Math.cos(10), 6);
    expect(e[1]).toBeCloseTo(Math.cos(0.1), 6);
    expect(e[2]).toBeCloseTo(Math.sin(10), 6);
    expect(e[3]).toBeCloseTo(Math.sin(0.1), 6);
  });
});

describe('timestep embedding kernel (GPU)', () => {
  const cases: [number, TimestepEmbeddingOptions][] = [
    [320, {}],
    [7, {}],
    [1, {}],
    [4, { flipSinToCos: false, downscaleFreqShift: 1 }],
    [256, { flipSinToCos: false, downscaleFreqShift: 1, scale: 0.5, maxPeriod: 1000 }],
    [1281, { downscaleFreqShift: 1 }],
  ];
  it.each(cases)('dim=%i options=%j', async (dim, opts) => {
    const base = kernelContext(await testGpu());
    const n = TIMESTEPS.length * dim;
    const k = n > 10000 ? foldingContext(base) : base;
    const out = canaryBuffer(k, 'timestep.emb', n);
    const t = upload(k, 'timesteps', Float32Array.from(TIMESTEPS));
    await timestepEmbedding(k, { timesteps: t, out, batch: TIMESTEPS.length, dim, ...opts });
    assertClose(
      await readCanaried(k, out, n),
      timestepEmbeddingRef(TIMESTEPS, dim, opts),
      tolerance('elementwise'),
      `dim ${dim}`,
    );
  });
});
