// Regression: an upstream gradient passed to both inputs of add, where the first sink already holds a
// gradient (so the moved tensor is consumed at once), must still reach the second input.
import { expect, it } from 'vitest';
import { testGpu } from '../gpu/testing';
import { Engine } from '../tensor/engine';
import * as ops from './ops';
import { backward } from './tape';

it('routes one upstream gradient through add to two already-accumulating inputs', async () => {
  const engine = new Engine(await testGpu());
  const xs = [1, 2, 3];
  const x = engine.fromArray(xs, [3], { requiresGrad: true });
  const y = await ops.silu(x);
  const z = await ops.add(y, x);
  const w = await ops.add(z, y);
  await backward(await ops.sum(w));
  const got = await x.grad!.read();
  // w = 2·silu(x) + x → dw/dx = 2·silu'(x) + 1
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  xs.forEach((v, i) => expect(got[i]).toBeCloseTo(2 * sig(v) * (1 + v * (1 - sig(v))) + 1, 5));
});
