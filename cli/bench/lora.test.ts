// bench:lora:synthetic's argument parsing and report table (the runs themselves need a GPU: npm run bench:lora:synthetic).
import { describe, expect, it } from 'vitest';
import type { SyntheticResult } from '../../src/lora/synthetic';
import { benchSettings, DEFAULT_LORA_BENCH, loraReportTable, parseLoraBenchArgs } from './lora';

describe('bench:lora:synthetic', () => {
  it('parses options over the defaults and refuses bad ones', () => {
    expect(parseLoraBenchArgs([])).toEqual(DEFAULT_LORA_BENCH);
    const o = parseLoraBenchArgs(['--steps', '50', '--fixed', '2,32', '--seed', '7', '--n', '1024']);
    expect(o).toEqual({ steps: 50, fixedRanks: [2, 32], seed: 7, datasetSize: 1024 });
    expect(benchSettings(o).datasetSize).toBe(1024);
    expect(benchSettings(o, { fixedRank: 2 }).fixedRank).toBe(2);
    expect(() => parseLoraBenchArgs(['--steps', '0'])).toThrow(/bad/);
    expect(() => parseLoraBenchArgs(['--n', '-1'])).toThrow(/bad/);
    expect(() => parseLoraBenchArgs(['--what'])).toThrow(/unknown/);
  });

  it('writes one row per method with per-layer values and totals', () => {
    const layer = (rank: number, loss: number) => ({
      trueRank: rank,
      rank,
      capacity: 8,
      rate: 0.5,
      loss,
      fitError: 0.25,
      params: rank * 128,
      bytes: rank * 512,
    });
    const result: SyntheticResult = {
      layers: [layer(1, 1e-3), layer(4, 2e-3)],
      trace: [],
      peakBytes: 123456,
      ms: 1500,
    };
    const table = loraReportTable([{ method: 'LoRA²', result }]).split('\n');
    expect(table).toHaveLength(3);
    expect(table[2]).toBe(
      '| LoRA² | 1 / 4 | 1.0e-3 / 2.0e-3 | 0.250 / 0.250 | 640 | 2,560 | 123,456 | 1.5 s |',
    );
  });
});
