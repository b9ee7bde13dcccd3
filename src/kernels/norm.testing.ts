// Test harness shared by the GroupNorm and LayerNorm GPU tests: both reduce to the segment-norm shape, so
// one routine runs the launchers on random data and checks every output against the float64 reference.
import { testGpu } from '../gpu/testing';
import { kernelContext, readF32, upload, type KernelContext } from './common';
import type {
  GroupNormShape,
  NormBackwardAffineBuffers,
  NormBackwardInputBuffers,
  NormForwardBuffers,
} from './groupnorm';
import { groupNormBackwardRef, groupNormRef } from './groupnorm.ref';
import { assertClose, canaryBuffer, finiteDifference, randn, readCanaried, rng, tolerance } from './testing';

export interface NormLaunchers {
  forward: (ctx: KernelContext, b: NormForwardBuffers) => Promise<void>;
  backwardInput: (ctx: KernelContext, b: NormBackwardInputBuffers) => Promise<void>;
  backwardAffine: (ctx: KernelContext, b: NormBackwardAffineBuffers) => Promise<void>;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, v, i) => acc + v * b[i], 0);

/** Finite differences of Σ dy·y with respect to x, gamma and beta against the reference backward. */
export function checkReferenceBackward(s: GroupNormShape, seed: number): void {
  const rand = rng(seed);
  const n = s.batch * s.channels * s.h * s.w;
  const x = Float64Array.from(randn(rand, n));
  const gamma = Float64Array.from(randn(rand, s.channels));
  const beta = Float64Array.from(randn(rand, s.channels));
  const dy = Float64Array.from(randn(rand, n));
  const loss = () => dot(dy, groupNormRef(x, gamma, beta, s).y);
  const g = groupNormBackwardRef(dy, x, gamma, s);
  const tol = { atol: 1e-6, rtol: 1e-5 };
  assertClose(g.dx, finiteDifference(loss, x), tol, 'dx');
  assertClose(g.dgamma, finiteDifference(loss, gamma), tol, 'dgamma');
  assertClose(g.dbeta, finiteDifference(loss, beta), tol, 'dbeta');
}

/** Runs forward and both backward launchers on poisoned, canaried outputs and compares with the reference. */
export async function checkOnGpu(
  op: string,
  s: GroupNormShape,
  run: NormLaunchers,
  seed: number,
): Promise<void> {
  const ctx = kernelContext(await testGpu());
  const tol = tolerance('norm');
  const rand = rng(seed);
  const n = s.batch * s.channels * s.h * s.w;
  const segs = s.batch * s.groups;
  // An offset mean makes a one-pass E[x²] − E[x]² variance visibly wrong.
  const xData = randn(rand, n).map((v) => 3 + 2 * v);
  const data = {
    x: xData,
    gamma: randn(rand, s.channels),
    beta: randn(rand, s.channels),
    dy: randn(rand, n),
  };
  const f64 = {
    x: Float64Array.from(data.x),
    gamma: Float64Array.from(data.gamma),
    beta: Float64Array.from(data.beta),
    dy: Float64Array.from(data.dy),
  };
  const x = upload(ctx, `${op}.test.x`, data.x);
  const gamma = upload(ctx, `${op}.test.gamma`, data.gamma);
  const beta = upload(ctx, `${op}.test.beta`, data.beta);
  const dy = upload(ctx, `${op}.test.dy`, data.dy);
  const out = canaryBuffer(ctx, `${op}.test.out`, n);
  const stats = canaryBuffer(ctx, `${op}.test.stats`, 2 * segs);
  const dx = canaryBuffer(ctx, `${op}.test.dx`, n);
  const dgamma = canaryBuffer(ctx, `${op}.test.dgamma`, s.channels);
  const dbeta = canaryBuffer(ctx, `${op}.test.dbeta`, s.channels);

  const fwd = groupNormRef(f64.x, f64.gamma, f64.beta, s);
  const bwd = groupNormBackwardRef(f64.dy, f64.x, f64.gamma, s);
  await run.forward(ctx, { x, gamma, beta, out, stats });
  assertClose(await readCanaried(ctx, out, n), fwd.y, tol, `${op} forward`);
  const gotStats = await readCanaried(ctx, stats, 2 * segs);
  assertClose(
    gotStats.filter((_, i) => i % 2 === 0),
    fwd.mean,
    tol,
    `${op} mean`,
  );
  assertClose(
    gotStats.filter((_, i) => i % 2 === 1),
    fwd.rstd,
    tol,
    `${op} rstd`,
  );
  await run.backwardInput(ctx, { dy, x, gamma, stats, dx });
  assertClose(await readCanaried(ctx, dx, n), bwd.dx, tol, `${op} dx`);
  await run.backwardAffine(ctx, { dy, x, stats, dgamma, dbeta });
  assertClose(await readCanaried(ctx, dgamma, s.channels), bwd.dgamma, tol, `${op} dgamma`);
  assertClose(await readCanaried(ctx, dbeta, s.channels), bwd.dbeta, tol, `${op} dbeta`);

  // Accumulate: a second pass adds the same gradients onto the first.
  await run.backwardInput(ctx, { dy, x, gamma, stats, dx, accumulate: true });
  await run.backwardAffine(ctx, { dy, x, stats, dgamma, dbeta, accumulate: true });
  const twice = (a: Float64Array) => a.map((v) => 2 * v);
  assertClose(await readF32(ctx, dx, n), twice(bwd.dx), tol, `${op} accumulated dx`);
  assertClose(await readF32(ctx, dgamma, s.channels), twice(bwd.dgamma), tol, `${op} accumulated dgamma`);
  assertClose(await readF32(ctx, dbeta, s.channels), twice(bwd.dbeta), tol, `${op} accumulated dbeta`);
  for (const b of [x, gamma, beta, dy, out, stats, dx, dgamma, dbeta]) b.destroy();
}
