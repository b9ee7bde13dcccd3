// How LoRA²'s ranks move over a run on the synthetic rank task (true ranks 1, 4, 16), in float64 on the CPU
// (synthetic.ref.ts: no GPU, seconds per run), with the settings a real fine-tune uses — the defaults
// (s = 1, lr 3e-3, ρ lr 1e-2) and N as large as a 6-photo 32×32 subject gives (6·3·32·32), so the priors
// are weak — rather than the task's tuned ones. It shows the two regimes: while the adapter is underfit the
// ranks fall towards 2–3 in every layer, and they separate only once the first components are fitted.
// Variants: rate warm-up, scale-free ρ gradient, no rank prior, a larger scale and learning rates. Prints a Markdown table of D per layer at a few steps.
// Usage: npm run bench:lora:regime [-- --steps 600 --n 18432 --seed 3]
import { parseArgs } from 'node:util';
import { lora2Settings, type Lora2Settings } from '../src/lora/adapter';
import { SYNTHETIC_TRUE_RANKS } from '../src/lora/synthetic';
import { trainSyntheticRef } from '../src/lora/synthetic.ref';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '600' },
    n: { type: 'string', default: String(6 * 3 * 32 * 32) },
    seed: { type: 'string', default: '3' },
  },
});
const steps = Number(args.steps);
const N = Number(args.n);
const seed = Number(args.seed);
if (!(steps > 0) || !(N > 0) || !Number.isInteger(seed))
  throw new Error('bench-lora-regime: bad --steps/--n/--seed');

const variants: { name: string; over: Partial<Lora2Settings> }[] = [
  { name: 'exact ∂L/∂ρ (default)', over: {} },
  { name: 'rate warm-up 50 steps', over: { rateWarmup: 50 } },
  { name: 'scale-free ∂L/∂ρ', over: { scaleFreeRate: true } },
  { name: 'no rank prior', over: { rankPrior: false } },
  { name: 's 4, lr 1e-2 / ρ 3e-2 (fits faster)', over: { scale: 4, lr: 1e-2, rateLr: 3e-2 } },
];
const marks = [10, 50, 150, 300, 600, 1200, 2400].filter((m) => m < steps).concat(steps);

const rows: string[] = [];
for (const v of variants) {
  const t0 = performance.now();
  const r = trainSyntheticRef(lora2Settings({ datasetSize: N, ...v.over }), { steps, seed, trace: true });
  const cells = marks.map((m) => r.trace[m - 1].ranks.join(' / '));
  const fit = r.layers.map((l) => l.fitError.toFixed(2)).join(' / ');
  rows.push(`| ${v.name} | ${cells.join(' | ')} | ${fit} |`);
  process.stderr.write(`${v.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
const s = lora2Settings();
console.log(`## LoRA² ranks over a run, synthetic task in float64 (${new Date().toISOString()})

- task: 3 independent 64×64 maps, W − W0 of rank ${SYNTHETIC_TRUE_RANKS.join(' / ')}; seed ${seed}; ${steps} steps
- settings: the LoRA² defaults (k ${s.quantile}, r₀ ${s.priorRank}, σ ${s.rateSigma}, s ${s.scale}, lr ${s.lr} / ρ ${s.rateLr}, r_init ${s.initialRank}) with N = ${N}
- cells: D of the three layers after that step; fit error ‖ΔW − (W − W0)‖/‖W − W0‖ at the end

| variant | ${marks.map((m) => `step ${m}`).join(' | ')} | fit error |
|---|${marks.map(() => '---|').join('')}---|
${rows.join('\n')}
`);
