// The synthetic rank task of DESIGN.md §5's prototype: independent 64×64 linear maps whose targets differ from
// W0 by rank 1, 4 and 16, fitted by LoRA² (or fixed-rank LoRA) on fresh Gaussian inputs every step. Shared by
// the rank tests and `npm run bench:lora:synthetic`; synthetic.ref.ts is the same run in float64 on the CPU.
import * as ops from '../autograd/ops';
import { backward } from '../autograd/tape';
import { Rng } from '../models/rng';
import type { Engine } from '../tensor/engine';
import type { Tensor } from '../tensor/tensor';
import { Lora2Adapter, stepAdapters, type Lora2Settings } from './adapter';

export const SYNTHETIC_DIM = 64;
export const SYNTHETIC_TRUE_RANKS: readonly number[] = [1, 4, 16];
/** Inputs per layer per step (fresh every step: the data never repeats). */
export const SYNTHETIC_BATCH = 64;
/** W − W0 = GAIN·U·Vᵀ with U, V ~ N(0, 1/dim): each direction has a singular value of about GAIN. */
export const SYNTHETIC_GAIN = 3;

/**
 * LoRA² settings for this task (over DEFAULT_LORA2_SETTINGS). N = datasetSize weighs both priors against the
 * mean-squared error, and on this task it decides the ranks: fitting a direction of gain g at position i with
 * ‖a‖·‖b‖ = g/(s·f_i) costs at least g/(s·f_i·N·σ_θ²) of weight prior and gains g²/out of MSE (unit inputs),
 * so it pays only while f_i > out/(g·s·N·σ_θ²). Rank 16 needs f up to position 15 at λ ≈ 0.14, f₁₅ ≈ 0.017:
 * N ≳ 64/(3·4·0.017) ≈ 300. With N = 16 (what this task first used) only f_i > 0.33, i.e. positions 0–1, pay,
 * and every layer stays at D = 2–3 whatever its true rank; N = 256 recovers 2, 5, 14–15 (N = 1024: 2, 5, 20).
 * s = 4 and 3× the default learning rates reach that in ~200 steps instead of thousands (DESIGN.md §5).
 */
export const SYNTHETIC_SETTINGS: Readonly<Partial<Lora2Settings>> = Object.freeze({
  scale: 4,
  lr: 1e-2,
  rateLr: 3e-2,
  datasetSize: 256,
});

export interface SyntheticLayer {
  trueRank: number;
  /** [dim, dim] row-major (out × in), like nn.Linear. */
  w0: Float32Array;
  w: Float32Array;
}

/** The task's layers, drawn from `rng` (which then goes on to draw the inputs). */
export function syntheticLayers(rng: Rng, ranks: readonly number[] = SYNTHETIC_TRUE_RANKS): SyntheticLayer[] {
  const n = SYNTHETIC_DIM;
  return ranks.map((rank) => {
    const w0 = rng.normals(n * n, 1 / Math.sqrt(n));
    const u = rng.normals(n * rank, 1 / Math.sqrt(n));
    const v = rng.normals(n * rank, 1 / Math.sqrt(n));
    const w = w0.slice();
    for (let o = 0; o < n; o++)
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let r = 0; r < rank; r++) s += u[o * rank + r] * v[i * rank + r];
        w[o * n + i] += SYNTHETIC_GAIN * s;
      }
    return { trueRank: rank, w0, w };
  });
}

/** ‖ΔW − (W − W0)‖_F / ‖W − W0‖_F for a learned ΔW = up·down (up [out, r], down [r, in]). */
export function relativeFitError(
  layer: SyntheticLayer,
  learned: { up: ArrayLike<number>; down: ArrayLike<number>; rank: number },
): number {
  const n = SYNTHETIC_DIM;
  const { up, down, rank } = learned;
  let err = 0;
  let ref = 0;
  for (let o = 0; o < n; o++)
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let r = 0; r < rank; r++) d += up[o * rank + r] * down[r * n + i];
      const want = layer.w[o * n + i] - layer.w0[o * n + i];
      err += (d - want) ** 2;
      ref += want * want;
    }
  return Math.sqrt(err / ref);
}

export interface SyntheticOptions {
  steps: number;
  /** Seed of the task and input stream; adapter ℓ is seeded with ℓ. */
  seed?: number;
  /** Record λ, D and each layer's MSE after every step (reads the losses back every step). */
  trace?: boolean;
}

/** One step of the trace: per layer, the MSE of the step's forward and λ, D after its optimizer step. */
export interface SyntheticStep {
  losses: number[];
  rates: number[];
  ranks: number[];
}

export interface SyntheticLayerResult {
  trueRank: number;
  rank: number;
  capacity: number;
  rate: number;
  /** MSE of the last step's forward. */
  loss: number;
  /** relativeFitError of the exported adapter. */
  fitError: number;
  /** Exported parameters: D·(in + out). */
  params: number;
  /** Exported bytes (f32). */
  bytes: number;
}

export interface SyntheticResult {
  layers: SyntheticLayerResult[];
  trace: SyntheticStep[];
  /** Highest live GPU bytes of the run (task matrices, adapters with moments, activations, gradients). */
  peakBytes: number;
  ms: number;
}

export const SYNTHETIC_SEED = 3;

/** Trains one adapter per task layer on the GPU for `steps` steps: the sum of the layers' MSEs, then each step. */
export async function trainSynthetic(
  engine: Engine,
  settings: Lora2Settings,
  opts: SyntheticOptions,
): Promise<SyntheticResult> {
  const t0 = performance.now();
  const n = SYNTHETIC_DIM;
  const rng = new Rng(opts.seed ?? SYNTHETIC_SEED);
  const layers = syntheticLayers(rng);
  engine.pool.resetPeak();
  const w0s: Tensor[] = [];
  const ws: Tensor[] = [];
  const adapters: Lora2Adapter[] = [];
  const trace: SyntheticStep[] = [];
  let losses: number[] = [];
  try {
    await engine.untracked(async () => {
      for (let l = 0; l < layers.length; l++) {
        w0s.push(engine.fromArray(layers[l].w0, [n, n], { label: `synthetic.w0.${l}` }));
        ws.push(engine.fromArray(layers[l].w, [n, n], { label: `synthetic.w.${l}` }));
        const target = { path: `layer${l}`, inFeatures: n, outFeatures: n };
        adapters.push(await Lora2Adapter.create(engine, target, settings, l));
      }
    });
    for (let s = 0; s < opts.steps; s++) {
      const last = s === opts.steps - 1;
      losses = await engine.scope(async () => {
        const mses: Tensor[] = [];
        for (let l = 0; l < layers.length; l++) {
          const x = engine.fromArray(rng.normals(SYNTHETIC_BATCH * n), [SYNTHETIC_BATCH, n]);
          const want = await ops.linear(x, ws[l]);
          const y = await ops.add(await ops.linear(x, w0s[l]), await adapters[l].forward(x));
          mses.push(await ops.mseLoss(y, want));
        }
        let loss = mses[0];
        for (const m of mses.slice(1)) loss = await ops.add(loss, m);
        await backward(loss);
        if (!opts.trace && !last) return [];
        const out: number[] = [];
        for (const m of mses) out.push((await m.read())[0]);
        return out;
      });
      await stepAdapters(adapters);
      if (opts.trace)
        trace.push({ losses, rates: adapters.map((a) => a.rate), ranks: adapters.map((a) => a.rank) });
    }
    const results: SyntheticLayerResult[] = [];
    for (let l = 0; l < layers.length; l++) {
      const a = adapters[l];
      results.push({
        trueRank: layers[l].trueRank,
        rank: a.rank,
        capacity: a.capacity,
        rate: a.fixed ? NaN : a.rate,
        loss: losses[l],
        fitError: relativeFitError(layers[l], await a.exportWeights()),
        params: a.rank * (n + n),
        bytes: a.bytes,
      });
    }
    return { layers: results, trace, peakBytes: engine.stats().peakLiveBytes, ms: performance.now() - t0 };
  } finally {
    for (const a of adapters) a.release();
    for (const t of [...w0s, ...ws]) t.release();
  }
}
