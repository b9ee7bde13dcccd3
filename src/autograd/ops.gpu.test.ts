// Op wrappers through the tape on a real device: small graphs of linear/matmul, norms, softmax, concat and
// split, MSE, whose GPU gradients must match finite differences of float64 compositions of the references.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import type { Conv2dShape } from '../kernels/conv2d';
import { conv2dRef } from '../kernels/conv2d.ref';
import { unaryRef } from '../kernels/elementwise.ref';
import { groupNormRef } from '../kernels/groupnorm.ref';
import { layerNormRef } from '../kernels/layernorm.ref';
import { mseLossRef } from '../kernels/loss.ref';
import { linearRef, matmulRef } from '../kernels/matmul.ref';
import { softmaxRef } from '../kernels/softmax.ref';
import { randn, rng } from '../kernels/testing';
import { timestepEmbeddingRef } from '../kernels/timestep.ref';
import { upsampleNearest2xRef } from '../kernels/upsample.ref';
import { fromF16Array, toF16Array } from '../tensor/dtype';
import { Engine } from '../tensor/engine';
import type { Tensor } from '../tensor/tensor';
import {
  add,
  concat,
  conv2d,
  exp,
  groupNorm,
  layerNorm,
  linear,
  matmul,
  mseLoss,
  mul,
  narrow,
  neg,
  reshape,
  scale,
  silu,
  sliceRows,
  softmax,
  softplus,
  split,
  sub,
  sum,
  timestepEmbedding,
  transposeLast2,
  upsampleNearest2x,
} from './ops';
import { backward, tapeLength } from './tape';
import { dispatchLabels, finiteDifferenceGrads, leaf, relativeError } from './testing';

const GRAD_RTOL = 2e-3;
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const dot = (a: Float64Array, b: ArrayLike<number>) => a.reduce((s, v, i) => s + v * b[i], 0);

/** Runs forward + backward on leaves made from `init` and checks every wanted gradient against FD. */
async function checkGradients(
  e: Engine,
  init: { name: string; values: Float32Array; shape: number[]; grad?: boolean }[],
  lossRef: (p: Float64Array[]) => number,
  forward: (p: Tensor[]) => Promise<Tensor>,
): Promise<Tensor[]> {
  const params = init.map((p) => leaf(e, p.values, p.shape, p.name, p.grad ?? true));
  const loss = await e.scope(() => forward(params));
  const fd = finiteDifferenceGrads(
    lossRef,
    init.map((p) => f64(p.values)),
  );
  expect((await loss.read())[0]).toBeCloseTo(lossRef(init.map((p) => f64(p.values))), 4);
  await backward(loss);
  expect(tapeLength(e)).toBe(0);
  for (const [i, p] of params.entries()) {
    if (!p.requiresGrad) {
      expect(p.grad, p.label).toBeUndefined();
      continue;
    }
    expect(relativeError(await p.grad!.read(), fd[i]), `d${p.label}`).toBeLessThan(GRAD_RTOL);
  }
  loss.release();
  return params;
}

describe('autograd ops', () => {
  it('linear → silu → linear → mse: gradients match; a frozen layer launches no dW/dbias', async () => {
    const e = await engine();
    const rand = rng(21);
    const [rows, i, h, o] = [5, 7, 6, 3];
    const init = (frozen: boolean) => [
      { name: 'x', values: randn(rand, rows * i), shape: [rows, i] },
      { name: 'w1', values: randn(rand, h * i, 0.4), shape: [h, i], grad: !frozen },
      { name: 'b1', values: randn(rand, h, 0.1), shape: [h], grad: !frozen },
      { name: 'w2', values: randn(rand, o * h, 0.4), shape: [o, h] },
      { name: 'b2', values: randn(rand, o, 0.1), shape: [o] },
      { name: 'target', values: randn(rand, rows * o), shape: [rows, o], grad: false },
    ];
    const lossRef = ([x, w1, b1, w2, b2, t]: Float64Array[]) =>
      mseLossRef(linearRef(unaryRef('silu', linearRef(x, w1, b1, rows, i, h)), w2, b2, rows, h, o), t);
    const forward = async ([x, w1, b1, w2, b2, t]: Tensor[]) =>
      mseLoss(await linear(await silu(await linear(x, w1, b1)), w2, b2), t);
    const counts: number[] = [];
    for (const frozen of [false, true]) {
      const labels = await dispatchLabels(e, async () => {
        await checkGradients(e, init(frozen), lossRef, forward);
      });
      counts.push(labels.filter((l) => l.startsWith('matmul')).length);
    }
    // Frozen w1, b1: exactly the dW1 product and the dbias1 reduction disappear.
    expect(counts[0] - counts[1]).toBe(2);
    e.destroy();
  });

  it('conv → groupNorm → silu: gradients match', async () => {
    const e = await engine();
    const rand = rng(22);
    const cs: Conv2dShape = { batch: 2, cin: 3, h: 4, w: 3, cout: 4, kh: 3, kw: 3, stride: 1, pad: 1 };
    const gs = { batch: 2, channels: 4, h: 4, w: 3, groups: 2, eps: 1e-5 };
    const n = 2 * 4 * 4 * 3;
    const r = randn(rand, n);
    const init = [
      { name: 'x', values: randn(rand, 2 * 3 * 4 * 3), shape: [2, 3, 4, 3] },
      { name: 'w', values: randn(rand, 4 * 3 * 9, 0.3), shape: [4, 3, 3, 3] },
      { name: 'gamma', values: randn(rand, 4, 0.5).map((v) => 1 + v), shape: [4] },
      { name: 'beta', values: randn(rand, 4, 0.5), shape: [4] },
      { name: 'r', values: r, shape: [2, 4, 4, 3], grad: false },
    ];
    const lossRef = ([x, w, gamma, beta]: Float64Array[]) =>
      dot(unaryRef('silu', groupNormRef(conv2dRef(x, w, undefined, cs), gamma, beta, gs).y), r);
    await checkGradients(e, init, lossRef, async ([x, w, gamma, beta, rt]) => {
      const y = await groupNorm(await conv2d(x, w, undefined, { padding: 1 }), gamma, beta, { groups: 2 });
      return sum(await mul(await silu(y), rt));
    });
    e.destroy();
  });

  it('layerNorm → softmax → batched matmuls → split/concat: gradients match', async () => {
    const e = await engine();
    const rand = rng(23);
    const [b, t, d, n, t2] = [2, 3, 4, 5, 6];
    const r = randn(rand, b * t * t2);
    const init = [
      { name: 'x', values: randn(rand, b * t * d), shape: [b, t, d] },
      { name: 'gamma', values: randn(rand, d, 0.3).map((v) => 1 + v), shape: [d] },
      { name: 'beta', values: randn(rand, d, 0.3), shape: [d] },
      { name: 'w', values: randn(rand, d * n), shape: [d, n] },
      { name: 'u', values: randn(rand, b * t2 * n), shape: [b, t2, n] },
    ];
    const lossRef = ([x, gamma, beta, w, u]: Float64Array[]) => {
      const h = softmaxRef(layerNormRef(x, gamma, beta, { rows: b * t, dim: d, eps: 1e-5 }).y, b * t, d);
      const y = matmulRef(h, w, { m: t, n, k: d, batch: b, broadcastB: true });
      const z = matmulRef(y, u, { m: t, n: t2, k: n, batch: b, transposeB: true });
      // split the last dim into [2, 4] and concatenate the pieces in reverse order
      const swapped = z.map((_, idx) => {
        const row = Math.floor(idx / t2);
        const c = idx % t2;
        return z[row * t2 + (c < 4 ? c + 2 : c - 4)];
      });
      return dot(swapped, r);
    };
    await checkGradients(e, init, lossRef, async ([x, gamma, beta, w, u]) => {
      const h = await softmax(await layerNorm(x, gamma, beta));
      const z = await matmul(await matmul(h, w), u, { transposeB: true });
      const [first, second] = await split(z, [2, 4], -1);
      const rt = e.fromArray(r, [b, t, t2]);
      return sum(reshape(await mul(await concat([second, first], 2), rt), [-1]));
    });
    e.destroy();
  });

  it('upsample → concat with a skip → conv: gradients match', async () => {
    const e = await engine();
    const rand = rng(24);
    const [b, c, h, w] = [1, 2, 3, 2];
    const cs: Conv2dShape = {
      batch: b,
      cin: 2 * c,
      h: 2 * h,
      w: 2 * w,
      cout: 2,
      kh: 3,
      kw: 3,
      stride: 1,
      pad: 1,
    };
    const r = randn(rand, b * 2 * 4 * h * w);
    const init = [
      { name: 'x', values: randn(rand, b * c * h * w), shape: [b, c, h, w] },
      { name: 'skip', values: randn(rand, b * c * 4 * h * w), shape: [b, c, 2 * h, 2 * w] },
      { name: 'w', values: randn(rand, 2 * 2 * c * 9, 0.3), shape: [2, 2 * c, 3, 3] },
    ];
    const lossRef = ([x, skip, wt]: Float64Array[]) => {
      const up = upsampleNearest2xRef(x, b * c, h, w);
      return dot(conv2dRef(Float64Array.from([...up, ...skip]), wt, undefined, cs), r);
    };
    await checkGradients(e, init, lossRef, async ([x, skip, wt]) => {
      const y = await conv2d(await concat([await upsampleNearest2x(x), skip]), wt, undefined, { padding: 1 });
      return sum(await mul(y, e.fromArray(r, y.shape)));
    });
    e.destroy();
  });

  it('a LoRA² adapter on a frozen linear (rank prefix, importance from ρ): gradients match', async () => {
    const e = await engine();
    const rand = rng(25);
    const [rows, inF, outF, cap, rank, s] = [4, 5, 3, 4, 3, 2];
    const init = [
      { name: 'x', values: randn(rand, rows * inF), shape: [rows, inF], grad: false },
      { name: 'W0', values: randn(rand, outF * inF, 0.4), shape: [outF, inF], grad: false },
      { name: 'A', values: randn(rand, cap * inF, 0.4), shape: [cap, inF] },
      { name: 'B', values: randn(rand, outF * cap, 0.4), shape: [outF, cap] },
      { name: 'rho', values: Float32Array.of(0.3), shape: [1] },
      { name: 'target', values: randn(rand, rows * outF), shape: [rows, outF], grad: false },
    ];
    const lossRef = ([x, w0, a, b, rho, t]: Float64Array[]) => {
      const lam = Math.log1p(Math.exp(rho[0]));
      const f = Array.from({ length: rank }, (_, i) => Math.exp(-lam * i) * (1 - Math.exp(-lam)));
      const h = linearRef(x, a.slice(0, rank * inF), undefined, rows, inF, rank).map(
        (v, j) => v * f[j % rank],
      );
      const bD = Float64Array.from(
        { length: outF * rank },
        (_, j) => b[Math.floor(j / rank) * cap + (j % rank)],
      );
      const up = linearRef(h, bD, undefined, rows, rank, outF);
      return mseLossRef(
        linearRef(x, w0, undefined, rows, inF, outF).map((v, j) => v + s * up[j]),
        t,
      );
    };
    const params = await checkGradients(e, init, lossRef, async ([x, w0, a, b, rho, t]) => {
      const lam = await softplus(rho);
      const idx = e.fromArray(
        Float32Array.from({ length: rank }, (_, i) => i),
        [rank],
      );
      const one = e.fromArray([1], [1]);
      const f = await mul(
        await exp(await neg(await mul(idx, lam))),
        await sub(one, await exp(await neg(lam))),
      );
      const h = await mul(await linear(x, sliceRows(a, rank)), f);
      const up = await linear(h, await narrow(b, 1, 0, rank));
      return mseLoss(await add(await linear(x, w0), await scale(up, s)), t);
    });
    // Positions past the rank get exactly nothing.
    expect(Array.from((await params[2].grad!.read()).slice(rank * inF))).toEqual(new Array(inF).fill(0));
    const dB = await params[3].grad!.read();
    for (let o = 0; o < outF; o++) expect(dB[o * cap + cap - 1]).toBe(0);
    e.destroy();
  });

  it('frozen f16 weights beside f32 activations: input gradients match; a trainable f16 weight is refused', async () => {
    const e = await engine();
    const rand = rng(28);
    const cs: Conv2dShape = { batch: 2, cin: 3, h: 4, w: 5, cout: 4, kh: 3, kw: 3, stride: 1, pad: 1 };
    const [rows, inF, outF] = [(2 * 4 * 4 * 5) / 5, 5, 3];
    const half = (v: Float32Array) => fromF16Array(toF16Array(v));
    const wConv = half(randn(rand, 4 * 3 * 9, 0.3));
    const wLin = half(randn(rand, outF * inF, 0.4));
    const x0 = randn(rand, 2 * 3 * 4 * 5);
    const target = randn(rand, rows * outF);
    const x = leaf(e, x0, [2, 3, 4, 5], 'x');
    const wc = e.fromArray(wConv, [4, 3, 3, 3], { dtype: 'f16', label: 'conv.weight' });
    const wl = e.fromArray(wLin, [outF, inF], { dtype: 'f16', label: 'linear.weight' });
    const bl = e.fromArray(randn(rand, outF, 0.1), [outF], { label: 'linear.bias' });
    const blv = f64(await bl.read());
    // conv (f16 weight) → silu → rows of 5 → linear (f16 weight) → mse.
    const lossRef = ([xv]: Float64Array[]) => {
      const y = unaryRef('silu', conv2dRef(xv, f64(wConv), undefined, cs));
      return mseLossRef(linearRef(y, f64(wLin), blv, rows, inF, outF), f64(target));
    };
    const loss = await e.scope(async () => {
      const y = await silu(await conv2d(x, wc, undefined, { padding: 1 }));
      const z = await linear(reshape(y, [rows, inF]), wl, bl);
      return mseLoss(z, e.fromArray(target, [rows, outF]));
    });
    expect((await loss.read())[0]).toBeCloseTo(lossRef([f64(x0)]), 4);
    await backward(loss);
    const fd = finiteDifferenceGrads(lossRef, [f64(x0)])[0];
    expect(relativeError(await x.grad!.read(), fd)).toBeLessThan(GRAD_RTOL);
    wl.requiresGrad = true;
    await expect(e.scope(() => linear(e.zeros([2, inF]), wl))).rejects.toThrow(/only a frozen weight/);
    wc.requiresGrad = true;
    await expect(e.scope(() => conv2d(x, wc))).rejects.toThrow(/only a frozen weight/);
    // f16 activations with an f32 weight is no combination the kernels have.
    const x16 = e.fromArray(target.subarray(0, 4 * inF), [4, inF], { dtype: 'f16' });
    await expect(e.scope(() => linear(x16, e.zeros([outF, inF])))).rejects.toThrow(/is f32, expected f16/);
    e.destroy();
  });

  it('transposeLast2 sends the transposed upstream gradient back', async () => {
    const e = await engine();
    const [b, rows, cols] = [2, 3, 5];
    const x = leaf(e, randn(rng(26), b * rows * cols), [b, rows, cols], 'x');
    const r = randn(rng(27), b * rows * cols);
    const loss = await e.scope(async () =>
      sum(await mul(await transposeLast2(x), e.fromArray(r, [b, cols, rows]))),
    );
    await backward(loss);
    const want = Float32Array.from({ length: r.length }, (_, i) => {
      const [z, row, col] = [Math.floor(i / (rows * cols)), Math.floor(i / cols) % rows, i % cols];
      return r[(z * cols + col) * rows + row];
    });
    expect(Array.from(await x.grad!.read())).toEqual(Array.from(want));
    e.destroy();
  });

  it('timestep embedding: data in, no grad out', async () => {
    const e = await engine();
    const ts = [0, 1, 999, 500.5];
    const t = leaf(e, ts, [4], 't');
    const y = await timestepEmbedding(t, 10);
    expect(y.shape).toEqual([4, 10]);
    expect(y.requiresGrad).toBe(false);
    expect(tapeLength(e)).toBe(0);
    expect(relativeError(await y.read(), timestepEmbeddingRef(ts, 10))).toBeLessThan(1e-5);
    e.destroy();
  });
});

async function engine(): Promise<Engine> {
  return new Engine(await testGpu());
}
