// The one test command: static checks (tsc, eslint, prettier), then every Vitest tier (unit, gpu on Dawn,
// e2e in Chromium), ending with a single "tests: N passed, N failed" line.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';

const node = process.execPath;
const steps = [
  ['typecheck', [node, 'node_modules/typescript/bin/tsc', '--noEmit', '-p', 'tsconfig.json']],
  ['eslint', [node, 'node_modules/eslint/bin/eslint.js', '.']],
  ['prettier', [node, 'node_modules/prettier/bin/prettier.cjs', '--check', '--log-level', 'warn', '.']],
  ['gpu-info', [node, 'node_modules/tsx/dist/cli.mjs', 'cli/gpu-info.ts']],
];
const projects = process.argv.slice(2);

let checksFailed = 0;
for (const [name, cmd] of steps) {
  const t0 = Date.now();
  const r = spawnSync(cmd[0], cmd.slice(1), { stdio: 'inherit' });
  const ok = r.status === 0;
  console.log(`[${name}] ${ok ? 'ok' : 'FAILED'} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (!ok) checksFailed++;
}

mkdirSync('test-results', { recursive: true });
const report = 'test-results/vitest.json';
const vitestArgs = [
  'node_modules/vitest/vitest.mjs',
  'run',
  '--reporter=default',
  `--reporter=json`,
  `--outputFile.json=${report}`,
];
for (const p of projects) vitestArgs.push('--project', p);
const t0 = Date.now();
const r = spawnSync(node, vitestArgs, { stdio: 'inherit' });
console.log(`[vitest] exit ${r.status} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const j = JSON.parse(readFileSync(report, 'utf8'));
  passed = j.numPassedTests;
  failed = j.numFailedTests;
  skipped = j.numPendingTests + (j.numTodoTests ?? 0);
  // A suite that failed to load has no test results but must still count as a failure.
  failed += j.testResults.filter((t) => t.status === 'failed' && t.assertionResults.length === 0).length;
  const overlap = tierOverlap(j.testResults);
  if (overlap) {
    console.error(`tiers overlapped: ${overlap} (the e2e tier's long-task checks assume it runs alone)`);
    failed += 1;
  }
} catch (e) {
  console.error(`could not read ${report}: ${e}`);
  failed += 1;
}
passed += steps.length - checksFailed;
failed += checksFailed;
console.log(`\ntests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 && r.status === 0 ? 0 : 1);

/** The first e2e file whose run overlapped a Node-tier file's, as text; '' when the e2e tier ran alone. */
function tierOverlap(results) {
  const e2eDir = join(process.cwd(), 'e2e') + sep;
  const e2e = results.filter((t) => t.name.startsWith(e2eDir));
  const node = results.filter((t) => !e2e.includes(t));
  for (const a of e2e)
    for (const b of node)
      if (a.startTime < b.endTime && b.startTime < a.endTime)
        return `${a.name} (${new Date(a.startTime).toISOString()}) beside ${b.name}`;
  return '';
}
