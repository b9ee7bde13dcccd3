// NCHW channel concat/split against the float64 reference: 2- and 3-way, odd channel counts and spatial
// sizes, backward into accumulating gradients with a part that needs none.
import { describe, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { kernelContext, upload } from './common';
import { concatChannels, concatChannelsBackward } from './concat';
import { concatChannelsRef, splitChannelsRef } from './concat.ref';
import {
  assertClose,
  canaryBuffer,
  canaryBufferWith,
  finiteDifference,
  foldingContext,
  randn,
  readCanaried,
  rng,
  tolerance,
} from './testing';

const EXACT = { atol: 0, rtol: 0 };

describe('concat reference', () => {
  it('split is the backward of concat (finite differences)', () => {
    const r = rng(4);
    const [channels, batch, hw] = [[2, 3], 2, 5];
    const parts = channels.map((c) => Float64Array.from(randn(r, batch * c * hw)));
    const w = Float64Array.from(randn(r, batch * 5 * hw));
    const grads = splitChannelsRef(w, channels, batch, hw);
    parts.forEach((p, k) => {
      const f = (v: Float64Array) =>
        concatChannelsRef(
          parts.map((q, j) => (j === k ? v : q)),
          channels,
          batch,
          hw,
        ).reduce((s, y, i) => s + y * w[i], 0);
      assertClose(grads[k], finiteDifference(f, p), { atol: 1e-8, rtol: 1e-6 }, `part ${k} vs FD`);
    });
  });
});

describe('concat kernels (GPU)', () => {
  it.each([
    [1, [1, 1], 1],
    [2, [3, 5], 63],
    [3, [4, 1, 7], 17],
    [2, [160, 160], 81],
  ])('batch=%i channels=%j hw=%i', async (batch, channels, hw) => {
    const total = channels.reduce((a, b) => a + b, 0);
    const n = batch * total * hw;
    const base = kernelContext(await testGpu());
    const k = n > 10000 ? foldingContext(base) : base;
    const r = rng(n);
    const parts = channels.map((c) => randn(r, batch * c * hw));
    const out = canaryBuffer(k, 'concat.out', n);
    const partBufs = parts.map((p, i) => ({ buffer: upload(k, `part${i}`, p), channels: channels[i] }));
    await concatChannels(k, { parts: partBufs, out, batch, hw });
    const want = concatChannelsRef(
      parts.map((p) => Float64Array.from(p)),
      channels,
      batch,
      hw,
    );
    assertClose(await readCanaried(k, out, n), want, EXACT, 'concat');

    // Backward: every part but the second accumulates onto prior gradients; the second needs none.
    const dOut = randn(r, n);
    const inits = channels.map((c) => randn(r, batch * c * hw));
    const dParts = channels.map((c, i) => ({
      buffer: i === 1 ? undefined : canaryBufferWith(k, `concat.dPart${i}`, inits[i]),
      channels: c,
    }));
    await concatChannelsBackward(k, { dOut: upload(k, 'dOut', dOut), dParts, batch, hw, accumulate: true });
    const wantParts = splitChannelsRef(Float64Array.from(dOut), channels, batch, hw);
    for (const [i, p] of dParts.entries()) {
      if (!p.buffer) continue;
      const w = wantParts[i].map((v, j) => v + inits[i][j]);
      assertClose(await readCanaried(k, p.buffer, w.length), w, tolerance('elementwise'), `dPart ${i}`);
    }
  });
});
