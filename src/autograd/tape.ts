// The autograd tape: ops record (inputs, outputs, saved tensors, backward) while some input requires
// grad; backward() runs them in reverse, routes gradients into leaves' .grad, and frees every saved
// activation and intermediate gradient as soon as no remaining node needs it.
import { addInPlace } from '../kernels/elementwise';
import type { Engine } from '../tensor/engine';
import { shapesEqual } from '../tensor/shape';
import type { Tensor } from '../tensor/tensor';

export type BackwardFn = (g: GradContext) => Promise<void>;

export interface Node {
  readonly name: string;
  /** Positional inputs (undefined for an absent optional operand, e.g. no bias). */
  readonly inputs: readonly (Tensor | undefined)[];
  readonly outputs: readonly Tensor[];
  /** Tensors the backward reads; held by the tape until this node has run its backward. */
  readonly saved: readonly Tensor[];
  readonly backward: BackwardFn;
}

interface AutogradState {
  nodes: Node[];
  gradEnabled: boolean;
  /** False during a checkpointed segment's first forward: requiresGrad propagates, nothing is kept. */
  keepGraph: boolean;
}

const states = new WeakMap<Engine, AutogradState>();

function stateOf(engine: Engine): AutogradState {
  let s = states.get(engine);
  if (!s) states.set(engine, (s = { nodes: [], gradEnabled: true, keepGraph: true }));
  return s;
}

/** Misuse of the graph: gradient reaching a tensor whose graph was already consumed or never kept. */
export class GraphError extends Error {
  override name = 'GraphError';
}

export function isGradEnabled(engine: Engine): boolean {
  return stateOf(engine).gradEnabled;
}

/** True when an op over these inputs must record itself (grad mode on and some input requires grad). */
export function needsGrad(inputs: readonly (Tensor | undefined)[]): boolean {
  const first = inputs.find((t) => t !== undefined);
  return first !== undefined && stateOf(first.engine).gradEnabled && inputs.some((t) => t?.requiresGrad);
}

/**
 * Called by an op after its forward. When grad is needed the outputs become non-leaf tensors requiring
 * grad and the node is kept with its saved tensors held; otherwise nothing happens. The op still owns
 * (and releases) any temporaries it passed in `saved`.
 */
export function record(node: Node): void {
  if (!needsGrad(node.inputs)) return;
  for (const o of node.outputs) {
    o.requiresGrad = true;
    o.isLeaf = false;
  }
  const st = stateOf(node.outputs[0].engine);
  if (!st.keepGraph) return;
  for (const s of node.saved) s.hold();
  st.nodes.push(node);
}

/** Number of nodes recorded and not yet consumed by backward (for tests and leak checks). */
export function tapeLength(engine: Engine): number {
  return stateOf(engine).nodes.length;
}

/** Drops the recorded graph without a backward (e.g. a forward under grad that will not be trained on). */
export function clearTape(engine: Engine): void {
  const st = stateOf(engine);
  for (const n of st.nodes.splice(0)) for (const s of n.saved) s.drop();
}

/** Runs fn with gradient recording off: inference, evaluation, sampling. */
export async function noGrad<T>(engine: Engine, fn: () => Promise<T> | T): Promise<T> {
  const st = stateOf(engine);
  const prev = st.gradEnabled;
  st.gradEnabled = false;
  try {
    return await fn();
  } finally {
    st.gradEnabled = prev;
  }
}

/** Releases the leaves' gradients (the next backward writes fresh ones instead of accumulating). */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.release();
    p.grad = undefined;
  }
}

// ---- gradient sinks ------------------------------------------------------------------------------------

/** Where one tensor's gradient goes: its .grad (leaf), a slot of this backward (intermediate), or elsewhere. */
export interface GradSink {
  /** No gradient written yet: a contribution may overwrite or be adopted. */
  readonly fresh: boolean;
  /** The buffer for one contribution; accumulate is false only for the first (the buffer is uninitialised). */
  take(): { tensor: Tensor; accumulate: boolean };
  /** Adopts `t` (same element count and dtype) as the whole gradient when fresh; true if it took ownership. */
  adopt(t: Tensor): boolean;
}

class SlotSink implements GradSink {
  constructor(
    private readonly target: Tensor,
    private readonly get: () => Tensor | undefined,
    private readonly set: (g: Tensor) => void,
  ) {}

  get fresh(): boolean {
    return this.get() === undefined;
  }

  take(): { tensor: Tensor; accumulate: boolean } {
    const g = this.get();
    if (g) return { tensor: g, accumulate: true };
    const t = this.target;
    const fresh = t.engine.empty(t.shape, { dtype: t.dtype, label: `${t.label}.grad` });
    this.set(fresh);
    return { tensor: fresh, accumulate: false };
  }

  adopt(g: Tensor): boolean {
    const t = this.target;
    if (this.get() || g.size !== t.size || g.dtype !== t.dtype) return false;
    if (shapesEqual(g.shape, t.shape)) this.set(g);
    else {
      this.set(g.view(t.shape, { label: `${t.label}.grad` }));
      g.release();
    }
    return true;
  }
}

/** Gradient of an intermediate tensor within one backward run; released once its producer has run. */
class IntermediateSink extends SlotSink {
  grad: Tensor | undefined;
  constructor(target: Tensor) {
    super(
      target,
      () => this.grad,
      (g) => (this.grad = g),
    );
  }
}

/** Adds `t` into the sink (adopting it when fresh) and gives up `t`. */
async function giveTo(sink: GradSink, t: Tensor): Promise<void> {
  if (sink.adopt(t)) return;
  const { tensor: dst, accumulate } = sink.take();
  if (dst.storage === t.storage) {
    // The sink already holds this very buffer (x + x): double it through a copy, never bind it twice.
    const copy = t.engine.emptyLike(t, `${t.label}.copy`);
    t.engine.copy(t, copy);
    t.release();
    t = copy;
  }
  if (accumulate) {
    if (dst.dtype !== 'f32') throw new Error(`${dst.label}: gradient accumulation needs f32`);
    await addInPlace(t.engine.ctx, { dst: dst.buffer, src: t.buffer, n: t.size });
  } else t.engine.copy(t, dst);
  t.release();
}

// ---- backward ------------------------------------------------------------------------------------------

/** What a node's backward sees: upstream gradients and destinations for its inputs' gradients. */
export class GradContext {
  private readonly moved: boolean[];
  private readonly temps: Tensor[] = [];
  /** Upstream gradients moved to a sink but still readable by later passes of this node (see pass). */
  private readonly held: Tensor[] = [];

  constructor(
    readonly node: Node,
    private readonly upstream: (Tensor | undefined)[],
    private readonly sinkFor: (t: Tensor) => GradSink | undefined,
  ) {
    this.moved = upstream.map(() => false);
  }

  get engine(): Engine {
    return this.node.outputs[0].engine;
  }

  /** Upstream gradient of output i, or undefined when that output did not reach the loss. */
  grad(i = 0): Tensor | undefined {
    return this.upstream[i];
  }

  /** Upstream gradient of output i, zeros when it has none (multi-output nodes). */
  gradOrZeros(i = 0): Tensor {
    return (
      this.upstream[i] ?? this.temp(this.engine.zeros(this.node.outputs[i].shape, { label: 'zeroGrad' }))
    );
  }

  /** True when input i wants a gradient. */
  needs(i: number): boolean {
    const t = this.node.inputs[i];
    return t !== undefined && t.requiresGrad && this.sinkFor(t) !== undefined;
  }

  /** The sink of input i (only when needs(i)). */
  sinkOf(i: number): GradSink {
    if (!this.needs(i)) throw new GraphError(`${this.node.name}: input ${i} takes no gradient`);
    return this.sinkFor(this.node.inputs[i]!)!;
  }

  /** Runs a kernel that writes (accumulate=false) or adds into input i's gradient; skipped if not needed. */
  async into(i: number, fn: (dst: Tensor, accumulate: boolean) => Promise<void>): Promise<void> {
    if (!this.needs(i)) return;
    const { tensor, accumulate } = this.sinkFor(this.node.inputs[i]!)!.take();
    await fn(tensor, accumulate);
  }

  /**
   * For kernels without an accumulate flag: writes straight into a fresh gradient, else into a temporary
   * that is then added.
   */
  async overwrite(i: number, fn: (dst: Tensor) => Promise<void>): Promise<void> {
    if (!this.needs(i)) return;
    const input = this.node.inputs[i]!;
    const sink = this.sinkFor(input)!;
    if (sink.fresh) {
      await fn(sink.take().tensor);
      return;
    }
    const tmp = this.engine.emptyLike(input, `${input.label}.gradPart`);
    await fn(tmp);
    await giveTo(sink, tmp);
  }

  /**
   * For kernels that write several inputs' gradients under one accumulate flag: accumulates straight into
   * the gradients when all of them already hold one, else overwrites fresh ones and routes the rest
   * through temporaries (scratch for inputs that want no gradient). Skipped when none is wanted.
   */
  async jointly(indices: number[], fn: (dst: Tensor[], accumulate: boolean) => Promise<void>): Promise<void> {
    if (!indices.some((i) => this.needs(i))) return;
    const sinks = indices.map((i) => (this.needs(i) ? this.sinkFor(this.node.inputs[i]!)! : undefined));
    const distinct = new Set(sinks).size === sinks.length;
    if (distinct && sinks.every((s) => s && !s.fresh)) {
      await fn(
        sinks.map((s) => s!.take().tensor),
        true,
      );
      return;
    }
    const taken = new Set<GradSink>();
    const direct = sinks.map(
      (s) => s !== undefined && s.fresh && !taken.has(s) && taken.add(s) !== undefined,
    );
    const dst = indices.map((i, k) => {
      if (direct[k]) return sinks[k]!.take().tensor;
      const input = this.node.inputs[i]!;
      return this.engine.emptyLike(input, `${input.label}.gradPart`);
    });
    await fn(dst, false);
    for (const [k, s] of sinks.entries()) {
      if (direct[k]) continue;
      if (s) await giveTo(s, dst[k]);
      else dst[k].release();
    }
  }

  /** Adds tensor t (same element count as input i) into input i's gradient; takes ownership of t. */
  async give(i: number, t: Tensor): Promise<void> {
    if (!this.needs(i)) {
      t.release();
      return;
    }
    await giveTo(this.sinkFor(this.node.inputs[i]!)!, t);
  }

  /** Routes output `out`'s upstream gradient unchanged (reshaped) to input i, moving it when possible. */
  async pass(i: number, out = 0): Promise<void> {
    const up = this.upstream[out];
    if (!up || !this.needs(i)) return;
    if (this.moved[out]) {
      const copy = this.engine.emptyLike(up, `${up.label}.copy`);
      this.engine.copy(up, copy);
      await this.give(i, copy);
      return;
    }
    this.moved[out] = true;
    // The sink may add `up` into an existing gradient and release it at once; a second pass of the same
    // upstream (add(a, b) routes dy to both) must still be able to copy it, so keep its storage until finish.
    up.hold();
    this.held.push(up);
    await this.give(i, up);
  }

  /** A tensor released after this node's backward (scratch, zeros). */
  temp(t: Tensor): Tensor {
    this.temps.push(t);
    return t;
  }

  /** Releases temporaries and the upstream gradients not moved elsewhere. */
  finish(): void {
    for (const t of this.temps.splice(0)) t.release();
    for (const t of this.held.splice(0)) t.drop();
    this.upstream.forEach((u, i) => {
      if (u && !this.moved[i]) u.release();
    });
  }
}

/**
 * Backpropagates through `nodes` (in recording order) from `seeds` (tensor, its gradient; gradients are
 * taken over). `captures` redirects gradients of given tensors elsewhere (checkpoint inputs). Consumes
 * the nodes: every saved tensor is dropped, on success or failure.
 */
export async function runBackward(
  nodes: Node[],
  seeds: [Tensor, Tensor][],
  captures: Map<Tensor, GradSink> = new Map(),
  opts: { nodesPerSubmit?: number } = {},
): Promise<void> {
  const produced = new Set<Tensor>();
  for (const n of nodes) for (const o of n.outputs) produced.add(o);
  const intermediate = new Map<Tensor, IntermediateSink>();
  const leaves = new Map<Tensor, GradSink>();

  const sinkFor = (t: Tensor): GradSink | undefined => {
    const c = captures.get(t);
    if (c) return c;
    if (produced.has(t)) {
      let s = intermediate.get(t);
      if (!s) intermediate.set(t, (s = new IntermediateSink(t)));
      return s;
    }
    if (!t.requiresGrad) return undefined;
    if (!t.isLeaf) {
      throw new GraphError(
        `gradient reached ${t} whose graph is gone (a second backward, or a checkpoint fn using a tensor not passed in its inputs)`,
      );
    }
    let s = leaves.get(t);
    if (!s) {
      s = new SlotSink(
        t,
        () => t.grad,
        (g) => (t.grad = g),
      );
      leaves.set(t, s);
    }
    return s;
  };

  // Index of the next node to run; nodes above it have run (and dropped what they saved).
  let next = nodes.length - 1;
  const step = async () => {
    const node = nodes[next--];
    const upstream = node.outputs.map((o) => intermediate.get(o)?.grad);
    for (const o of node.outputs) intermediate.delete(o);
    const g = new GradContext(node, upstream, sinkFor);
    try {
      if (upstream.some((u) => u !== undefined)) await node.backward(g);
    } finally {
      g.finish();
      for (const s of node.saved) s.drop();
    }
  };
  try {
    for (const [t, g] of seeds) {
      const s = sinkFor(t);
      if (s) await giveTo(s, g);
      else g.release();
    }
    const chunk = opts.nodesPerSubmit;
    const engine = seeds[0]?.[0].engine;
    if (chunk === undefined || !engine) while (next >= 0) await step();
    else {
      while (next >= 0) {
        await engine.batch('backward', async () => {
          for (let i = 0; i < chunk && next >= 0; i++) await step();
        });
      }
    }
  } finally {
    for (; next >= 0; next--) for (const s of nodes[next].saved) s.drop();
    for (const s of intermediate.values()) s.grad?.release();
    nodes.length = 0;
  }
}

export interface BackwardOptions {
  /** Gradient of `loss` (default: ones). Not consumed. */
  grad?: Tensor;
  /**
   * Nodes whose backward goes into one command buffer (default: all of them, one submit). A smaller
   * number keeps each submit short on GPUs with a watchdog; 0 submits every launch on its own.
   */
  nodesPerSubmit?: number;
}

/**
 * Backpropagates from `loss` through everything recorded since the last backward, accumulating into
 * .grad of leaves that require grad, and consumes the tape.
 */
export async function backward(loss: Tensor, opts: BackwardOptions = {}): Promise<void> {
  const engine = loss.engine;
  const st = stateOf(engine);
  const nodes = st.nodes;
  st.nodes = [];
  const run = async () => {
    if (!loss.requiresGrad) {
      await runBackward(nodes, []);
      throw new GraphError(`backward from ${loss}, which does not require grad`);
    }
    let seed: Tensor;
    if (opts.grad) {
      if (opts.grad.size !== loss.size)
        throw new GraphError(`backward: seed gradient size differs from ${loss}`);
      seed = engine.emptyLike(loss, `${loss.label}.seed`);
      engine.copy(opts.grad, seed);
    } else seed = engine.full(loss.shape, 1, { dtype: loss.dtype, label: `${loss.label}.seed` });
    await runBackward(nodes, [[loss, seed]], new Map(), { nodesPerSubmit: chunk });
  };
  const chunk = opts.nodesPerSubmit === 0 ? undefined : opts.nodesPerSubmit;
  await engine.untracked(() => (opts.nodesPerSubmit === undefined ? engine.batch('backward', run) : run()));
}

// ---- checkpointing -------------------------------------------------------------------------------------

/** Redirects a recomputed segment's input gradient into the outer node's input slot. */
class CaptureSink implements GradSink {
  constructor(private readonly outer: GradSink) {}
  get fresh(): boolean {
    return this.outer.fresh;
  }
  take(): { tensor: Tensor; accumulate: boolean } {
    return this.outer.take();
  }
  adopt(t: Tensor): boolean {
    return this.outer.adopt(t);
  }
}

type Outputs = Tensor | Tensor[];

/**
 * Gradient checkpointing: runs fn(...inputs) keeping none of its internals, and records one node whose
 * backward recomputes fn's forward (recording it) and backpropagates through it. fn must reach every
 * activation through `inputs` (parameters may be captured: they are leaves) and be deterministic.
 */
export async function checkpoint<T extends Outputs>(
  fn: (...inputs: Tensor[]) => Promise<T>,
  inputs: Tensor[],
): Promise<T> {
  if (inputs.length === 0) throw new Error('checkpoint needs at least one input tensor');
  const engine = inputs[0].engine;
  const st = stateOf(engine);
  // Without grad there is nothing to recompute; the scope still frees the segment's internals at once.
  if (!st.gradEnabled) return engine.scope(() => fn(...inputs));
  const prevKeep = st.keepGraph;
  st.keepGraph = false;
  let result: T;
  try {
    result = await engine.scope(() => fn(...inputs));
  } finally {
    st.keepGraph = prevKeep;
  }
  const outputs: Tensor[] = Array.isArray(result) ? result : [result];
  if (!outputs.some((o) => o.requiresGrad)) return result;
  if (outputs.some((o) => inputs.includes(o)))
    throw new GraphError('checkpoint fn returned one of its inputs');
  // Outputs can require grad through captured parameters alone, so record whatever the inputs say.
  if (st.keepGraph) {
    for (const s of inputs) s.hold();
    st.nodes.push({
      name: 'checkpoint',
      inputs,
      outputs,
      saved: inputs,
      backward: (g) => recompute(g, fn, inputs),
    });
  }
  for (const o of outputs) o.isLeaf = false;
  return result;
}

async function recompute(
  g: GradContext,
  fn: (...inputs: Tensor[]) => Promise<Outputs>,
  inputs: Tensor[],
): Promise<void> {
  const engine = g.engine;
  const st = stateOf(engine);
  const detached = inputs.map((t) => {
    const d = t.view(t.shape, { label: `${t.label}.recompute` });
    d.requiresGrad = t.requiresGrad;
    return d;
  });
  const saved = { nodes: st.nodes, gradEnabled: st.gradEnabled, keepGraph: st.keepGraph };
  Object.assign(st, { nodes: [], gradEnabled: true, keepGraph: true });
  let outs: Tensor[] = [];
  let subNodes: Node[] = [];
  try {
    const r = await engine.scope(() => fn(...detached));
    outs = Array.isArray(r) ? r : [r];
  } finally {
    subNodes = st.nodes;
    Object.assign(st, saved);
  }
  try {
    const seeds: [Tensor, Tensor][] = [];
    outs.forEach((o, i) => {
      const up = g.grad(i);
      // A second reference to the upstream gradient: the segment may consume it, the outer node releases its own.
      if (up) seeds.push([o, up.view(up.shape)]);
    });
    const captures = new Map<Tensor, GradSink>();
    detached.forEach((d, i) => {
      if (g.needs(i)) captures.set(d, new CaptureSink(g.sinkOf(i)));
    });
    await runBackward(subNodes, seeds, captures);
  } finally {
    for (const n of subNodes) for (const t of n.saved) t.drop();
    subNodes.length = 0;
    for (const t of [...outs, ...detached]) t.release();
  }
}
