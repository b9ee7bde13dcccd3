// Schedules against known Stable Diffusion values, and samplers driven by an oracle that knows x₀.
import { describe, expect, it } from 'vitest';
import { Rng } from './rng';
import {
  DEFAULT_SCHEDULER,
  DdimSampler,
  EulerAncestralSampler,
  NoiseSchedule,
  alphasCumprod,
  betas,
  createSampler,
  guide,
  guidanceAt,
  parseSchedulerConfig,
  type Sampler,
  type SchedulerConfig,
  type TimestepSpacing,
} from './schedulers';

describe('noise schedule', () => {
  it("matches SD 1.5's scaled_linear schedule (√ᾱ_T ≈ 0.0683)", () => {
    const ac = alphasCumprod(DEFAULT_SCHEDULER);
    expect(ac[0]).toBeCloseTo(1 - 0.00085, 10);
    expect(Math.sqrt(ac[999])).toBeCloseTo(0.0683, 3);
    const b = betas(DEFAULT_SCHEDULER);
    expect(b[999]).toBeCloseTo(0.012, 10);
  });

  it('linear betas interpolate linearly', () => {
    const b = betas({ ...DEFAULT_SCHEDULER, beta_schedule: 'linear', beta_start: 1e-4, beta_end: 0.02 });
    expect(b[0]).toBeCloseTo(1e-4, 12);
    expect(b[500] - b[499]).toBeCloseTo((0.02 - 1e-4) / 999, 12);
  });

  it('adds noise per batch item and builds ε and v targets', () => {
    const s = new NoiseSchedule(DEFAULT_SCHEDULER);
    const x0 = Float32Array.from([1, 2, 3, 4]);
    const eps = Float32Array.from([0.5, -0.5, 1, -1]);
    const t = [10, 900];
    const xt = s.addNoise(x0, eps, t);
    const a1 = s.alphasCumprod[900];
    expect(xt[2]).toBeCloseTo(Math.sqrt(a1) * 3 + Math.sqrt(1 - a1) * 1, 5);
    expect(Array.from(s.target(x0, eps, t))).toEqual(Array.from(eps));
    const v = new NoiseSchedule({ ...DEFAULT_SCHEDULER, prediction_type: 'v_prediction' }).target(x0, eps, t);
    expect(v[3]).toBeCloseTo(Math.sqrt(a1) * -1 - Math.sqrt(1 - a1) * 4, 5);
  });

  it('rejects unsupported configs with the key named', () => {
    expect(() => parseSchedulerConfig({ beta_schedule: 'squaredcos_cap_v2' })).toThrow(/beta_schedule/);
    expect(() => parseSchedulerConfig({ prediction_type: 'sample' })).toThrow(/prediction_type/);
    expect(parseSchedulerConfig({ num_train_timesteps: 500 }).num_train_timesteps).toBe(500);
    expect(() => parseSchedulerConfig({ clip_sample_range: 0 })).toThrow(
      /clip_sample_range must be a positive/,
    );
    expect(() => parseSchedulerConfig({ clip_sample_range: '1' })).toThrow(/clip_sample_range/);
    expect(parseSchedulerConfig({}).clip_sample_range).toBe(1);
    expect(() => parseSchedulerConfig({ timestep_spacing: 'karras' })).toThrow(
      /timestep_spacing "karras" is not supported \(leading, linspace, trailing\)/,
    );
    expect(() => parseSchedulerConfig({ rescale_betas_zero_snr: true })).toThrow(/rescale_betas_zero_snr/);
    expect(() => parseSchedulerConfig({ thresholding: true })).toThrow(/thresholding/);
    expect(
      parseSchedulerConfig({ rescale_betas_zero_snr: false, thresholding: false }).timestep_spacing,
    ).toBe(undefined);
  });
});

/** Runs a sampler with an oracle model that knows the clean sample x0. */
function sampleWithOracle(
  sampler: Sampler,
  cfg: SchedulerConfig,
  x0: Float32Array,
  seed: number,
): Float32Array {
  const rng = new Rng(seed);
  const ac = alphasCumprod(cfg);
  let x = rng.normals(x0.length, sampler.initNoiseSigma);
  sampler.timesteps.forEach((t, i) => {
    const input = sampler.scaleModelInput(x, i);
    // The scaled input is a variance-preserving x_t; the oracle's ε (or v) is exact for it.
    const a = interp(ac, t);
    const out = new Float32Array(x.length);
    for (let j = 0; j < x.length; j++) {
      const eps = (input[j] - Math.sqrt(a) * x0[j]) / Math.sqrt(1 - a);
      out[j] = cfg.prediction_type === 'epsilon' ? eps : Math.sqrt(a) * eps - Math.sqrt(1 - a) * x0[j];
    }
    x = sampler.step(out, i, x, rng);
  });
  return x;
}

function interp(ac: Float64Array, t: number): number {
  const lo = Math.floor(t);
  const hi = Math.min(ac.length - 1, lo + 1);
  // Euler's sigmas interpolate σ, not ᾱ; convert through σ so the oracle is exact for it.
  const s = (1 - (t - lo)) * Math.sqrt((1 - ac[lo]) / ac[lo]) + (t - lo) * Math.sqrt((1 - ac[hi]) / ac[hi]);
  return 1 / (1 + s * s);
}

describe('samplers', () => {
  const x0 = Float32Array.from({ length: 48 }, (_, i) => Math.sin(i) * 0.8);

  it('DDIM uses leading spacing with the steps offset', () => {
    expect(new DdimSampler(DEFAULT_SCHEDULER, 4).timesteps).toEqual([751, 501, 251, 1]);
  });

  // Expected values printed by numpy from diffusers' set_timesteps formulas (np.round rounds halves to even:
  // linspace over 7 steps has 832.5, 499.5 and 166.5).
  it("DDIM follows the config's timestep_spacing as diffusers' DDIMScheduler", () => {
    const ddim = (timestep_spacing: TimestepSpacing, n: number) =>
      new DdimSampler({ ...DEFAULT_SCHEDULER, timestep_spacing }, n).timesteps;
    expect(ddim('leading', 7)).toEqual([853, 711, 569, 427, 285, 143, 1]);
    expect(ddim('linspace', 4)).toEqual([999, 666, 333, 0]);
    expect(ddim('linspace', 7)).toEqual([999, 832, 666, 500, 333, 166, 0]);
    expect(ddim('trailing', 4)).toEqual([999, 749, 499, 249]);
    expect(ddim('trailing', 7)).toEqual([999, 856, 713, 570, 428, 285, 142]);
  });

  it("Euler ancestral defaults to linspace and follows the config's spacing, σ interpolated at each", () => {
    const euler = (timestep_spacing: TimestepSpacing | undefined, n: number) =>
      new EulerAncestralSampler({ ...DEFAULT_SCHEDULER, timestep_spacing }, n);
    expect(euler(undefined, 7).timesteps).toEqual([999, 832.5, 666, 499.5, 333, 166.5, 0]);
    expect(euler('linspace', 7).timesteps).toEqual(euler(undefined, 7).timesteps);
    expect(euler('leading', 4).timesteps).toEqual([751, 501, 251, 1]);
    expect(euler('trailing', 4).timesteps).toEqual([999, 749, 499, 249]);
    const ac = alphasCumprod(DEFAULT_SCHEDULER);
    const sigma = (t: number) => Math.sqrt((1 - ac[t]) / ac[t]);
    const e = euler('trailing', 4);
    expect(e.sigmas).toEqual([...[999, 749, 499, 249].map(sigma), 0]);
    expect(e.initNoiseSigma).toBeCloseTo(Math.sqrt(sigma(999) ** 2 + 1), 12);
    const half = euler(undefined, 7).sigmas[1];
    expect(half).toBeCloseTo((sigma(832) + sigma(833)) / 2, 12);
  });

  it('with no timestep_spacing in the config, DDIM is leading and Euler linspace (our models rely on it)', () => {
    const cfg = parseSchedulerConfig({ steps_offset: 0 });
    expect(new DdimSampler(cfg, 4).timesteps).toEqual([750, 500, 250, 0]);
    expect(new EulerAncestralSampler(cfg, 4).timesteps).toEqual([999, 666, 333, 0]);
  });

  it('Euler ancestral with trailing spacing still lands on x₀ with an exact model', () => {
    const cfg = { ...DEFAULT_SCHEDULER, timestep_spacing: 'trailing' as const };
    const landed = sampleWithOracle(createSampler('euler-a', cfg, 12), cfg, x0, 5);
    landed.forEach((v, i) => expect(v).toBeCloseTo(x0[i], 4));
  });

  for (const prediction_type of ['epsilon', 'v_prediction'] as const) {
    it(`DDIM with an exact ${prediction_type} model lands on x0`, () => {
      const cfg = { ...DEFAULT_SCHEDULER, prediction_type, set_alpha_to_one: true };
      const x = sampleWithOracle(new DdimSampler(cfg, 20), cfg, x0, 3);
      x.forEach((v, i) => expect(v).toBeCloseTo(x0[i], 4));
    });

    it(`Euler ancestral with an exact ${prediction_type} model lands on x0`, () => {
      const cfg = { ...DEFAULT_SCHEDULER, prediction_type };
      const x = sampleWithOracle(new EulerAncestralSampler(cfg, 25), cfg, x0, 4);
      x.forEach((v, i) => expect(v).toBeCloseTo(x0[i], 4));
    });
  }

  it('is reproducible for a seed and still lands on the oracle x0 through ancestral noise', () => {
    const cfg = DEFAULT_SCHEDULER;
    const wrong = new Float32Array(x0.length).fill(0.3);
    const run = (seed: number) => sampleWithOracle(new EulerAncestralSampler(cfg, 10), cfg, wrong, seed);
    expect(Array.from(run(7))).toEqual(Array.from(run(7)));
    expect(run(7)[0]).toBeCloseTo(0.3, 4);
  });

  describe('DDIM with clip_sample and recomputeEpsilon', () => {
    const cfg = { ...DEFAULT_SCHEDULER, clip_sample: true, set_alpha_to_one: true };
    const ac = alphasCumprod(cfg);
    // x at the first timestep and an ε that overshoots: the implied x₀ leaves [-1, 1] for some pixels only.
    const x = Float32Array.from([0.2, -0.4, 0.9, 0.3]);
    const eps = Float32Array.from([-2.5, 0.1, -3.0, 0.31]);

    it('takes ε from the clipped x₀ where the clip acted and keeps it elsewhere', () => {
      const sampler = new DdimSampler(cfg, 4, { recomputeEpsilon: true });
      const t = sampler.timesteps[0];
      const a = ac[t];
      const aPrev = ac[sampler.timesteps[1]];
      const out = sampler.step(eps, 0, x);
      let clipped = 0;
      for (let i = 0; i < x.length; i++) {
        const raw = (x[i] - Math.sqrt(1 - a) * eps[i]) / Math.sqrt(a);
        const x0 = Math.max(-1, Math.min(1, raw));
        if (x0 !== raw) clipped++;
        const e = x0 !== raw ? (x[i] - Math.sqrt(a) * x0) / Math.sqrt(1 - a) : eps[i];
        expect(out[i]).toBeCloseTo(Math.sqrt(aPrev) * x0 + Math.sqrt(1 - aPrev) * e, 6);
      }
      expect(clipped).toBeGreaterThan(0);
      expect(clipped).toBeLessThan(x.length);
    });

    it('differs from diffusers kept ε exactly where the clip acted', () => {
      const kept = new DdimSampler(cfg, 4).step(eps, 0, x);
      const recomputed = new DdimSampler(cfg, 4, { recomputeEpsilon: true }).step(eps, 0, x);
      const a = ac[new DdimSampler(cfg, 4).timesteps[0]];
      for (let i = 0; i < x.length; i++) {
        const raw = (x[i] - Math.sqrt(1 - a) * eps[i]) / Math.sqrt(a);
        if (Math.abs(raw) > 1) expect(Math.abs(recomputed[i] - kept[i])).toBeGreaterThan(1e-3);
        else expect(recomputed[i]).toBe(kept[i]);
      }
    });

    it('still lands on an in-range x₀ with an exact model, and createSampler passes the option', () => {
      const landed = sampleWithOracle(createSampler('ddim', cfg, 20, { recomputeEpsilon: true }), cfg, x0, 3);
      landed.forEach((v, i) => expect(v).toBeCloseTo(x0[i], 4));
      const viaFactory = createSampler('ddim', cfg, 4, { recomputeEpsilon: true }).step(
        eps,
        0,
        x,
        new Rng(0),
      );
      const direct = new DdimSampler(cfg, 4, { recomputeEpsilon: true }).step(eps, 0, x);
      expect(Array.from(viaFactory)).toEqual(Array.from(direct));
    });
  });

  it("clips x₀ to the config's clip_sample_range in both samplers", () => {
    // x₀ = 1.5 at the last DDIM step (ᾱ_prev = 1 with set_alpha_to_one) and Euler's last step (σ_to = 0).
    const x = Float32Array.from([1.5, -3]);
    for (const [range, want] of [
      [1, [1, -1]],
      [2, [1.5, -2]],
    ] as const) {
      const cfg = {
        ...DEFAULT_SCHEDULER,
        clip_sample: true,
        set_alpha_to_one: true,
        clip_sample_range: range,
      };
      const ddim = new DdimSampler(cfg, 1);
      const a = alphasCumprod(cfg)[ddim.timesteps[0]];
      const xt = x.map((v) => Math.sqrt(a) * v);
      const outDdim = ddim.step(new Float32Array(2), 0, xt);
      const euler = new EulerAncestralSampler(cfg, 1, { recomputeEpsilon: true });
      const outEuler = euler.step(new Float32Array(2), 0, x, new Rng(0));
      want.forEach((w, i) => {
        expect(outDdim[i]).toBeCloseTo(w, 5);
        expect(outEuler[i]).toBeCloseTo(w, 5);
      });
    }
  });

  describe('Euler ancestral with clip_sample and recomputeEpsilon', () => {
    const cfg = { ...DEFAULT_SCHEDULER, clip_sample: true };
    const x = Float32Array.from([3.0, -0.5, 12.0, 0.2]);
    const eps = Float32Array.from([-0.5, 0.1, 0.4, 0.02]);

    it('clips x₀ and takes the derivative from it; without the option it does not clip, as diffusers', () => {
      const clipped = new EulerAncestralSampler(cfg, 4, { recomputeEpsilon: true });
      const plain = new EulerAncestralSampler(cfg, 4);
      // The last step has σ_to = 0: no ancestral noise, so the step is x₀ itself.
      const last = clipped.timesteps.length - 1;
      const sigma = clipped.sigmas[last];
      const a = clipped.step(eps, last, x, new Rng(0));
      const b = plain.step(eps, last, x, new Rng(0));
      let acted = 0;
      for (let i = 0; i < x.length; i++) {
        const raw = x[i] - sigma * eps[i];
        expect(b[i]).toBeCloseTo(raw, 5);
        expect(a[i]).toBeCloseTo(Math.max(-1, Math.min(1, raw)), 5);
        if (Math.abs(raw) > 1) acted++;
      }
      expect(acted).toBeGreaterThan(0);
      expect(acted).toBeLessThan(x.length);
    });

    it('still lands on an in-range x₀ with an exact model', () => {
      const landed = sampleWithOracle(
        createSampler('euler-a', cfg, 25, { recomputeEpsilon: true }),
        cfg,
        x0,
        4,
      );
      landed.forEach((v, i) => expect(v).toBeCloseTo(x0[i], 4));
    });
  });

  it('guidance extrapolates from the unconditional prediction', () => {
    const g = guide(Float32Array.from([1, 1]), Float32Array.from([2, 0]), 7.5);
    expect(Array.from(g)).toEqual([8.5, -6.5]);
  });

  it('a guidance interval guides only at timesteps up to its bound', () => {
    expect([981, 501, 500, 21].map((t) => guidanceAt(t, 4, 500))).toEqual([1, 1, 4, 4]);
    expect([981, 21].map((t) => guidanceAt(t, 4))).toEqual([4, 4]);
  });
});

describe('rng', () => {
  it('restores its exact state', () => {
    const a = new Rng(42);
    a.normal();
    const st = a.state();
    const b = Rng.restore(st);
    expect(Array.from({ length: 5 }, () => a.normal())).toEqual(Array.from({ length: 5 }, () => b.normal()));
  });

  it('draws standard normals', () => {
    const r = new Rng(1);
    const xs = r.normals(20000);
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    const varr = xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(varr - 1)).toBeLessThan(0.05);
  });
});
