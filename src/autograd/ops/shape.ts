// Shape ops with autograd that copy nothing: reshape views, detach, and prefix slices along dim 0.
import { addInPlace } from '../../kernels/elementwise';
import type { Shape } from '../../tensor/shape';
import type { Tensor } from '../../tensor/tensor';
import { record } from '../tape';

/** The same elements under another shape (one dim may be -1); no copy. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const y = x.view(shape, { label: `${x.label}.reshape` });
  record({ name: 'reshape', inputs: [x], outputs: [y], saved: [], backward: (g) => g.pass(0) });
  return y;
}

/** A view cut off from the graph: no gradient flows through it. */
export function detach(x: Tensor): Tensor {
  return x.view(x.shape, { label: `${x.label}.detach` });
}

/**
 * The first `rows` slices along dim 0 (e.g. the first D rows of a LoRA down matrix), as a view: a
 * contiguous prefix of the buffer, so no copy. Its gradient lands in the prefix of x's gradient.
 */
export function sliceRows(x: Tensor, rows: number): Tensor {
  if (x.rank === 0 || !Number.isInteger(rows) || rows < 0 || rows > x.shape[0]) {
    throw new Error(`sliceRows: ${rows} rows of ${x}`);
  }
  const shape = [rows, ...x.shape.slice(1)];
  const y = x.view(shape, { label: `${x.label}[:${rows}]`, prefix: true });
  record({
    name: 'sliceRows',
    inputs: [x],
    outputs: [y],
    saved: [],
    backward: (g) =>
      g.into(0, async (dx, accumulate) => {
        const e = dx.engine;
        const dy = g.grad()!;
        if (!accumulate) e.clear(dx);
        const head = dx.view(shape, { label: `${dx.label}[:${rows}]`, prefix: true });
        try {
          await addInPlace(e.ctx, { dst: head.buffer, src: dy.buffer, n: dy.size });
        } finally {
          head.release();
        }
      }),
  });
  return y;
}
