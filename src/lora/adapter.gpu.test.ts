// LoRA² on the golden UNet, in one file so the slow pipeline compilation happens once: the PyTorch golden step
// (GOLDEN.md §3: grads of A, B, ρ and the stepped values), LoRA file round trips, and trainer resume.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ops from '../autograd/ops';
import { backward, noGrad } from '../autograd/tape';
import { relativeError } from '../autograd/testing';
import { testGpu } from '../gpu/testing';
import type { SafetensorsReader } from '../io/safetensors';
import { Rng } from '../models/rng';
import type { UNet2DConditionModel } from '../models/unet';
import { Engine } from '../tensor/engine';
import { exportKohya, exportPeft, importLora } from '../io/lora';
import { DEFAULT_SCHEDULER, NoiseSchedule } from '../models/schedulers';
import { memoryCheckpointStore } from '../train/checkpoint';
import { DEFAULT_TRAINER_CONFIG, Trainer, type TrainData, type TrainerConfig } from '../train/trainer';
import type { TrainProgress } from '../../workers/api';
import {
  Lora2Adapter,
  lora2Settings,
  PlainLoraAdapter,
  type AdapterState,
  type Lora2Settings,
} from './adapter';
import { goldenTensor, loadGolden, loadGoldenUNet, transpose, type GoldenJson } from './testing';

const t0 = performance.now();
/** Progress on stderr as it happens: the first UNet forward/backward compiles pipelines for minutes on lavapipe. */
const mark = (what: string) =>
  process.stderr.write(`[lora2 golden +${((performance.now() - t0) / 1000).toFixed(0)}s] ${what}\n`);

describe('LoRA² adapter vs the PyTorch golden step', () => {
  let engine: Engine;
  let unet: UNet2DConditionModel;
  let reader: SafetensorsReader;
  let json: GoldenJson;
  /** The 8 golden layers after their step: reused by the export test. */
  const adapters: Lora2Adapter[] = [];

  beforeAll(async () => {
    engine = new Engine(await testGpu());
    unet = await loadGoldenUNet(engine);
    ({ reader, json } = await loadGolden());
  }, 900_000);
  afterAll(() => {
    for (const a of adapters) a.release();
    unet?.params.release();
  });

  // First in the file, so the pipelines it compiles are ones the later tests need anyway.
  it(
    "the ETA leaves out steps that compiled GPU pipelines (a fresh worker's first step)",
    { timeout: 2_400_000 },
    async () => {
      // As in a fresh worker: nothing compiled yet, so the first step builds every pipeline it uses.
      engine.ctx.pipelines.clear();
      const t = await goldenTrainer({ sessionId: 'eta', steps: 3, lora: lora2Settings() });
      const events: TrainProgress[] = [];
      expect(await t.run((p) => events.push(p))).toBe('done');
      t.release();
      expect(engine.ctx.pipelines.size).toBeGreaterThan(10);
      expect(events.map((e) => e.etaMs === undefined)).toEqual([true, false, false]);
      expect(events[1].etaMs).toBe(events[1].stepMs);
      expect(events[2].etaMs).toBe(0);
    },
  );

  it(
    'gradients of A, B, ρ and the stepped values match (≤ 1e-2 relative)',
    { timeout: 2_400_000 },
    async () => {
      const g = json.lora2;
      const settings = lora2Settings({
        quantile: g.k,
        priorRank: g.r0,
        rateSigma: g.sigma,
        weightSigma: g.sigma_theta,
        scale: g.s,
        datasetSize: g.N,
        maxRank: g.r_max,
        lr: g.adamw.lr_ab,
        rateLr: g.adamw.lr_rho,
        beta1: g.adamw.betas[0],
        beta2: g.adamw.betas[1],
        eps: g.adamw.eps,
        weightDecay: g.adamw.weight_decay,
        // The reference adds the weight prior to the gradient (its loss includes it).
        weightPriorDecoupledA: false,
      });
      for (const path of g.layers) {
        const target = unet.linearTargets().find((t) => t.path === path)!;
        const C = g.capacity;
        const zeros = (n: number) => new Float32Array(n);
        const a = await Lora2Adapter.fromState(engine, settings, {
          ...target,
          capacity: C,
          rank: g.ranks_before[path],
          step: 0,
          rho: (await reader.readFloat32(`lora2.${path}.rho`))[0],
          rhoM: 0,
          rhoV: 0,
          A: await reader.readFloat32(`lora2.${path}.A`),
          Bt: transpose(await reader.readFloat32(`lora2.${path}.B`), target.outFeatures, C),
          mA: zeros(C * target.inFeatures),
          vA: zeros(C * target.inFeatures),
          mB: zeros(C * target.outFeatures),
          vB: zeros(C * target.outFeatures),
          rng: new Rng(1).state(),
        });
        adapters.push(a);
        unet.params.adapters.set(path, a);
      }
      try {
        await engine.scope(async () => {
          const sample = await goldenTensor(engine, reader, 'inputs.sample');
          const ehs = await goldenTensor(engine, reader, 'inputs.encoder_hidden_states');
          const target = await goldenTensor(engine, reader, 'inputs.target');
          mark('forward');
          const out = await unet.forward(sample, json.timesteps, ehs);
          const mse = await ops.mseLoss(out, target);
          expect(relativeError(await out.read(), await reader.readFloat32('lora2.out'))).toBeLessThan(1e-3);
          mark('backward');
          await backward(mse);
          mark('backward done');
          let ratePrior = 0;
          let weightPrior = 0;
          for (const a of adapters) {
            ratePrior += a.ratePriorTerm();
            weightPrior += await a.weightPriorSum();
          }
          const total = (await mse.read())[0] + (ratePrior + weightPrior) / g.N;
          expect(ratePrior).toBeCloseTo((await reader.readFloat32('lora2.rank_prior'))[0], 4);
          expect(weightPrior / (await reader.readFloat32('lora2.weight_prior'))[0]).toBeCloseTo(1, 5);
          expect(total / (await reader.readFloat32('lora2.loss'))[0]).toBeCloseTo(1, 4);
        });
        const errs: string[] = [];
        // The trainer's path (stepAdapters): every ∂L/∂f in one readback, handed to prepareGradients.
        const batched = await engine.readMany(adapters.map((a) => a.importanceGrad!));
        for (const [i, a] of adapters.entries()) {
          const p = `lora2.${a.target.path}`;
          const { outFeatures: outF } = a.target;
          const C = a.capacity;
          expect(Array.from(batched[i])).toEqual(Array.from(await a.importanceGrad!.read()));
          await a.prepareGradients(batched[i]);
          const eA = relativeError(await a.A.grad!.read(), await reader.readFloat32(`${p}.grad.A`));
          const eB = relativeError(
            transpose(await a.Bt.grad!.read(), C, outF),
            await reader.readFloat32(`${p}.grad.B`),
          );
          const wantRho = (await reader.readFloat32(`${p}.grad.rho`))[0];
          const eRho = Math.abs(a.lastGradRho - wantRho) / Math.max(Math.abs(wantRho), 1e-6);
          const info = await a.applyStep();
          const sA = relativeError(await a.A.read(), await reader.readFloat32(`${p}.step.A`));
          const sB = relativeError(
            transpose(await a.Bt.read(), C, outF),
            await reader.readFloat32(`${p}.step.B`),
          );
          const sRho = Math.abs(a.rho - (await reader.readFloat32(`${p}.step.rho`))[0]);
          errs.push(
            `${a.target.path.split('.').slice(-3).join('.')} D=${info.rank} grad A ${eA.toExponential(1)} B ${eB.toExponential(1)} ρ ${eRho.toExponential(1)}; step A ${sA.toExponential(1)} B ${sB.toExponential(1)} ρ ${sRho.toExponential(1)}`,
          );
          expect(eA).toBeLessThan(1e-2);
          expect(eB).toBeLessThan(1e-2);
          expect(eRho).toBeLessThan(1e-2);
          // The step moves entries by ~lr = 3e-3 of values ~0.5: 1e-4 relative would catch a missing step.
          expect(sA).toBeLessThan(1e-4);
          expect(sB).toBeLessThan(1e-4);
          expect(sRho).toBeLessThan(1e-5);
          expect(info.rank).toBe(g.ranks_after_step[a.target.path]);
          expect(a.capacity).toBe(g.capacity);
        }
        console.log(`[golden LoRA²]\n${errs.join('\n')}`);
      } finally {
        for (const a of adapters) unet.params.adapters.delete(a.target.path);
      }
    },
  );

  const goldenOutput = (): Promise<Float32Array> =>
    engine.scope(() =>
      noGrad(engine, async () => {
        const sample = await goldenTensor(engine, reader, 'inputs.sample');
        const ehs = await goldenTensor(engine, reader, 'inputs.encoder_hidden_states');
        return (await unet.forward(sample, json.timesteps, ehs)).read();
      }),
    );

  it('kohya and PEFT export → import → plain LoRA reproduce the trained adapters (≤ 1e-4)', async () => {
    expect(adapters.length).toBe(8);
    for (const a of adapters) unet.params.adapters.set(a.target.path, a);
    const want = await goldenOutput();
    for (const a of adapters) unet.params.adapters.delete(a.target.path);
    const layers = await Promise.all(adapters.map((a) => a.exportLayer()));
    expect(layers.map((l) => l.rank)).toEqual(adapters.map((a) => a.rank));
    for (const bytes of [exportKohya(layers), exportPeft(layers)]) {
      const file = await importLora(bytes);
      const plain = await Promise.all(file.layers.map((l) => PlainLoraAdapter.create(engine, l)));
      for (const p of plain) unet.params.adapters.set(p.path, p);
      try {
        const e = relativeError(await goldenOutput(), want);
        mark(`${file.format} round trip rel err ${e.toExponential(2)}`);
        expect(e).toBeLessThan(1e-4);
      } finally {
        for (const p of plain) {
          unet.params.adapters.delete(p.path);
          p.release();
        }
      }
    }
    // The LoRA changes the output: the comparison above could fail.
    expect(relativeError(await goldenOutput(), want)).toBeGreaterThan(1e-4);
  });

  it('LoCon on the UNet: every ResNet conv adapter gets gradients; kohya/PEFT export → import reproduce it', async () => {
    const targets = unet.linearTargets([/\.resnets\.\d+\.conv[12]$/]);
    expect(targets.length).toBeGreaterThan(0);
    expect(targets.every((t) => t.kernel?.[0] === 3 && t.kernel[1] === 3)).toBe(true);
    const settings = lora2Settings({ datasetSize: 1000 });
    const rng = new Rng(11);
    const convs: Lora2Adapter[] = [];
    for (const t of targets) {
      const a = await Lora2Adapter.create(engine, t, settings, rng.nextU32());
      const st = await a.state();
      a.release();
      // B ≠ 0 so that the adapters change the output and A gets a gradient.
      st.Bt = rng.normals(st.Bt.length, 0.05);
      convs.push(await Lora2Adapter.fromState(engine, settings, st));
    }
    const base = await goldenOutput();
    for (const a of convs) unet.params.adapters.set(a.target.path, a);
    try {
      const want = await goldenOutput();
      expect(relativeError(want, base)).toBeGreaterThan(1e-3);
      await engine.scope(async () => {
        const sample = await goldenTensor(engine, reader, 'inputs.sample');
        const ehs = await goldenTensor(engine, reader, 'inputs.encoder_hidden_states');
        const out = await unet.forward(sample, json.timesteps, ehs);
        await backward(await ops.mseLoss(out, engine.zeros(out.shape)));
      });
      for (const a of convs) {
        await a.prepareGradients();
        const gA = await a.A.grad!.read();
        expect(Math.max(...gA.map(Math.abs)), a.target.path).toBeGreaterThan(0);
        expect(Math.abs(a.lastGradRho), a.target.path).toBeGreaterThan(0);
      }
      for (const a of convs) unet.params.adapters.delete(a.target.path);
      const layers = await Promise.all(convs.map((a) => a.exportLayer()));
      for (const bytes of [exportKohya(layers), exportPeft(layers)]) {
        const file = await importLora(bytes);
        expect(file.layers.every((l) => l.kernel?.[0] === 3)).toBe(true);
        const plain = await Promise.all(file.layers.map((l) => PlainLoraAdapter.create(engine, l)));
        for (const p of plain) unet.params.adapters.set(p.path, p);
        try {
          const e = relativeError(await goldenOutput(), want);
          mark(`LoCon ${file.format} round trip rel err ${e.toExponential(2)}`);
          expect(e).toBeLessThan(1e-4);
        } finally {
          for (const p of plain) {
            unet.params.adapters.delete(p.path);
            p.release();
          }
        }
      }
    } finally {
      for (const a of convs) {
        unet.params.adapters.delete(a.target.path);
        a.release();
      }
    }
  });

  /** Two golden 16×16 samples as training photos and the first prompt's embedding. */
  const goldenTrainData = async (): Promise<TrainData> => {
    const imgs = await reader.readFloat32('inputs.sample');
    const per = 3 * 16 * 16;
    const ehs = await reader.readFloat32('inputs.encoder_hidden_states');
    return {
      images: [imgs.slice(0, per), imgs.slice(per, 2 * per)],
      imageShape: [3, 16, 16],
      embedding: { data: ehs.slice(0, 7 * 20), shape: [1, 7, 20] },
    };
  };

  /** A trainer on the golden data (or `data`): batch 2, no checkpoints or contribution snapshots unless asked. */
  const goldenTrainer = async (
    over: Partial<TrainerConfig> & Pick<TrainerConfig, 'sessionId' | 'lora'>,
    data?: TrainData,
  ) =>
    Trainer.create(engine, unet, new NoiseSchedule(DEFAULT_SCHEDULER), data ?? (await goldenTrainData()), {
      ...DEFAULT_TRAINER_CONFIG,
      batchSize: 2,
      checkpointEvery: 0,
      contributionsEvery: 0,
      ...over,
    });

  /** Checkpoint and resume: `config` run straight vs until step 2, saved, reloaded (as `resumeAs`), run on. */
  const expectResumeExact = async (config: TrainerConfig, data: TrainData, resumeAs = config) => {
    const schedule = new NoiseSchedule(DEFAULT_SCHEDULER);
    const events: TrainProgress[] = [];
    const straight = await Trainer.create(engine, unet, schedule, data, config);
    mark(`trainer: ${straight.adapters.length} layers`);
    expect(await straight.run((p) => events.push(p))).toBe('done');
    const want = await straight.checkpoint();
    straight.release();
    mark(`straight: ranks ${want.rankHistory.map((r) => r.join('')).join(' | ')}; loss ${want.lossHistory}`);

    const store = memoryCheckpointStore();
    const first = await Trainer.create(engine, unet, schedule, data, config, store);
    expect(await first.run(undefined, { untilStep: 2 })).toBe('running');
    first.release();
    expect(await store.pointer(config.sessionId)).toBe(2);
    const resumed = await Trainer.create(engine, unet, schedule, data, resumeAs, store);
    expect(resumed.step).toBe(2);
    expect(await resumed.run()).toBe('done');
    const got = await resumed.checkpoint();
    resumed.release();
    expect(got.rankHistory).toEqual(want.rankHistory);
    expect(got.lossHistory).toEqual(want.lossHistory);
    expect(got.classLossHistory).toEqual(want.classLossHistory);
    for (let i = 0; i < want.layers.length; i++) {
      const [g, w] = [got.layers[i], want.layers[i]];
      expect([g.capacity, g.rank, g.step, g.rho]).toEqual([w.capacity, w.rank, w.step, w.rho]);
      for (const k of ['A', 'Bt', 'mA', 'vA', 'mB', 'vB'] as const) expect(g[k]).toEqual(w[k]);
    }
    return { events, want };
  };

  // chunk 2 so that ranks moving by one position exercise growth/release within 4 steps; N = 2 (the
  // photos alone) keeps the priors strong enough to move ranks that fast.
  const resumeConfig = (): TrainerConfig => ({
    ...DEFAULT_TRAINER_CONFIG,
    sessionId: 's1',
    steps: 4,
    batchSize: 2,
    seed: 7,
    checkpointEvery: 0,
    contributionsEvery: 2,
    lora: lora2Settings({ lr: 3e-2, rateLr: 0.3, chunk: 2, releaseChunks: 1, initialRank: 2 }),
    priorCount: 2,
  });

  it('trainer: 4 steps straight = 2 steps, checkpoint, reload, 2 steps', { timeout: 2_400_000 }, async () => {
    const config = resumeConfig();
    // Resumed with settings as an older version saved them, without the fields added since (rateWarmup,
    // scaleFreeRate): the trainer fills in their defaults, so the run continues exactly as before.
    const { rateWarmup: _w, scaleFreeRate: _s, ...olderLora } = config.lora;
    const older = { ...config, lora: olderLora as typeof config.lora };
    const { events, want } = await expectResumeExact(config, await goldenTrainData(), older);
    expect(events.map((e) => e.step)).toEqual([1, 2, 3, 4]);
    expect(events[3].state).toBe('done');
    expect(events[1].contributions?.length).toBe(want.layers.length);
    // Importance vectors go with the contributions: s·f(i) for each of the layer's D positions.
    expect(events[1].importance?.map((f) => f.length)).toEqual(events[1].layers.map((l) => l.rank));
    expect(events[0].contributions).toBeUndefined();
    expect(events[0].importance).toBeUndefined();
    expect(events[3].adapterBytes).toBeGreaterThan(0);
    expect(events[3].fixedRankBytes).toBeGreaterThan(events[3].adapterBytes);
    expect(events[3].peakGpuBytes).toBeGreaterThan(0);
    expect(events[3].classLoss).toBeUndefined();
  });

  it(
    'trainer with accumulation, cosine warm-up, crop/flip and prior preservation also resumes exactly',
    { timeout: 2_400_000 },
    async () => {
      const base = await goldenTrainData();
      const ehs = await reader.readFloat32('inputs.encoder_hidden_states');
      const data: TrainData = {
        ...base,
        classImages: [base.images[1], base.images[0], base.images[1]],
        classEmbedding: { data: ehs.slice(7 * 20, 2 * 7 * 20), shape: [1, 7, 20] },
      };
      const config: TrainerConfig = {
        ...resumeConfig(),
        sessionId: 's2',
        batchSize: 1,
        gradientAccumulation: 2,
        lrSchedule: { kind: 'cosine', warmupSteps: 1 },
        augment: { flip: true, minCrop: 0.7 },
        priorLossWeight: 0.5,
      };
      const { events, want } = await expectResumeExact(config, data);
      expect(want.classLossHistory).toHaveLength(4);
      expect(events.map((e) => e.classLoss)).toEqual(want.classLossHistory);
      await expect(
        Trainer.create(engine, unet, new NoiseSchedule(DEFAULT_SCHEDULER), data, {
          ...config,
          gradientAccumulation: 0,
        }),
      ).rejects.toThrow(/gradient accumulation 0/);
      await expect(
        Trainer.create(
          engine,
          unet,
          new NoiseSchedule(DEFAULT_SCHEDULER),
          { ...data, classEmbedding: undefined },
          config,
        ),
      ).rejects.toThrow(/class prompt/);
    },
  );

  it('a checkpoint saved before weightPriorDecoupledA existed resumes with the coupled rule it trained with', async () => {
    const data = await goldenTrainData();
    const schedule = new NoiseSchedule(DEFAULT_SCHEDULER);
    const config: TrainerConfig = {
      ...DEFAULT_TRAINER_CONFIG,
      sessionId: 'old',
      lora: lora2Settings(),
    };
    const store = memoryCheckpointStore();
    const t = await Trainer.create(engine, unet, schedule, data, config, store);
    expect(t.config.lora.weightPriorDecoupledA).toBe(true);
    await store.put(await t.checkpoint());
    t.release();
    const saved = (await store.get('old'))!;
    expect(saved.settings.lora.weightPriorDecoupledA).toBe(true);
    const resumedNew = await Trainer.create(engine, unet, schedule, data, config, store);
    expect(resumedNew.config.lora.weightPriorDecoupledA).toBe(true);
    resumedNew.release();
    // The same record as an older build wrote it.
    const { weightPriorDecoupledA: _d, ...olderLora } = saved.settings.lora;
    await store.put({ ...saved, step: 1, settings: { ...saved.settings, lora: olderLora as Lora2Settings } });
    const resumedOld = await Trainer.create(engine, unet, schedule, data, config, store);
    expect(resumedOld.step).toBe(1);
    expect(resumedOld.config.lora.weightPriorDecoupledA).toBe(false);
    expect(resumedOld.adapters.every((a) => a.settings.weightPriorDecoupledA === false)).toBe(true);
    resumedOld.release();
  });

  it('priors count every value the loss averages over, so the adapters learn (N = photos × C·H·W)', async () => {
    /** Mean Frobenius norm of the adapters' B after 10 steps, and the N the priors used (coupled prior). */
    const normB = async (priorCount: number | undefined) => {
      const t = await goldenTrainer({
        sessionId: 'prior',
        steps: 10,
        seed: 3,
        lora: lora2Settings({ weightPriorDecoupledA: false }),
        priorCount,
      });
      await t.run();
      let sum = 0;
      for (const a of t.adapters) {
        const st = await a.state();
        sum += Math.hypot(...st.Bt.subarray(0, st.rank * st.outFeatures));
      }
      t.release();
      return { n: t.config.lora.datasetSize, b: sum / t.adapters.length };
    };
    const dflt = await normB(undefined);
    const photosOnly = await normB(2);
    mark(
      `mean |B| after 10 steps: N = ${dflt.n}: ${dflt.b.toExponential(2)}, N = 2: ${photosOnly.b.toExponential(2)}`,
    );
    expect(dflt.n).toBe(2 * 3 * 16 * 16);
    // With N = 2 the weight prior's θ/N outweighs the data gradient and B stays near zero (measured ~10× apart
    // on emoji-tiny after 10 steps).
    expect(dflt.b).toBeGreaterThan(3 * photosOnly.b);
  });

  it('the weight prior through Adam shrinks A by ~lr per step while B is small; decoupled (default) it does not', async () => {
    const steps = 10;
    /** Mean over adapters of ‖A[:D]‖ after / before `steps` steps. */
    const shrinkA = async (weightPriorDecoupledA: boolean) => {
      const t = await goldenTrainer({
        sessionId: 'decoupled',
        steps,
        seed: 3,
        lora: lora2Settings({ weightPriorDecoupledA }),
      });
      const normA = async () =>
        Promise.all(
          t.adapters.map(async (a) => {
            const st = await a.state();
            return Math.hypot(...st.A.subarray(0, st.rank * st.inFeatures));
          }),
        );
      const before = await normA();
      await t.run();
      const after = await normA();
      t.release();
      return after.reduce((s, v, i) => s + v / before[i], 0) / after.length;
    };
    const coupled = await shrinkA(false);
    const decoupled = await shrinkA(true);
    mark(`‖A‖ after/before ${steps} steps: coupled ${coupled.toFixed(3)}, decoupled ${decoupled.toFixed(3)}`);
    // Entries ~1/√in (≤ 0.18 here) lose up to lr = 3e-3 per step when Adam normalises the prior's gradient.
    expect(coupled).toBeLessThan(0.95);
    // Decoupled, the prior removes lr/(Nσ²) ≈ 2e-6 of A per step; what moves A is the data (either way).
    expect(decoupled).toBeGreaterThan(0.99);
  });

  it('gradient accumulation averages its micro-batches; prior preservation adds λ × the class batch; checkpointing changes nothing but memory', async () => {
    const base = await goldenTrainData();
    const ehs = await reader.readFloat32('inputs.encoder_hidden_states');
    // Class pool = the instance pool (same size, so the same draws) under the second prompt.
    const withClass: TrainData = {
      ...base,
      classImages: base.images,
      classEmbedding: { data: ehs.slice(7 * 20, 2 * 7 * 20), shape: [1, 7, 20] },
    };
    const secondPrompt: TrainData = { ...base, embedding: withClass.classEmbedding! };
    /**
     * Every step's gradients (A, Bᵀ, ∂L/∂f of all layers, concatenated) at lr 0, so nothing moves and each
     * step sees the same adapters; B starts from fixed random values so that A and f get gradients too.
     * Without the weight prior, which is added once per step (not per micro-batch), they are the task's alone.
     */
    const gradients = async (over: Partial<TrainerConfig>, data: TrainData, steps: number) => {
      const t = await goldenTrainer(
        {
          sessionId: 'accumulate',
          steps,
          seed: 7,
          batchSize: 1,
          lora: lora2Settings({ lr: 0, rateLr: 0, weightPrior: false }),
          ...over,
        },
        data,
      );
      const init = new Rng(11);
      for (const a of t.adapters) engine.write(a.Bt, init.normals(a.Bt.size, 0.05));
      const out: Float32Array[] = [];
      const parts: Float32Array[] = [];
      for (const a of t.adapters) {
        const apply = a.applyStep.bind(a);
        a.applyStep = async (scale?: number) => {
          parts.push(await a.A.grad!.read(), await a.Bt.grad!.read(), await a.importanceGrad!.read());
          return apply(scale);
        };
      }
      engine.pool.resetPeak();
      for (let i = 0; i < steps; i++) {
        await t.trainStep();
        out.push(Float32Array.from(parts.flatMap((p) => Array.from(p))));
        parts.length = 0;
      }
      const losses = { loss: [...t.lossHistory], classLoss: [...t.classLossHistory] };
      const peakLiveBytes = engine.stats().peakLiveBytes;
      t.release();
      return { grads: out, ...losses, peakLiveBytes };
    };
    // Micro-batch draws, one per step: instance prompt, then the second prompt.
    const plain = await gradients({}, base, 1);
    const [ga] = plain.grads;
    const two = await gradients({}, base, 2);
    const gb1 = two.grads[1];
    const single = await gradients({}, secondPrompt, 2);
    const gb2 = single.grads[1];
    const accumulated = await gradients({ gradientAccumulation: 2 }, base, 1);
    const prior = await gradients({ priorLossWeight: 0.5 }, withClass, 1);
    const checkpointed = await gradients({ gradientCheckpointing: true }, base, 1);
    const combine = (wa: number, b: Float32Array, wb: number) => ga.map((v, i) => wa * v + wb * b[i]);
    const errAcc = relativeError(accumulated.grads[0], combine(0.5, gb1, 0.5));
    const errPrior = relativeError(prior.grads[0], combine(1, gb2, 0.5));
    mark(`accumulation rel err ${errAcc.toExponential(2)}, prior preservation ${errPrior.toExponential(2)}`);
    expect(errAcc).toBeLessThan(1e-4);
    expect(errPrior).toBeLessThan(1e-4);
    // Gradient checkpointing recomputes the blocks' activations: the same step with less held at once.
    const errCkpt = relativeError(checkpointed.grads[0], ga);
    mark(
      `checkpointing rel err ${errCkpt.toExponential(2)}, peak live bytes ` +
        `${checkpointed.peakLiveBytes} vs ${plain.peakLiveBytes} without`,
    );
    expect(errCkpt).toBeLessThan(1e-6);
    expect(checkpointed.loss[0]).toBe(plain.loss[0]);
    expect(checkpointed.peakLiveBytes).toBeLessThan(plain.peakLiveBytes);
    // The two micro-batches really differ (else the test could not tell a mean from either one).
    expect(relativeError(ga, gb1)).toBeGreaterThan(0.1);
    expect(relativeError(gb1, gb2)).toBeGreaterThan(0.01);
    // Reported losses: the instance mean over micro-batches; the class loss separately.
    expect(accumulated.loss[0]).toBeCloseTo((two.loss[0] + two.loss[1]) / 2, 6);
    expect(prior.loss[0]).toBeCloseTo(two.loss[0], 6);
    expect(prior.classLoss[0]).toBeCloseTo(single.loss[1], 6);
  });

  it('per-photo captions: each drawn photo trains with its own embedding', async () => {
    const base = await goldenTrainData();
    const ehs = await reader.readFloat32('inputs.encoder_hidden_states');
    const embA = base.embedding;
    const embB = { data: ehs.slice(7 * 20, 2 * 7 * 20), shape: [1, 7, 20] as [number, number, number] };
    /** Losses of 8 steps of batch 1 at lr 0 (nothing moves, so each step's loss depends on its draws only). */
    const losses = async (data: TrainData) => {
      const t = await goldenTrainer(
        { sessionId: 'captions', steps: 8, seed: 5, batchSize: 1, lora: lora2Settings({ lr: 0, rateLr: 0 }) },
        data,
      );
      const init = new Rng(11);
      for (const a of t.adapters) engine.write(a.Bt, init.normals(a.Bt.size, 0.05));
      for (let i = 0; i < 8; i++) await t.trainStep();
      const out = [...t.lossHistory];
      t.release();
      return out;
    };
    const onlyA = await losses(base);
    const onlyB = await losses({ ...base, embedding: embB });
    // Every photo captioned with B is the same run as the prompt B.
    expect(await losses({ ...base, embeddings: [embB, embB] })).toEqual(onlyB);
    // Photo 0 captioned A, photo 1 B: each step's loss is the one of its photo's prompt, and both occur.
    const mixed = await losses({ ...base, embeddings: [embA, embB] });
    const which = mixed.map((l, i) => (l === onlyA[i] ? 'A' : l === onlyB[i] ? 'B' : '?'));
    mark(`captions: draws ${which.join('')}`);
    expect(which).not.toContain('?');
    expect(new Set(which)).toEqual(new Set(['A', 'B']));
    // A caption embedding of another shape is refused before training.
    await expect(
      goldenTrainer(
        { sessionId: 'captions-bad', steps: 1, lora: lora2Settings({}) },
        { ...base, embeddings: [embA, { data: embA.data.slice(0, 20), shape: [1, 1, 20] }] },
      ),
    ).rejects.toThrow(/image 1's caption embedding is 1×1×20, the prompt's 1×7×20/);
  });

  it('lrB steps B at its own learning rate and A at lr; the lr schedule scales both', async () => {
    const lr = 1e-3;
    /** Largest |ΔA| and |ΔBᵀ| over all adapters in each of two steps (rank fixed at 4). */
    const steps = async (lrB: number | undefined, over: Partial<TrainerConfig> = {}) => {
      const t = await goldenTrainer({
        sessionId: 'lrB',
        steps: 2,
        seed: 5,
        lora: lora2Settings({ fixedRank: 4, lr, ...(lrB === undefined ? {} : { lrB }) }),
        ...over,
      });
      const read = () => Promise.all(t.adapters.map((a) => a.state()));
      const maxDelta = (x: AdapterState[], y: AdapterState[], key: 'A' | 'Bt') =>
        Math.max(...x.map((st, i) => Math.max(...st[key].map((v, j) => Math.abs(v - y[i][key][j])))));
      const s0 = await read();
      await t.trainStep();
      const s1 = await read();
      await t.trainStep();
      const s2 = await read();
      t.release();
      return {
        B1: maxDelta(s1, s0, 'Bt'),
        A1: maxDelta(s1, s0, 'A'),
        A2: maxDelta(s2, s1, 'A'),
      };
    };
    const same = await steps(undefined);
    const fast = await steps(5 * lr);
    mark(
      `lrB: max |ΔB| step 1 ${same.B1.toExponential(3)} / ${fast.B1.toExponential(3)}, max |ΔA| step 2 ${same.A2.toExponential(3)} / ${fast.A2.toExponential(3)}`,
    );
    // Adam's first step moves every entry with a gradient by ≈ its lr; B starts at zero, so A has no task gradient yet.
    expect(same.B1).toBeGreaterThan(0.99 * lr);
    expect(same.B1).toBeLessThanOrEqual(1.0001 * lr);
    expect(fast.B1).toBeGreaterThan(0.99 * 5 * lr);
    expect(fast.B1).toBeLessThanOrEqual(1.0001 * 5 * lr);
    expect(Math.max(same.A1, fast.A1)).toBeLessThan(1e-3 * lr);
    // The trainer's schedule scales both: 4 warm-up steps start at a quarter of each rate.
    const warm = await steps(5 * lr, { lrSchedule: { kind: 'cosine', warmupSteps: 4 } });
    expect(warm.B1 / fast.B1).toBeCloseTo(0.25, 4);
    // A's first gradient comes at step 2: Adam's bias-corrected step is then at most ≈ 0.75·lr, whatever lrB is.
    for (const a of [same.A2, fast.A2]) {
      expect(a).toBeGreaterThan(0.5 * lr);
      expect(a).toBeLessThan(lr);
    }
  });
});
