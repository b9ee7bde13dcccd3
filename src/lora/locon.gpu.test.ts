// LoCon: a LoRA² adapter on a Conv2d is the linear adapter applied to the convolution's input patches (im2col).
// The linear adapter is the one checked against the PyTorch golden step, so equal outputs and equal gradients
// of A, Bᵀ and ρ on the patches check the conv path. Strided and unstrided, plus the plain (exported) layer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ops from '../autograd/ops';
import { backward } from '../autograd/tape';
import { relativeError } from '../autograd/testing';
import { testGpu } from '../gpu/testing';
import { exportKohya, exportPeft, importLora } from '../io/lora';
import { Rng } from '../models/rng';
import { Engine } from '../tensor/engine';
import {
  Lora2Adapter,
  lora2Settings,
  PlainLoraAdapter,
  type AdapterState,
  type Lora2Settings,
} from './adapter';
import { rateForRank, softplusInverse } from './importance';

const B = 2;
const CIN = 3;
const H = 7;
const W = 6;
const COUT = 5;
const K = 3;
const CAPACITY = 8;
const RANK = 5;

/** im2col: rows (b, oy, ox), columns (c, ky, kx), the flattening of a [*, Cin, kh, kw] weight. */
function patches(
  x: Float32Array,
  stride: number,
  pad: number,
): { cols: Float32Array; ho: number; wo: number } {
  const ho = Math.floor((H + 2 * pad - K) / stride) + 1;
  const wo = Math.floor((W + 2 * pad - K) / stride) + 1;
  const inF = CIN * K * K;
  const cols = new Float32Array(B * ho * wo * inF);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < ho; oy++)
      for (let ox = 0; ox < wo; ox++)
        for (let c = 0; c < CIN; c++)
          for (let ky = 0; ky < K; ky++)
            for (let kx = 0; kx < K; kx++) {
              const y = oy * stride - pad + ky;
              const xx = ox * stride - pad + kx;
              const v = y < 0 || y >= H || xx < 0 || xx >= W ? 0 : x[((b * CIN + c) * H + y) * W + xx];
              cols[((b * ho + oy) * wo + ox) * inF + (c * K + ky) * K + kx] = v;
            }
  return { cols, ho, wo };
}

/** [B, C, ho, wo] → [B·ho·wo, C] */
function toRows(t: Float32Array, c: number, ho: number, wo: number): Float32Array {
  const out = new Float32Array(t.length);
  for (let b = 0; b < B; b++)
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < ho * wo; p++) out[(b * ho * wo + p) * c + ch] = t[(b * c + ch) * ho * wo + p];
  return out;
}

function state(settings: Lora2Settings, kernel?: [number, number]): AdapterState {
  const rng = new Rng(7);
  const inF = CIN * K * K;
  return {
    path: 'down_blocks.0.resnets.0.conv1',
    inFeatures: inF,
    outFeatures: COUT,
    ...(kernel ? { kernel } : {}),
    capacity: CAPACITY,
    rank: RANK,
    step: 0,
    rho: softplusInverse(rateForRank(RANK, settings.quantile)),
    rhoM: 0,
    rhoV: 0,
    A: rng.normals(CAPACITY * inF, 1 / Math.sqrt(inF)),
    // B ≠ 0, so that ∂L/∂A and ∂L/∂ρ are not zero.
    Bt: rng.normals(CAPACITY * COUT, 0.5),
    mA: new Float32Array(CAPACITY * inF),
    vA: new Float32Array(CAPACITY * inF),
    mB: new Float32Array(CAPACITY * COUT),
    vB: new Float32Array(CAPACITY * COUT),
    rng: new Rng(1).state(),
  };
}

describe('LoCon: LoRA² on a convolution', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = new Engine(await testGpu());
  });
  afterAll(() => engine?.destroy());

  for (const [stride, pad] of [
    [1, 1],
    [2, 1],
  ])
    it(`equals the linear adapter on im2col patches: output, ∂A, ∂Bᵀ, ∂ρ (stride ${stride})`, async () => {
      const settings = lora2Settings({ datasetSize: 64, scale: 2 });
      const rng = new Rng(3);
      const x = rng.normals(B * CIN * H * W);
      const { cols, ho, wo } = patches(x, stride, pad);
      const target = rng.normals(B * COUT * ho * wo);

      const run = async (conv: boolean) => {
        const a = await Lora2Adapter.fromState(engine, settings, state(settings, conv ? [K, K] : undefined));
        try {
          return await engine.scope(async () => {
            const input = conv
              ? engine.fromArray(x, [B, CIN, H, W])
              : engine.fromArray(cols, [B * ho * wo, CIN * K * K]);
            const y = await a.forward(input, conv ? { stride, padding: pad } : undefined);
            const t = conv
              ? engine.fromArray(target, [B, COUT, ho, wo])
              : engine.fromArray(toRows(target, COUT, ho, wo), [B * ho * wo, COUT]);
            const loss = await ops.mseLoss(y, t);
            await backward(loss);
            await a.prepareGradients();
            const out = await y.read();
            return {
              y: conv ? toRows(out, COUT, ho, wo) : out,
              shape: y.shape,
              gA: await a.A.grad!.read(),
              gB: await a.Bt.grad!.read(),
              gRho: a.lastGradRho,
            };
          });
        } finally {
          a.release();
        }
      };
      const conv = await run(true);
      const lin = await run(false);
      expect(conv.shape).toEqual([B, COUT, ho, wo]);
      expect(relativeError(conv.y, lin.y)).toBeLessThan(1e-5);
      expect(relativeError(conv.gA, lin.gA)).toBeLessThan(1e-4);
      expect(relativeError(conv.gB, lin.gB)).toBeLessThan(1e-4);
      expect(Math.abs(conv.gRho - lin.gRho) / Math.abs(lin.gRho)).toBeLessThan(1e-4);
      // Positions past the rank get no gradient; the first D do.
      const inF = CIN * K * K;
      expect(conv.gA.slice(0, RANK * inF).some((v) => v !== 0)).toBe(true);
    });

  it('exports [r, Cin, kh, kw] / [out, r, 1, 1] (kohya and PEFT); the imported plain layer gives the same output', async () => {
    const settings = lora2Settings();
    const a = await Lora2Adapter.fromState(engine, settings, state(settings, [K, K]));
    try {
      const x = new Rng(5).normals(B * CIN * H * W);
      const conv = { stride: 1, padding: 1 };
      const want = await engine.scope(async () =>
        (await a.forward(engine.fromArray(x, [B, CIN, H, W]), conv)).read(),
      );
      const layer = await a.exportLayer();
      expect(layer.kernel).toEqual([K, K]);
      for (const bytes of [exportKohya([layer]), exportPeft([layer])]) {
        const file = await importLora(bytes, [layer.path]);
        const [l] = file.layers;
        expect(l.kernel).toEqual([K, K]);
        expect([l.rank, l.inFeatures, l.outFeatures]).toEqual([RANK, CIN * K * K, COUT]);
        const plain = await PlainLoraAdapter.create(engine, l);
        try {
          const got = await engine.scope(async () =>
            (await plain.forward(engine.fromArray(x, [B, CIN, H, W]), conv)).read(),
          );
          expect(relativeError(got, want), file.format).toBeLessThan(1e-5);
        } finally {
          plain.release();
        }
      }
    } finally {
      a.release();
    }
  });
});
