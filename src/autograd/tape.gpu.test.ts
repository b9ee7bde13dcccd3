// The autograd tape on a real device: gradients of small graphs against finite differences of float64
// compositions of the kernels' references, frozen weights, freeing during backward, checkpointing, noGrad.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { attentionRef, mergeHeadsRef, splitHeadsRef } from '../kernels/attention.ref';
import type { Conv2dShape } from '../kernels/conv2d';
import { conv2dRef } from '../kernels/conv2d.ref';
import { binaryRef, unaryRef } from '../kernels/elementwise.ref';
import { randn, rng } from '../kernels/testing';
import { Engine } from '../tensor/engine';
import { sizeClass } from '../tensor/pool';
import type { Tensor } from '../tensor/tensor';
import {
  add,
  attention,
  conv2d,
  mean,
  mergeHeads,
  mul,
  reshape,
  silu,
  sliceRows,
  splitHeads,
  sum,
} from './ops';
import { backward, checkpoint, GraphError, noGrad, tapeLength, zeroGrad } from './tape';
import { dispatchLabels, finiteDifferenceGrads, leaf, relativeError } from './testing';

/**
 * These tests count what the tape keeps alive in live bytes, one size class per tensor: the pool must not
 * serve a request with a larger cached buffer (trimOnGrowth), which would count that buffer's whole size.
 */
async function engine(): Promise<Engine> {
  return new Engine(await testGpu(), { trimOnGrowth: false });
}

const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const meanOf = (a: Float64Array) => a.reduce((s, v) => s + v, 0) / a.length;
/** Live bytes the pool charges for these tensors. */
const bytesOf = (ts: (Tensor | undefined)[]) => ts.reduce((s, t) => s + (t ? sizeClass(t.byteSize) : 0), 0);

/** GPU gradients must match finite differences of the f64 reference to this relative error (f32 math). */
const GRAD_RTOL = 2e-3;

describe('autograd tape', () => {
  // conv2d(pad 1) → silu → × per-channel scale (broadcast) → h·h + h → mean
  const cs: Conv2dShape = { batch: 2, cin: 2, h: 5, w: 4, cout: 3, kh: 3, kw: 3, stride: 1, pad: 1 };
  const hs = [cs.batch, cs.cout, cs.h, cs.w];
  const rand = rng(7);
  const init = {
    x: randn(rand, cs.batch * cs.cin * cs.h * cs.w),
    w: randn(rand, cs.cout * cs.cin * cs.kh * cs.kw, 0.4),
    b: randn(rand, cs.cout, 0.1),
    s: randn(rand, cs.cout),
  };
  const lossRef = ([x, w, b, s]: Float64Array[]) => {
    const a = unaryRef('silu', conv2dRef(x, w, b, cs));
    const h = binaryRef('mul', a, hs, s, [1, cs.cout, 1, 1]);
    return meanOf(binaryRef('add', binaryRef('mul', h, hs, h, hs), hs, h, hs));
  };
  const forward = (e: Engine, [x, w, b, s]: Tensor[]) =>
    e.scope(async () => {
      const a = await silu(await conv2d(x, w, b, { padding: 1 }));
      const h = await mul(a, reshape(s, [1, cs.cout, 1, 1]));
      // h feeds three uses (both operands of h·h and the add): gradients accumulate, the add's is moved.
      const y = await add(await mul(h, h), h);
      return mean(reshape(y, [-1]));
    });
  const leaves = (e: Engine) => [
    leaf(e, init.x, [cs.batch, cs.cin, cs.h, cs.w], 'x'),
    leaf(e, init.w, [cs.cout, cs.cin, cs.kh, cs.kw], 'w'),
    leaf(e, init.b, [cs.cout], 'b'),
    leaf(e, init.s, [cs.cout], 's'),
  ];

  it('conv → silu → broadcast mul → reuse → mean: gradients match finite differences', async () => {
    const e = await engine();
    const params = leaves(e);
    const loss = await forward(e, params);
    expect(loss.requiresGrad).toBe(true);
    const fd = finiteDifferenceGrads(lossRef, Object.values(init).map(f64));
    expect((await loss.read())[0]).toBeCloseTo(lossRef(Object.values(init).map(f64)), 5);
    await backward(loss);
    expect(tapeLength(e)).toBe(0);
    for (const [i, p] of params.entries()) {
      const err = relativeError(await p.grad!.read(), fd[i]);
      expect(err, `d${p.label}`).toBeLessThan(GRAD_RTOL);
    }
    // Intermediates and intermediate gradients are gone: what is live is parameters, gradients, loss.
    expect(e.stats().liveBytes).toBe(bytesOf([...params, ...params.map((p) => p.grad), loss]));
    // A second backward accumulates into .grad.
    const first = await params[1].grad!.read();
    loss.release();
    const again = await forward(e, params);
    await backward(again);
    const twice = await params[1].grad!.read();
    expect(
      relativeError(
        twice,
        first.map((v) => 2 * v),
      ),
    ).toBeLessThan(1e-6);
    again.release();
    e.destroy();
  });

  it('frozen weights get no gradient and launch no weight-gradient kernel', async () => {
    const e = await engine();
    const params = leaves(e);
    const [x, w, b] = params;
    w.requiresGrad = false;
    b.requiresGrad = false;
    const fd = finiteDifferenceGrads(lossRef, Object.values(init).map(f64));
    const labels = await dispatchLabels(e, async () => {
      const loss = await forward(e, params);
      await backward(loss);
      loss.release();
    });
    const ran = (op: string) => labels.some((l) => l.startsWith(op));
    expect(ran('conv2d.backwardInput')).toBe(true);
    expect(ran('conv2d.backwardWeight')).toBe(false);
    expect(ran('conv2d.backwardBias')).toBe(false);
    expect(w.grad).toBeUndefined();
    expect(b.grad).toBeUndefined();
    expect(relativeError(await x.grad!.read(), fd[0])).toBeLessThan(GRAD_RTOL);
    expect(relativeError(await params[3].grad!.read(), fd[3])).toBeLessThan(GRAD_RTOL);
    e.destroy();
  });

  it.each([
    ['one submit', undefined],
    ['3 nodes per submit', 3],
    ['unbatched', 0],
  ])(
    'frees activations and intermediate gradients during backward, not after (%s)',
    async (_, nodesPerSubmit) => {
      const e = await engine();
      const n = 4096;
      const layers = 8;
      const x = leaf(e, randn(rng(3), n), [n], 'x');
      const loss = await e.scope(async () => {
        let h = x;
        for (let i = 0; i < layers; i++) h = await silu(h);
        return sum(h);
      });
      const afterForward = e.stats().liveBytes;
      // silu saves its input: x and 7 activations stay for the backward; the last activation was released.
      expect(afterForward).toBe(bytesOf([x, loss]) + (layers - 1) * sizeClass(4 * n));
      e.pool.resetPeak();
      await backward(loss, { nodesPerSubmit });
      const s = e.stats();
      // Keeping every gradient would add `layers` activation-sized buffers; freeing as we go adds ~2.
      expect(s.peakLiveBytes).toBeLessThanOrEqual(afterForward + 3 * sizeClass(4 * n));
      expect(s.liveBytes).toBe(bytesOf([x, x.grad, loss]));
      // The gradient itself: d/dx of Σ silu∘…∘silu(x), chain rule in float64.
      const ref = Float64Array.from(await x.read(), (v) => {
        let d = 1;
        for (let i = 0; i < layers; i++) {
          const sg = 1 / (1 + Math.exp(-v));
          d *= sg * (1 + v * (1 - sg));
          v = v * sg;
        }
        return d;
      });
      expect(relativeError(await x.grad!.read(), ref)).toBeLessThan(1e-5);
      e.destroy();
    },
  );

  it('checkpointing gives the same gradients with a lower peak', async () => {
    const e = await engine();
    const c = 8;
    const size = 12;
    const segments = 4;
    const rand = rng(11);
    const x = leaf(e, randn(rand, c * size * size), [1, c, size, size], 'x', false);
    const weights = Array.from({ length: 2 * segments }, (_, i) =>
      leaf(e, randn(rand, c * c * 9, 0.2), [c, c, 3, 3], `w${i}`),
    );
    const segment = (k: number) => async (h: Tensor) => {
      const a = await silu(await conv2d(h, weights[2 * k], undefined, { padding: 1 }));
      return silu(await conv2d(a, weights[2 * k + 1], undefined, { padding: 1 }));
    };
    const run = async (useCheckpoint: boolean) => {
      zeroGrad(weights);
      e.pool.resetPeak();
      const loss = await e.scope(async () => {
        let h = x;
        for (let k = 0; k < segments; k++)
          h = useCheckpoint ? await checkpoint(segment(k), [h]) : await segment(k)(h);
        return mean(h);
      });
      await backward(loss);
      const value = (await loss.read())[0];
      loss.release();
      return {
        value,
        peak: e.stats().peakLiveBytes,
        grads: await Promise.all(weights.map((w) => w.grad!.read())),
      };
    };
    const plain = await run(false);
    const live = e.stats().liveBytes;
    const ckpt = await run(true);
    expect(e.stats().liveBytes).toBe(live);
    expect(ckpt.value).toBe(plain.value);
    for (let i = 0; i < weights.length; i++)
      expect(relativeError(ckpt.grads[i], plain.grads[i])).toBeLessThan(1e-6);
    console.log(`checkpoint peak ${ckpt.peak} B vs plain ${plain.peak} B`);
    expect(ckpt.peak).toBeLessThan(0.8 * plain.peak);
    e.destroy();
  });

  it('attention through split/merge heads matches finite differences; frozen k, v get nothing', async () => {
    const e = await engine();
    const [batch, tokens, heads, headDim] = [1, 5, 2, 3];
    const keyTokens = 4;
    const rand = rng(5);
    const init3 = [
      randn(rand, tokens * heads * headDim),
      randn(rand, keyTokens * heads * headDim),
      randn(rand, keyTokens * heads * headDim),
    ];
    const r = randn(rand, tokens * heads * headDim);
    const lossRef = ([q, k, v]: Float64Array[]) => {
      const sq = { batch, tokens, heads, headDim };
      const sk = { ...sq, tokens: keyTokens };
      const { out } = attentionRef(splitHeadsRef(q, sq), splitHeadsRef(k, sk), splitHeadsRef(v, sk), {
        batch,
        heads,
        queryLen: tokens,
        keyLen: keyTokens,
        headDim,
      });
      const m = mergeHeadsRef(out, sq);
      return m.reduce((s, val, i) => s + val * r[i], 0);
    };
    const fd = finiteDifferenceGrads(lossRef, init3.map(f64));
    for (const frozenKV of [false, true]) {
      const q = leaf(e, init3[0], [batch, tokens, heads * headDim], 'q');
      const k = leaf(e, init3[1], [batch, keyTokens, heads * headDim], 'k', !frozenKV);
      const v = leaf(e, init3[2], [batch, keyTokens, heads * headDim], 'v', !frozenKV);
      const rt = leaf(e, r, [batch, tokens, heads * headDim], 'r', false);
      const loss = await e.scope(async () => {
        const o = await attention(
          await splitHeads(q, heads),
          await splitHeads(k, heads),
          await splitHeads(v, heads),
        );
        return sum(await mul(await mergeHeads(o), rt));
      });
      await backward(loss);
      expect(relativeError(await q.grad!.read(), fd[0])).toBeLessThan(GRAD_RTOL);
      if (frozenKV) {
        expect(k.grad).toBeUndefined();
        expect(v.grad).toBeUndefined();
      } else {
        expect(relativeError(await k.grad!.read(), fd[1])).toBeLessThan(GRAD_RTOL);
        expect(relativeError(await v.grad!.read(), fd[2])).toBeLessThan(GRAD_RTOL);
      }
      for (const t of [q, k, v, rt, loss, q.grad, k.grad, v.grad]) t?.release();
      expect(e.stats().liveBytes).toBe(0);
    }
    e.destroy();
  });

  it('a prefix slice sends its gradient to the first rows only', async () => {
    const e = await engine();
    const a = leaf(e, randn(rng(2), 15), [5, 3], 'A');
    const r = randn(rng(9), 6);
    const rt = leaf(e, r, [2, 3], 'r', false);
    const loss = await e.scope(async () => sum(await mul(sliceRows(a, 2), rt)));
    await backward(loss);
    expect(Array.from(await a.grad!.read())).toEqual([...Array.from(r), ...new Array(9).fill(0)]);
    e.destroy();
  });

  it('noGrad records nothing; a consumed graph cannot be backpropagated again', async () => {
    const e = await engine();
    const x = leaf(e, [1, -2, 3], [3], 'x');
    const y = await noGrad(e, () => silu(x));
    expect(y.requiresGrad).toBe(false);
    expect(tapeLength(e)).toBe(0);
    // Under noGrad a checkpointed segment is a scope: its internals are gone when it returns.
    const before = e.stats().liveBuffers;
    const z = await noGrad(e, () => checkpoint(async (h) => silu(await silu(await silu(h))), [x]));
    expect(e.stats().liveBuffers).toBe(before + 1);
    z.release();
    const loss = await sum(await silu(x));
    expect(tapeLength(e)).toBe(2);
    await backward(loss);
    await expect(backward(loss)).rejects.toBeInstanceOf(GraphError);
    await expect(backward(y)).rejects.toBeInstanceOf(GraphError);
    e.destroy();
  });
});
