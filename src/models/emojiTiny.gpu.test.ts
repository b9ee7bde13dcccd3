// The shipped default model (public/models/emoji-tiny) against what PyTorch computed when it was exported
// (tools/reference/export_default.py → golden/emoji_tiny_forward.safetensors, text_encoder_check.json): the
// word-level tokenizer, the ONNX text encoder in onnxruntime-web, the f16 UNet on the WGSL engine, and a
// seeded generation being reproducible.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noGrad } from '../autograd/tape';
import { relativeError } from '../autograd/testing';
import { testGpu } from '../gpu/testing';
import { SafetensorsReader } from '../io/safetensors';
import { bytesSource } from '../io/sources';
import { Engine } from '../tensor/engine';
import { DirectoryFolder } from './folderNode';
import { DiffusionModel } from './pipeline';
import { Rng } from './rng';
import { createSampler } from './schedulers';
import { UNet2DConditionModel } from './unet';

const GOLDEN = 'tools/reference/golden';
/** An identifier may move the prediction by at most this share of what the whole prompt moves it. */
const IDENTIFIER_EFFECT_MAX = 0.1;

describe('emoji-tiny (the shipped default model) vs PyTorch at export', { timeout: 900_000 }, () => {
  let engine: Engine;
  let model: DiffusionModel;
  let golden: SafetensorsReader;
  const folder = new DirectoryFolder('public/models/emoji-tiny');
  beforeAll(async () => {
    engine = new Engine(await testGpu());
    model = await DiffusionModel.load(engine, folder);
    golden = await SafetensorsReader.open(
      bytesSource(new Uint8Array(readFileSync(`${GOLDEN}/emoji_tiny_forward.safetensors`))),
    );
  });
  afterAll(async () => {
    await model?.dispose();
    engine?.destroy();
  });

  it("carries the folder's recommended sampling settings (sampling.json)", () => {
    const file = JSON.parse(readFileSync('public/models/emoji-tiny/sampling.json', 'utf8'));
    expect(model.sampling).toEqual({
      guidance: file.guidance,
      steps: file.steps,
      recomputeEpsilon: file.recomputeEpsilon ?? false,
      trainPrompt: file.trainPrompt,
      source: 'sampling.json',
    });
  });

  it('tokenizes and encodes prompts like torch did', async () => {
    const check = JSON.parse(readFileSync(`${GOLDEN}/text_encoder_check.json`, 'utf8')) as {
      prompts: string[];
      input_ids: number[][];
      last_hidden_state_first8: number[];
    };
    check.prompts.forEach((p, i) =>
      expect(Array.from(model.tokenizer.encode(p).ids)).toEqual(check.input_ids[i]),
    );
    // The first 8 features at every position of each check prompt (one holds <v1>, whose row
    // neutral_identifiers.py trained), as torch's encoder gave them.
    for (const [i, p] of check.prompts.entries()) {
      const { data, shape } = await model.embed(p);
      const [, len, dim] = shape;
      const first8 = Array.from({ length: len * 8 }, (_, k) => data[Math.floor(k / 8) * dim + (k % 8)]);
      const want = check.last_hidden_state_first8.slice(i * len * 8, (i + 1) * len * 8);
      expect(relativeError(Float32Array.from(first8), Float32Array.from(want))).toBeLessThan(1e-4);
    }
    // inputs.encoder_hidden_states = torch's encoder on ("grinning face", "").
    const want = await golden.readFloat32('inputs.encoder_hidden_states');
    const half = want.length / 2;
    const cond = await model.embed('grinning face');
    const uncond = await model.embed('');
    expect(cond.shape).toEqual([1, 16, 128]);
    expect(relativeError(cond.data, want.subarray(0, half))).toBeLessThan(1e-4);
    expect(relativeError(uncond.data, want.subarray(half))).toBeLessThan(1e-4);
  });

  it('treats the reserved identifiers as neutral: "<v1> dog face" predicts what "dog face" does', async () => {
    // |ε(prompt with <vN>) − ε(prompt)|² as a share of |ε(prompt) − ε("")|² (what guidance multiplies), on the
    // golden's two noised inputs (t = 500 and 20). Before tools/reference/neutral_identifiers.py trained the
    // identifier rows they kept their random start and moved it by 0.384, 0.045 and 0.685 of the prompt's.
    const sample = golden.info('inputs.sample');
    const x = await golden.readFloat32('inputs.sample');
    const timesteps = Array.from(await golden.readFloat32('inputs.timestep'));
    const eps = async (prompt: string) => {
      const e = await model.embed(prompt);
      const both = new Float32Array(2 * e.data.length);
      both.set(e.data);
      both.set(e.data, e.data.length);
      return noGrad(engine, () =>
        engine.scope(async () => {
          const out = await model.unet.forward(
            engine.fromArray(x, sample.shape),
            timesteps,
            engine.fromArray(both, [2, ...e.shape.slice(1)]),
          );
          return out.read();
        }),
      );
    };
    const uncond = await eps('');
    const effects: [string, number][] = [];
    for (const [marked, plain] of [
      ['<v1> dog face', 'dog face'],
      ['cat <v2> face', 'cat face'],
      ['red heart <v5>', 'red heart'],
    ]) {
      const p = await eps(plain);
      const m = await eps(marked);
      let moved = 0;
      let prompt = 0;
      for (let i = 0; i < p.length; i++) {
        moved += (m[i] - p[i]) ** 2;
        prompt += (p[i] - uncond[i]) ** 2;
      }
      effects.push([marked, moved / prompt]);
    }
    console.log(
      `emoji-tiny identifier effect (share of the prompt's): ${effects.map(([m, e]) => `"${m}" ${e.toFixed(3)}`).join(', ')}`,
    );
    for (const [marked, effect] of effects) expect(effect, marked).toBeLessThan(IDENTIFIER_EFFECT_MAX);
  });

  it('the f16 UNet on WGSL matches the torch forward (≤ 1e-3 relative)', async () => {
    const sample = golden.info('inputs.sample');
    const ehs = golden.info('inputs.encoder_hidden_states');
    const timesteps = Array.from(await golden.readFloat32('inputs.timestep'));
    const got = await noGrad(engine, () =>
      engine.scope(async () => {
        const out = await model.unet.forward(
          engine.fromArray(await golden.readFloat32('inputs.sample'), sample.shape),
          timesteps,
          engine.fromArray(await golden.readFloat32('inputs.encoder_hidden_states'), ehs.shape),
        );
        return out.read();
      }),
    );
    const err = relativeError(got, await golden.readFloat32('forward.out'));
    console.log(`emoji-tiny forward rel err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-3);
  });

  it('keeps its F16 linear and conv weights as f16 on the GPU, computing what f32 copies compute', async () => {
    const half = model.unet.weightStorage();
    const wide = await UNet2DConditionModel.load(engine, folder, undefined, { weights: 'f32' });
    try {
      const full = wide.weightStorage();
      expect(full.f16).toBe(0);
      expect(half.f16).toBeGreaterThan(0);
      // Norms and biases stay f32; the product weights hold nearly all parameters.
      expect(half.bytes).toBeLessThan(0.55 * full.bytes);
      console.log(
        `emoji-tiny weights: ${half.bytes} bytes with ${half.f16} f16 tensors, ${full.bytes} bytes all f32`,
      );
      const sample = golden.info('inputs.sample');
      const ehs = golden.info('inputs.encoder_hidden_states');
      const timesteps = Array.from(await golden.readFloat32('inputs.timestep'));
      const run = (unet: UNet2DConditionModel) =>
        noGrad(engine, () =>
          engine.scope(async () => {
            const x = engine.fromArray(await golden.readFloat32('inputs.sample'), sample.shape);
            const e = engine.fromArray(await golden.readFloat32('inputs.encoder_hidden_states'), ehs.shape);
            return (await unet.forward(x, timesteps, e)).read();
          }),
        );
      // The same values reach the same sums in the same order: f16 storage changes nothing but memory.
      const err = relativeError(await run(model.unet), await run(wide));
      console.log(`emoji-tiny forward, f16 vs f32 weight storage: rel err ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-6);
    } finally {
      wide.params.release();
    }
  });

  it('generates the same image twice from the same seed, and a different one from another', async () => {
    const opts = { prompt: 'red heart', seed: 5, steps: 2, guidance: 4, sampler: 'ddim' as const };
    const a = await model.generate(opts);
    const b = await model.generate(opts);
    const c = await model.generate({ ...opts, seed: 6 });
    expect([a.width, a.height]).toEqual([32, 32]);
    expect(a.data).toEqual(b.data);
    expect(a.data).not.toEqual(c.data);
  });

  it('samples the same DDIM trajectory as torch from the same noise and embeddings', async () => {
    // golden/emoji_tiny_ddim.safetensors (make_sampler_golden.py): 10 DDIM steps, guidance 4, torch's noise.
    const { golden: ddim, uncond, cond, steps, guidance } = await samplerGolden();
    const recorded = [...ddim.tensors.keys()].filter((k) => k.startsWith('x.after_'));
    const errors: Record<number, number> = {};
    const wants = new Map<number, Float32Array>();
    for (const k of recorded) wants.set(Number(k.slice('x.after_'.length)), await ddim.readFloat32(k));
    await model.denoise(await ddim.readFloat32('inputs.noise'), uncond, cond, {
      steps,
      guidance,
      sampler: 'ddim',
      recomputeEpsilon: false, // torch's trajectory keeps ε, as diffusers (whatever sampling.json recommends)
      rng: new Rng(0),
      inspect: (step, x) => {
        const want = wants.get(step);
        if (want) errors[step] = relativeError(x, want);
      },
    });
    console.log(
      `emoji-tiny DDIM vs torch, rel err after step ${Object.entries(errors)
        .map(([s, e]) => `${s}: ${e.toExponential(2)}`)
        .join(', ')}`,
    );
    expect(
      Object.keys(errors)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual([...wants.keys()].sort((a, b) => a - b));
    for (const e of Object.values(errors)) expect(e).toBeLessThan(1e-3);

    // The same noise with a guidance interval (guidance only at t ≤ meta.guidance_below): torch's x after the
    // last step. The full-guidance trajectory ends 1.7 (max abs) away from it, so ignoring the interval fails.
    const below = (await ddim.readFloat32('meta.guidance_below'))[0];
    const interval = await model.denoise(await ddim.readFloat32('inputs.noise'), uncond, cond, {
      steps,
      guidance,
      guidanceBelow: below,
      sampler: 'ddim',
      recomputeEpsilon: false,
      rng: new Rng(0),
    });
    const intervalError = relativeError(interval, await ddim.readFloat32(`x_interval.after_${steps}`));
    console.log(
      `emoji-tiny DDIM, guidance only at t ≤ ${below}, vs torch: rel err ${intervalError.toExponential(2)}`,
    );
    expect(intervalError).toBeLessThan(1e-3);

    // ε from the clipped x₀ (sampling.json's recomputeEpsilon), full guidance: torch's x after the last step,
    // which the kept-ε trajectory misses by far more than the tolerance (checked below, so the option must act).
    const recomputed = await model.denoise(await ddim.readFloat32('inputs.noise'), uncond, cond, {
      steps,
      guidance,
      sampler: 'ddim',
      recomputeEpsilon: true,
      rng: new Rng(0),
    });
    const wantRecomputed = await ddim.readFloat32(`x_recompute.after_${steps}`);
    const recomputeError = relativeError(recomputed, wantRecomputed);
    const keptVsRecomputed = relativeError(wants.get(steps)!, wantRecomputed);
    console.log(
      `emoji-tiny DDIM, ε from the clipped x₀, vs torch: rel err ${recomputeError.toExponential(2)} ` +
        `(torch's kept-ε trajectory is ${keptVsRecomputed.toExponential(2)} away)`,
    );
    expect(recomputeError).toBeLessThan(1e-3);
    expect(keptVsRecomputed).toBeGreaterThan(1e-2);
  });

  it('samples the same Euler-ancestral trajectories as torch, with and without the x₀ clip', async () => {
    // The same golden file: torch's Euler ancestral from inputs.noise, its ancestral steps adding the recorded
    // inputs.euler_step_noise (one draw of 3·32·32 per step but the last), which the studio's sampler takes from
    // the Rng it is given: an Rng that replays them.
    const { golden, uncond, cond, steps, guidance } = await samplerGolden();
    const stepNoise = await golden.readFloat32('inputs.euler_step_noise');
    const sigma = createSampler('euler-a', model.scheduler, steps).initNoiseSigma;
    const noise = (await golden.readFloat32('inputs.noise')).map((v) => v * sigma);
    const run = async (recomputeEpsilon: boolean) => {
      const rng = new ReplayRng(stepNoise);
      const x = await model.denoise(noise, uncond, cond, {
        steps,
        guidance,
        sampler: 'euler-a',
        recomputeEpsilon,
        rng,
      });
      expect(rng.used).toBe(stepNoise.length); // every recorded draw, in order, and no more
      return x;
    };
    const plainWant = await golden.readFloat32(`x_euler.after_${steps}`);
    const clipWant = await golden.readFloat32(`x_euler_clip.after_${steps}`);
    const plainError = relativeError(await run(false), plainWant);
    const clipError = relativeError(await run(true), clipWant);
    const apart = relativeError(plainWant, clipWant);
    console.log(
      `emoji-tiny Euler ancestral vs torch: rel err ${plainError.toExponential(2)} (no clip), ` +
        `${clipError.toExponential(2)} (x₀ clipped; the two torch trajectories are ${apart.toExponential(2)} apart)`,
    );
    expect(plainError).toBeLessThan(1e-3);
    expect(clipError).toBeLessThan(1e-3);
    expect(apart).toBeGreaterThan(1e-2); // the option must act
  });
});

/** golden/emoji_tiny_ddim.safetensors (make_sampler_golden.py): the reader, torch's text embeddings, steps, guidance. */
async function samplerGolden() {
  const golden = await SafetensorsReader.open(
    bytesSource(new Uint8Array(readFileSync(`${GOLDEN}/emoji_tiny_ddim.safetensors`))),
  );
  const ehs = await golden.readFloat32('inputs.encoder_hidden_states'); // [uncond, cond]
  const [, len, dim] = golden.info('inputs.encoder_hidden_states').shape;
  const embedding = (data: Float32Array) => ({ data, shape: [1, len, dim] as [number, number, number] });
  return {
    golden,
    uncond: embedding(ehs.subarray(0, len * dim)),
    cond: embedding(ehs.subarray(len * dim)),
    steps: (await golden.readFloat32('meta.steps'))[0],
    guidance: (await golden.readFloat32('meta.guidance'))[0],
  };
}

/** An Rng whose normal() replays recorded values (torch's draws), and counts them; more than recorded throws. */
class ReplayRng extends Rng {
  used = 0;
  constructor(private readonly values: Float32Array) {
    super(0);
  }

  override normal(): number {
    if (this.used >= this.values.length)
      throw new Error(`ReplayRng: only ${this.values.length} values recorded`);
    return this.values[this.used++];
  }
}
