// LoRA² vs fixed-rank LoRA on the synthetic rank task in Node on Dawn: one run of each, side by side, as a
// Markdown report (ranks, final MSE and fit error per layer, adapter size, peak GPU bytes, time).
// Usage: npm run bench:lora:synthetic [-- --steps 300 --fixed 4,8,16 --seed 3 --n 1024]
import os from 'node:os';
import { adapterName } from '../src/gpu/device';
import { acquireNodeGpu } from '../src/gpu/node';
import { SYNTHETIC_BATCH, SYNTHETIC_DIM, SYNTHETIC_GAIN } from '../src/lora/synthetic';
import { Engine } from '../src/tensor/engine';
import { benchSettings, loraReportTable, parseLoraBenchArgs, runLoraBench } from './bench/lora';

async function main(): Promise<void> {
  const opts = parseLoraBenchArgs(process.argv.slice(2));
  const gpu = await acquireNodeGpu({ label: 'bench-lora' });
  const engine = new Engine(gpu);
  const started = new Date();
  const load0 = os.loadavg();
  const rows = await runLoraBench(engine, opts, (s) => process.stderr.write(s));
  const load1 = os.loadavg();
  const s = benchSettings(opts);
  console.log(`## LoRA² vs fixed-rank LoRA, synthetic task (${started.toISOString()})

- adapter: ${adapterName(gpu.adapter)}${gpu.adapter.isFallback ? ' (software)' : ''}
- host: ${os.cpus().length} CPUs, load average ${load0[0].toFixed(1)} at start, ${load1[0].toFixed(1)} at end; Node ${process.version}
- task: 3 independent ${SYNTHETIC_DIM}×${SYNTHETIC_DIM} linear maps, W − W0 of rank 1 / 4 / 16 (gain ${SYNTHETIC_GAIN}), ${SYNTHETIC_BATCH} fresh Gaussian inputs per layer per step, seed ${opts.seed}, ${opts.steps} steps
- shared: N = ${s.datasetSize}, σ_θ = ${s.weightSigma}, AdamW lr ${s.lr} (A, B), β = ${s.beta1}/${s.beta2}
- LoRA²: k = ${s.quantile}, r₀ = ${s.priorRank}, σ = ${s.rateSigma}, s = ${s.scale}, ρ lr ${s.rateLr}, r_init = ${s.initialRank}, chunk ${s.chunk}; fixed rank: f ≡ 1, α = r
- final MSE: the last step's batch; fit error: ‖ΔW − (W − W0)‖_F / ‖W − W0‖_F of the exported adapter; params/bytes: exported (Σ D·(in + out), f32); peak GPU bytes: live pool bytes of the whole run (task matrices, adapters with moments, activations)

${loraReportTable(rows)}
`);
  engine.destroy();
  gpu.destroy();
  process.exit(0);
}

await main();
