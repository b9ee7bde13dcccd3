// LoRA² against fixed-rank LoRA on the synthetic rank task (src/lora/synthetic.ts): the same layers, inputs,
// steps and priors; per method the learned ranks, final MSE and fit error per layer, exported size and the
// run's peak GPU bytes, as a Markdown table.
import { lora2Settings, type Lora2Settings } from '../../src/lora/adapter';
import {
  SYNTHETIC_SETTINGS,
  SYNTHETIC_TRUE_RANKS,
  trainSynthetic,
  type SyntheticResult,
} from '../../src/lora/synthetic';
import type { Engine } from '../../src/tensor/engine';

export interface LoraBenchOptions {
  steps: number;
  /** Ranks of the fixed-rank LoRA baselines (scale α/r = 1). */
  fixedRanks: number[];
  seed: number;
  /** N of both priors (datasetSize); undefined = the task's (SYNTHETIC_SETTINGS). */
  datasetSize?: number;
}

export const DEFAULT_LORA_BENCH: LoraBenchOptions = { steps: 300, fixedRanks: [4, 8, 16], seed: 3 };

/** `--steps 300 --fixed 4,8,16 --seed 3 --n 1024` over the defaults. */
export function parseLoraBenchArgs(argv: string[], defaults = DEFAULT_LORA_BENCH): LoraBenchOptions {
  const opts = { ...defaults, fixedRanks: [...defaults.fixedRanks] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--steps') opts.steps = Number(argv[++i]);
    else if (a === '--fixed') opts.fixedRanks = argv[++i].split(',').filter(Boolean).map(Number);
    else if (a === '--seed') opts.seed = Number(argv[++i]);
    else if (a === '--n') opts.datasetSize = Number(argv[++i]);
    else throw new Error(`bench-lora: unknown argument ${a}`);
  }
  const badN = opts.datasetSize !== undefined && !(opts.datasetSize > 0);
  if (!(opts.steps > 0) || opts.fixedRanks.some((r) => !(r >= 1)) || !Number.isInteger(opts.seed) || badN)
    throw new Error('bench-lora: bad --steps/--fixed/--seed/--n');
  return opts;
}

/** The task's settings with the bench's N, then `over`. */
export function benchSettings(opts: LoraBenchOptions, over: Partial<Lora2Settings> = {}): Lora2Settings {
  const n = opts.datasetSize === undefined ? {} : { datasetSize: opts.datasetSize };
  return lora2Settings({ ...SYNTHETIC_SETTINGS, ...n, ...over });
}

export interface LoraBenchRow {
  method: string;
  result: SyntheticResult;
}

/** LoRA² first, then each fixed rank; `log` receives progress text. */
export async function runLoraBench(
  engine: Engine,
  opts: LoraBenchOptions,
  log: (text: string) => void,
): Promise<LoraBenchRow[]> {
  const runs = [
    { method: 'LoRA²', settings: benchSettings(opts) },
    ...opts.fixedRanks.map((r) => ({
      method: `fixed r = ${r}`,
      settings: benchSettings(opts, { fixedRank: r }),
    })),
  ];
  // Pipelines compile on first use (seconds on lavapipe): a few untimed steps of each kind first.
  log('warm-up … ');
  for (const { settings } of runs.slice(0, 2)) await trainSynthetic(engine, settings, { steps: 3 });
  log('done\n');
  const rows: LoraBenchRow[] = [];
  for (const { method, settings } of runs) {
    log(`${method}: ${opts.steps} steps … `);
    const result = await trainSynthetic(engine, settings, { steps: opts.steps, seed: opts.seed });
    log(`${(result.ms / 1000).toFixed(1)} s\n`);
    rows.push({ method, result });
  }
  return rows;
}

const list = (xs: number[], f: (x: number) => string) => xs.map(f).join(' / ');
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export function loraReportTable(rows: LoraBenchRow[]): string {
  const lines = [
    `| method | ranks (true ${SYNTHETIC_TRUE_RANKS.join(' / ')}) | final MSE per layer | fit error per layer | ` +
      'adapter params | adapter bytes (f32) | peak GPU bytes | time |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(({ method, result: r }) => {
      const ls = r.layers;
      return (
        `| ${method} | ${list(
          ls.map((l) => l.rank),
          String,
        )} | ${list(
          ls.map((l) => l.loss),
          (v) => v.toExponential(1),
        )} | ${list(
          ls.map((l) => l.fitError),
          (v) => v.toFixed(3),
        )} | ` +
        `${sum(ls.map((l) => l.params)).toLocaleString('en-US')} | ${sum(ls.map((l) => l.bytes)).toLocaleString('en-US')} | ` +
        `${r.peakBytes.toLocaleString('en-US')} | ${(r.ms / 1000).toFixed(1)} s |`
      );
    }),
  ];
  return lines.join('\n');
}
