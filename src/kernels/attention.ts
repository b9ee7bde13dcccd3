// Memory-efficient scaled-dot-product attention (FlashAttention-2 style) on head-major [B, H, N, d]
// tensors, its backward, and the head split/merge permutations around it. No N×N matrix is ever stored.
import {
  ceilDiv,
  dispatchFor,
  getPipeline,
  launch,
  uniformBuffer,
  WGSL_EXP_FTZ,
  WGSL_FLAT_WORKGROUP,
  type AttentionGrid,
  type AttentionKernelChoice,
  type KernelContext,
} from './common';

export type { AttentionGrid, AttentionKernelChoice };

export type AttentionDType = 'f32' | 'f16';

export interface AttentionShape {
  batch: number;
  heads: number;
  /** Nq: query tokens. */
  queryLen: number;
  /** Nk: key/value tokens (≠ Nq for cross-attention). */
  keyLen: number;
  headDim: number;
  /** Multiplies q·k; defaults to 1/sqrt(headDim). */
  scale?: number;
  /** Element type of q, k, v, out and their gradients; lse and delta are always f32. Default f32. */
  dtype?: AttentionDType;
}

export interface AttentionForwardArgs extends AttentionShape {
  /** [B, H, Nq, d] */
  q: GPUBuffer;
  /** [B, H, Nk, d] */
  k: GPUBuffer;
  /** [B, H, Nk, d] */
  v: GPUBuffer;
  /** [B, H, Nq, d], written. */
  out: GPUBuffer;
  /** [B, H, Nq] f32, written: logsumexp of each row of scale·q kᵀ, kept for the backward. */
  lse: GPUBuffer;
  /**
   * 'tiled' (the default; register-tiled where a tiling fits, `tiledAttentionTiles`) or 'rows': the row-wise
   * kernel every head dimension can use (for tests and benchmarks).
   */
  kernel?: AttentionKernelChoice;
}

export interface AttentionBackwardArgs extends AttentionShape {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  /** The forward's output and lse. */
  out: GPUBuffer;
  lse: GPUBuffer;
  /** Gradient of the loss with respect to out, [B, H, Nq, d]. */
  dOut: GPUBuffer;
  /** Scratch [B, H, Nq] f32: rowsum(dOut ⊙ out), written here. */
  delta: GPUBuffer;
  /** Gradients, same layouts as q, k, v: overwritten, or added into when `accumulate`. */
  dq: GPUBuffer;
  dk: GPUBuffer;
  dv: GPUBuffer;
  accumulate?: boolean;
  /** As the forward's: 'tiled' (default, where a tiling fits) or 'rows'. */
  kernel?: AttentionKernelChoice;
}

/**
 * Workgroup memory every kernel here stays within: the engine's required minimum
 * (REQUIRED_LIMITS.maxComputeWorkgroupStorageSize), so tile choices are the same on every adapter.
 */
const WORKGROUP_FLOATS = 16384 / 4;
/** Largest head dimension some tile configuration of every kernel fits (see `tilesFor`). */
export const ATTENTION_MAX_HEAD_DIM = 248;
const PARAMS_BYTES = 32;

/**
 * A kernel's tiling: `lines` rows (forward, dQ: query rows; dK/dV: keys) owned by a workgroup, `step`
 * rows of the other operand loaded per iteration, `tpl` threads per owned line (each keeps ⌈d/tpl⌉
 * accumulators in registers).
 */
export interface AttentionTiles {
  lines: number;
  step: number;
  tpl: number;
}

export type AttentionKernel = 'forward' | 'dq' | 'dkdv';

/** Workgroup floats used by each kernel for a tiling (must match the WGSL declarations below). */
function sharedFloats(kind: AttentionKernel, d: number, t: AttentionTiles): number {
  switch (kind) {
    case 'forward': // qs, kv, ss, ps
      return t.lines * d + t.step * d + 2 * t.lines * t.step;
    case 'dq': // qs, dos, ks, vs, dss
      return 2 * t.lines * d + 2 * t.step * d + t.lines * t.step;
    case 'dkdv': // ks, vs, qs, dos, ps, dss, ls, dd
      return 2 * t.lines * d + 2 * t.step * d + 2 * t.lines * t.step + 2 * t.step;
  }
}

/** (lines, step) pairs from largest to smallest; dK/dV streams queries, so its step is the smaller side. */
const TILE_CANDIDATES: Record<AttentionKernel, [number, number][]> = {
  forward: [
    [16, 16],
    [16, 8],
    [8, 8],
    [8, 4],
    [4, 4],
  ],
  dq: [
    [16, 16],
    [16, 8],
    [8, 8],
    [8, 4],
    [4, 4],
  ],
  dkdv: [
    [16, 8],
    [8, 8],
    [8, 4],
    [4, 4],
  ],
};

/** The largest tiling of `kind` whose workgroup memory fits for head dimension d. */
function tilesFor(kind: AttentionKernel, d: number): AttentionTiles {
  for (const [lines, step] of TILE_CANDIDATES[kind]) {
    const t = { lines, step, tpl: Math.max(8, 64 / lines) };
    if (sharedFloats(kind, d, t) <= WORKGROUP_FLOATS) return t;
  }
  throw new Error(`attention: head dimension ${d} exceeds the supported maximum ${ATTENTION_MAX_HEAD_DIM}`);
}

/** The tilings the kernels use for head dimension d (for benchmarks and diagnostics). */
export function attentionTiling(headDim: number): Record<AttentionKernel, AttentionTiles> {
  return {
    forward: tilesFor('forward', headDim),
    dq: tilesFor('dq', headDim),
    dkdv: tilesFor('dkdv', headDim),
  };
}

function preamble(dtype: AttentionDType): string {
  return /* wgsl */ `
${dtype === 'f16' ? 'enable f16;' : ''}
alias E = ${dtype};
struct Params { bh: u32, nq: u32, nk: u32, scale: f32, tiles: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${WGSL_FLAT_WORKGROUP}
${WGSL_EXP_FTZ}
`;
}

/**
 * WGSL: cooperative load of `rows` rows starting at row `first` (of `count`) into workgroup `dst`, zero-padded;
 * rows are D floats, or D4 vec4s (`vec4`, for the tiled kernels).
 */
function loadRows(
  dst: string,
  src: string,
  base: string,
  first: string,
  rows: string,
  count: string,
  vec4 = false,
): string {
  const [w, t] = vec4 ? ['D4', 'vec4<f32>'] : ['D', 'f32'];
  return /* wgsl */ `
    for (var i = lid; i < ${rows} * ${w}; i += WG) {
      let g = ${first} * ${w} + i;
      if (g < ${count} * ${w}) { ${dst}[i] = ${t}(${src}[${base} + g]); } else { ${dst}[i] = ${t}(0.0); }
    }`;
}

/** WGSL: store (or add into) the thread's ⌈d/TPL⌉ accumulators `acc`·mul at row offset `at` of `dst`. */
function storeRow(dst: string, acc: string, at: string, mul: string): string {
  return /* wgsl */ `
    for (var i = 0u; i < DPT; i++) {
      let e = t + i * TPL;
      if (e < D) {
        var val = ${acc}[i] * ${mul};
        if (p.accumulate != 0u) { val += f32(${dst}[${at} + e]); }
        ${dst}[${at} + e] = E(val);
      }
    }`;
}

function constants(d: number, t: AttentionTiles): string {
  return /* wgsl */ `
const D = ${d}u;
const LINES = ${t.lines}u;
const STEP = ${t.step}u;
const TPL = ${t.tpl}u;
const WG = ${t.lines * t.tpl}u;
const DPT = ${ceilDiv(d, t.tpl)}u;
`;
}

/**
 * WGSL: the kernels' entry point, up to the thread's place: workgroup `wg` serves (batch·head) `bh` and the LINES
 * lines from `first`; q and k rows start at `qBase` and `kBase`, in units of `width` (D floats or D4 vec4s).
 */
function entry(width: 'D' | 'D4', place: string): string {
  return /* wgsl */ `
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wg = flatWorkgroupIndex(wid, nwg);
  if (wg >= p.bh * p.tiles) { return; }
  let bh = wg / p.tiles;
  let first = (wg % p.tiles) * LINES;
  let qBase = bh * p.nq * ${width};
  let kBase = bh * p.nk * ${width};
  ${place}`;
}

const ENTRY = entry('D', 'let line = lid / TPL;\n  let t = lid % TPL;');

/**
 * Forward: a workgroup owns LINES query rows and streams the keys STEP at a time with an online
 * softmax (running max m, running sum l, output rescaled by exp(m_old − m_new)).
 */
function forwardSource(d: number, dtype: AttentionDType): string {
  const t = tilesFor('forward', d);
  return /* wgsl */ `${preamble(dtype)}${constants(d, t)}
@group(0) @binding(1) var<storage, read> q: array<E>;
@group(0) @binding(2) var<storage, read> k: array<E>;
@group(0) @binding(3) var<storage, read> v: array<E>;
@group(0) @binding(4) var<storage, read_write> out: array<E>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
var<workgroup> qs: array<f32, LINES * D>;
var<workgroup> kv: array<f32, STEP * D>;
var<workgroup> ss: array<f32, LINES * STEP>;
var<workgroup> ps: array<f32, LINES * STEP>;
${ENTRY}
  ${loadRows('qs', 'q', 'qBase', 'first', 'LINES', 'p.nq')}
  var o: array<f32, DPT>;
  var m = -3.0e38;
  var l = 0.0;
  for (var j0 = 0u; j0 < p.nk; j0 += STEP) {
    ${loadRows('kv', 'k', 'kBase', 'j0', 'STEP', 'p.nk')}
    workgroupBarrier();
    for (var c = t; c < STEP; c += TPL) {
      var s = 0.0;
      for (var e = 0u; e < D; e++) { s += qs[line * D + e] * kv[c * D + e]; }
      ss[line * STEP + c] = s * p.scale;
    }
    workgroupBarrier();
    // K is consumed: the same workgroup memory now takes V.
    ${loadRows('kv', 'v', 'kBase', 'j0', 'STEP', 'p.nk')}
    let valid = min(STEP, p.nk - j0);
    var mNew = m;
    for (var c = 0u; c < valid; c++) { mNew = max(mNew, ss[line * STEP + c]); }
    for (var c = t; c < STEP; c += TPL) {
      ps[line * STEP + c] = select(0.0, expFtz(ss[line * STEP + c] - mNew), c < valid);
    }
    workgroupBarrier();
    let alpha = expFtz(m - mNew);
    m = mNew;
    var rowSum = 0.0;
    for (var i = 0u; i < DPT; i++) { o[i] *= alpha; }
    for (var c = 0u; c < STEP; c++) {
      let pc = ps[line * STEP + c];
      rowSum += pc;
      for (var i = 0u; i < DPT; i++) {
        let e = t + i * TPL;
        if (e < D) { o[i] += pc * kv[c * D + e]; }
      }
    }
    l = l * alpha + rowSum;
    workgroupBarrier();
  }
  let row = first + line;
  if (row < p.nq) {
    // Writes here are plain stores: accumulate does not apply to a forward output.
    for (var i = 0u; i < DPT; i++) {
      let e = t + i * TPL;
      if (e < D) { out[qBase + row * D + e] = E(o[i] / l); }
    }
    if (t == 0u) { lse[bh * p.nq + row] = m + log(l); }
  }
}
`;
}

/** WGSL for both dK/dV kernels: lse and delta of the STEP query rows from i0 into `ls` and `dd` (0 past the end). */
const LOAD_LSE_DELTA = /* wgsl */ `
    for (var i = lid; i < STEP; i += WG) {
      let row = i0 + i;
      if (row < p.nq) {
        ls[i] = lse[bh * p.nq + row];
        dd[i] = delta[bh * p.nq + row];
      } else {
        ls[i] = 0.0;
        dd[i] = 0.0;
      }
    }`;

/**
 * Register-tiled kernels for head dimensions that are a multiple of 4: a GR×GC grid of threads. Thread (tr, tc)
 * owns lines tr + GR·i (RS = lines/GR of them) and, of each streamed tile, columns tc + GC·j (CS = step/GC of them)
 * of the scores and vec4 columns tc + GC·j of its lines' d-vectors, so every workgroup-memory read (a vec4 along d)
 * feeds several multiply-adds. CPU adapters (lavapipe) read workgroup memory lane by lane, and the row-wise kernels
 * above do about one multiply-add per scalar read; these do 4–16 per vec4 read. Where no tiling fits (d not a
 * multiple of 4; dQ above d = 124, dK/dV above 120) the row-wise kernels serve.
 */
export interface TiledAttentionTiles {
  lines: number;
  step: number;
  /** Thread grid: gridRows × gridCols threads; each owns lines/gridRows lines and step/gridCols columns. */
  gridRows: number;
  gridCols: number;
}

/** (lines, step) from largest to smallest; the first whose workgroup memory fits is used. */
const TILED_CANDIDATES: [number, number][] = [
  [32, 16],
  [32, 8],
  [16, 16],
  [16, 8],
  [8, 8],
];

/**
 * Thread grids: 'wide' (8×8 = 64 threads, for GPUs) or 'compact' (4×4 = 16 threads, each with 4× the work). CPU
 * adapters run a workgroup's threads as SIMD lanes and gain from fewer threads with more work each: on lavapipe the
 * compact grid took 0.62 of the wide one's time for the forward and 0.49 for the backward, on SwiftShader 0.67 and
 * 0.49 (BENCHMARKS.md, "Attention kernels: register-tiled vs row-wise"). The wide grid on a GPU is not measured.
 */
const GRIDS: Record<AttentionGrid, [number, number]> = { wide: [8, 8], compact: [4, 4] };

/** The grid the tiled kernels use on this context: compact on software adapters, unless `ctx.attentionGrid` says. */
export function attentionGrid(ctx: KernelContext): AttentionGrid {
  return ctx.attentionGrid ?? (ctx.gpu.adapter.isFallback ? 'compact' : 'wide');
}

/** Workgroup floats of each tiled kernel (must match the WGSL declarations below). */
function tiledSharedFloats(kind: AttentionKernel, d: number, lines: number, step: number): number {
  switch (kind) {
    case 'forward': // qs, kv, ss, ps
      return lines * d + step * d + 2 * lines * step;
    case 'dq': // qs, dos, ks, vs, dss
      return 2 * lines * d + 2 * step * d + lines * step;
    case 'dkdv': // ks, vs, qs, dos, ps, dss, ls, dd
      return 2 * lines * d + 2 * step * d + 2 * lines * step + 2 * step;
  }
}

/** A tiled kernel's tiling for head dimension d, or undefined where only the row-wise kernel applies. */
export function tiledAttentionTiles(
  kind: AttentionKernel,
  d: number,
  grid: AttentionGrid = 'wide',
): TiledAttentionTiles | undefined {
  if (d % 4 !== 0) return undefined;
  const [gridRows, gridCols] = GRIDS[grid];
  for (const [lines, step] of TILED_CANDIDATES) {
    if (tiledSharedFloats(kind, d, lines, step) <= WORKGROUP_FLOATS)
      return { lines, step, gridRows, gridCols };
  }
  return undefined;
}

function tiledConstants(d: number, t: TiledAttentionTiles): string {
  const d4 = d / 4;
  return /* wgsl */ `
const D4 = ${d4}u;
const LINES = ${t.lines}u;
const STEP = ${t.step}u;
const GR = ${t.gridRows}u;
const GC = ${t.gridCols}u;
const WG = ${t.gridRows * t.gridCols}u;
const RS = ${t.lines / t.gridRows}u;
const CS = ${t.step / t.gridCols}u;
const DPT = ${ceilDiv(d4, t.gridCols)}u;
`;
}

/** `loadRows` for the tiled kernels: rows of D4 vec4s. */
const loadRows4 = (
  dst: string,
  src: string,
  base: string,
  first: string,
  rows: string,
  count: string,
): string => loadRows(dst, src, base, first, rows, count, true);

/** WGSL: store (or add into) the thread's RS×DPT vec4 accumulators `acc`·mul at rows first + tr + GR·i of `dst`. */
function storeRows4(dst: string, acc: string, base: string, count: string, mul: string): string {
  return /* wgsl */ `
  for (var i = 0u; i < RS; i++) {
    let row = first + tr + GR * i;
    if (row < ${count}) {
      for (var j = 0u; j < DPT; j++) {
        let e = tc + GC * j;
        if (e < D4) {
          let at = ${base} + row * D4 + e;
          var val = ${acc}[i * DPT + j] * ${mul};
          if (p.accumulate != 0u) { val += vec4<f32>(${dst}[at]); }
          ${dst}[at] = vec4<E>(val);
        }
      }
    }
  }`;
}

const TILED_ENTRY = entry('D4', 'let tr = lid / GC;\n  let tc = lid % GC;');

/**
 * WGSL: zero a private array declared inside a loop. The WGSL spec zero-initializes such a declaration on every
 * iteration, but on lavapipe through Dawn the tiled kernels read the previous iteration's sums without this
 * (measured: every test with more than one streamed tile failed).
 */
const zero = (name: string, n: string): string => `for (var z = 0u; z < ${n}; z++) { ${name}[z] = 0.0; }`;

/**
 * WGSL: acc[i, ·] += Σ_c weights[line i, c] · tile[c, ·] over the STEP streamed rows, for the thread's RS lines and
 * DPT vec4 columns (the forward's P·V, dQ's dS·K).
 */
function accumulateTile(acc: string, weights: string, tile: string): string {
  return /* wgsl */ `
    for (var c = 0u; c < STEP; c++) {
      var tv: array<vec4<f32>, DPT>;
      for (var j = 0u; j < DPT; j++) {
        let e = tc + GC * j;
        if (e < D4) { tv[j] = ${tile}[c * D4 + e]; }
      }
      for (var i = 0u; i < RS; i++) {
        let w = ${weights}[(tr + GR * i) * STEP + c];
        for (var j = 0u; j < DPT; j++) { ${acc}[i * DPT + j] += w * tv[j]; }
      }
    }`;
}

/** Forward, tiled: the row-wise forward's online softmax, with the scores and the output register-tiled. */
function tiledForwardSource(d: number, dtype: AttentionDType, t: TiledAttentionTiles): string {
  return /* wgsl */ `${preamble(dtype)}${tiledConstants(d, t)}
@group(0) @binding(1) var<storage, read> q: array<vec4<E>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<E>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<E>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<E>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
var<workgroup> qs: array<vec4<f32>, LINES * D4>;
var<workgroup> kv: array<vec4<f32>, STEP * D4>;
var<workgroup> ss: array<f32, LINES * STEP>;
var<workgroup> ps: array<f32, LINES * STEP>;
${TILED_ENTRY}
  ${loadRows4('qs', 'q', 'qBase', 'first', 'LINES', 'p.nq')}
  var o: array<vec4<f32>, RS * DPT>;
  var m: array<f32, RS>;
  var l: array<f32, RS>;
  for (var i = 0u; i < RS; i++) { m[i] = -3.0e38; }
  for (var j0 = 0u; j0 < p.nk; j0 += STEP) {
    ${loadRows4('kv', 'k', 'kBase', 'j0', 'STEP', 'p.nk')}
    workgroupBarrier();
    var s: array<f32, RS * CS>;
    ${zero('s', 'RS * CS')}
    for (var e = 0u; e < D4; e++) {
      var kc: array<vec4<f32>, CS>;
      for (var j = 0u; j < CS; j++) { kc[j] = kv[(tc + GC * j) * D4 + e]; }
      for (var i = 0u; i < RS; i++) {
        let qv = qs[(tr + GR * i) * D4 + e];
        for (var j = 0u; j < CS; j++) { s[i * CS + j] += dot(qv, kc[j]); }
      }
    }
    let valid = min(STEP, p.nk - j0);
    for (var i = 0u; i < RS; i++) {
      for (var j = 0u; j < CS; j++) { ss[(tr + GR * i) * STEP + tc + GC * j] = s[i * CS + j] * p.scale; }
    }
    workgroupBarrier();
    // K is consumed: the same workgroup memory now takes V. Every thread of a row finds the same new max.
    ${loadRows4('kv', 'v', 'kBase', 'j0', 'STEP', 'p.nk')}
    for (var i = 0u; i < RS; i++) {
      let r = tr + GR * i;
      var mNew = m[i];
      for (var c = 0u; c < valid; c++) { mNew = max(mNew, ss[r * STEP + c]); }
      let alpha = expFtz(m[i] - mNew);
      m[i] = mNew;
      var part = 0.0;
      for (var j = 0u; j < CS; j++) {
        let c = tc + GC * j;
        let pr = select(0.0, expFtz(ss[r * STEP + c] - mNew), c < valid);
        ps[r * STEP + c] = pr;
        part += pr;
      }
      l[i] = l[i] * alpha + part;
      for (var j = 0u; j < DPT; j++) { o[i * DPT + j] *= alpha; }
    }
    workgroupBarrier();
    ${accumulateTile('o', 'ps', 'kv')}
    workgroupBarrier();
  }
  // Each thread summed its own keys' weights: a row's total is the sum over the GC threads of the row.
  for (var i = 0u; i < RS; i++) { ss[(tr + GR * i) * GC + tc] = l[i]; }
  workgroupBarrier();
  for (var i = 0u; i < RS; i++) {
    let r = tr + GR * i;
    var total = 0.0;
    for (var c = 0u; c < GC; c++) { total += ss[r * GC + c]; }
    let row = first + r;
    if (row < p.nq) {
      // Plain stores: accumulate does not apply to a forward output.
      for (var j = 0u; j < DPT; j++) {
        let e = tc + GC * j;
        if (e < D4) { out[qBase + row * D4 + e] = vec4<E>(o[i * DPT + j] / total); }
      }
      if (tc == 0u) { lse[bh * p.nq + row] = m[i] + log(total); }
    }
  }
}
`;
}

/** Inputs of both tiled backward kernels, at bindings 1–6. */
const TILED_BACKWARD_BINDINGS = /* wgsl */ `
@group(0) @binding(1) var<storage, read> q: array<vec4<E>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<E>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<E>>;
@group(0) @binding(4) var<storage, read> dOut: array<vec4<E>>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> delta: array<f32>;`;

/**
 * WGSL for both tiled backward kernels: the thread's RS×CS tile of q·kᵀ (`qk`) and of dO·vᵀ (`dov`), from the
 * owned lines' rows of `owned` = [q or k, dO or v] and the streamed columns' rows of `streamed` (the other pair).
 */
function tiledScores(owned: [string, string], streamed: [string, string]): string {
  return /* wgsl */ `
    var qk: array<f32, RS * CS>;
    var dov: array<f32, RS * CS>;
    ${zero('qk', 'RS * CS')}
    ${zero('dov', 'RS * CS')}
    for (var e = 0u; e < D4; e++) {
      var sa: array<vec4<f32>, CS>;
      var sb: array<vec4<f32>, CS>;
      for (var j = 0u; j < CS; j++) {
        sa[j] = ${streamed[0]}[(tc + GC * j) * D4 + e];
        sb[j] = ${streamed[1]}[(tc + GC * j) * D4 + e];
      }
      for (var i = 0u; i < RS; i++) {
        let oa = ${owned[0]}[(tr + GR * i) * D4 + e];
        let ob = ${owned[1]}[(tr + GR * i) * D4 + e];
        for (var j = 0u; j < CS; j++) {
          qk[i * CS + j] += dot(oa, sa[j]);
          dov[i * CS + j] += dot(ob, sb[j]);
        }
      }
    }`;
}

/** dQ, tiled: a workgroup owns LINES query rows and streams keys/values STEP at a time. */
function tiledDqSource(d: number, dtype: AttentionDType, t: TiledAttentionTiles): string {
  return /* wgsl */ `${preamble(dtype)}${tiledConstants(d, t)}
${TILED_BACKWARD_BINDINGS}
@group(0) @binding(7) var<storage, read_write> dq: array<vec4<E>>;
var<workgroup> qs: array<vec4<f32>, LINES * D4>;
var<workgroup> dos: array<vec4<f32>, LINES * D4>;
var<workgroup> ks: array<vec4<f32>, STEP * D4>;
var<workgroup> vs: array<vec4<f32>, STEP * D4>;
var<workgroup> dss: array<f32, LINES * STEP>;
${WGSL_PROB_AND_DS}
${TILED_ENTRY}
  ${loadRows4('qs', 'q', 'qBase', 'first', 'LINES', 'p.nq')}
  ${loadRows4('dos', 'dOut', 'qBase', 'first', 'LINES', 'p.nq')}
  var rowLse: array<f32, RS>;
  var rowDelta: array<f32, RS>;
  for (var i = 0u; i < RS; i++) {
    let row = first + tr + GR * i;
    if (row < p.nq) {
      rowLse[i] = lse[bh * p.nq + row];
      rowDelta[i] = delta[bh * p.nq + row];
    }
  }
  var acc: array<vec4<f32>, RS * DPT>;
  for (var j0 = 0u; j0 < p.nk; j0 += STEP) {
    ${loadRows4('ks', 'k', 'kBase', 'j0', 'STEP', 'p.nk')}
    ${loadRows4('vs', 'v', 'kBase', 'j0', 'STEP', 'p.nk')}
    workgroupBarrier();
    ${tiledScores(['qs', 'dos'], ['ks', 'vs'])}
    let valid = min(STEP, p.nk - j0);
    for (var i = 0u; i < RS; i++) {
      let inRange = first + tr + GR * i < p.nq;
      for (var j = 0u; j < CS; j++) {
        let c = tc + GC * j;
        let pds = probAndDs(qk[i * CS + j], dov[i * CS + j], rowLse[i], rowDelta[i], c < valid && inRange);
        dss[(tr + GR * i) * STEP + c] = pds.y;
      }
    }
    workgroupBarrier();
    ${accumulateTile('acc', 'dss', 'ks')}
    workgroupBarrier();
  }
  ${storeRows4('dq', 'acc', 'qBase', 'p.nq', 'p.scale')}
}
`;
}

/** dK and dV, tiled: a workgroup owns LINES keys and streams query rows STEP at a time. */
function tiledDkdvSource(d: number, dtype: AttentionDType, t: TiledAttentionTiles): string {
  return /* wgsl */ `${preamble(dtype)}${tiledConstants(d, t)}
${TILED_BACKWARD_BINDINGS}
@group(0) @binding(7) var<storage, read_write> dk: array<vec4<E>>;
@group(0) @binding(8) var<storage, read_write> dv: array<vec4<E>>;
var<workgroup> ks: array<vec4<f32>, LINES * D4>;
var<workgroup> vs: array<vec4<f32>, LINES * D4>;
var<workgroup> qs: array<vec4<f32>, STEP * D4>;
var<workgroup> dos: array<vec4<f32>, STEP * D4>;
var<workgroup> ps: array<f32, LINES * STEP>;
var<workgroup> dss: array<f32, LINES * STEP>;
var<workgroup> ls: array<f32, STEP>;
var<workgroup> dd: array<f32, STEP>;
${WGSL_PROB_AND_DS}
${TILED_ENTRY}
  ${loadRows4('ks', 'k', 'kBase', 'first', 'LINES', 'p.nk')}
  ${loadRows4('vs', 'v', 'kBase', 'first', 'LINES', 'p.nk')}
  var accK: array<vec4<f32>, RS * DPT>;
  var accV: array<vec4<f32>, RS * DPT>;
  for (var i0 = 0u; i0 < p.nq; i0 += STEP) {
    ${loadRows4('qs', 'q', 'qBase', 'i0', 'STEP', 'p.nq')}
    ${loadRows4('dos', 'dOut', 'qBase', 'i0', 'STEP', 'p.nq')}
    ${LOAD_LSE_DELTA}
    workgroupBarrier();
    ${tiledScores(['ks', 'vs'], ['qs', 'dos'])}
    let valid = min(STEP, p.nq - i0);
    for (var i = 0u; i < RS; i++) {
      let inRange = first + tr + GR * i < p.nk;
      for (var j = 0u; j < CS; j++) {
        let r = tc + GC * j;
        let pds = probAndDs(qk[i * CS + j], dov[i * CS + j], ls[r], dd[r], r < valid && inRange);
        ps[(tr + GR * i) * STEP + r] = pds.x;
        dss[(tr + GR * i) * STEP + r] = pds.y;
      }
    }
    workgroupBarrier();
    for (var r = 0u; r < STEP; r++) {
      var qv: array<vec4<f32>, DPT>;
      var dv4: array<vec4<f32>, DPT>;
      for (var j = 0u; j < DPT; j++) {
        let e = tc + GC * j;
        if (e < D4) {
          qv[j] = qs[r * D4 + e];
          dv4[j] = dos[r * D4 + e];
        }
      }
      for (var i = 0u; i < RS; i++) {
        let pr = ps[(tr + GR * i) * STEP + r];
        let dsr = dss[(tr + GR * i) * STEP + r];
        for (var j = 0u; j < DPT; j++) {
          accV[i * DPT + j] += pr * dv4[j];
          accK[i * DPT + j] += dsr * qv[j];
        }
      }
    }
    workgroupBarrier();
  }
  ${storeRows4('dk', 'accK', 'kBase', 'p.nk', 'p.scale')}
  ${storeRows4('dv', 'accV', 'kBase', 'p.nk', '1.0')}
}
`;
}

/** delta_i = rowsum(dOut_i ⊙ out_i), one thread per row. */
function deltaSource(d: number, dtype: AttentionDType): string {
  return /* wgsl */ `${preamble(dtype)}
const D = ${d}u;
@group(0) @binding(1) var<storage, read> dOut: array<E>;
@group(0) @binding(2) var<storage, read> out: array<E>;
@group(0) @binding(3) var<storage, read_write> delta: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flatWorkgroupIndex(wid, nwg) * 64u + lid;
  if (row >= p.bh * p.nq) { return; }
  var s = 0.0;
  for (var e = 0u; e < D; e++) { s += f32(dOut[row * D + e]) * f32(out[row * D + e]); }
  delta[row] = s;
}
`;
}

/**
 * The per-tile part both backward kernels share: for query row `r` and key `c` (within the loaded
 * tiles), P = exp(scale·q·k − lse) and dS = P ⊙ (dO·v − delta).
 */
const WGSL_PROB_AND_DS = /* wgsl */ `
fn probAndDs(qk: f32, dov: f32, rowLse: f32, rowDelta: f32, valid: bool) -> vec2<f32> {
  let pr = select(0.0, expFtz(qk * p.scale - rowLse), valid);
  return vec2<f32>(pr, pr * (dov - rowDelta));
}`;

/** Inputs shared by both backward kernels, at bindings 1–6. */
const BACKWARD_BINDINGS = /* wgsl */ `
@group(0) @binding(1) var<storage, read> q: array<E>;
@group(0) @binding(2) var<storage, read> k: array<E>;
@group(0) @binding(3) var<storage, read> v: array<E>;
@group(0) @binding(4) var<storage, read> dOut: array<E>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> delta: array<f32>;`;

/** dQ: a workgroup owns LINES query rows and streams keys/values STEP at a time. */
function dqSource(d: number, dtype: AttentionDType): string {
  const t = tilesFor('dq', d);
  return /* wgsl */ `${preamble(dtype)}${constants(d, t)}
${BACKWARD_BINDINGS}
@group(0) @binding(7) var<storage, read_write> dq: array<E>;
var<workgroup> qs: array<f32, LINES * D>;
var<workgroup> dos: array<f32, LINES * D>;
var<workgroup> ks: array<f32, STEP * D>;
var<workgroup> vs: array<f32, STEP * D>;
var<workgroup> dss: array<f32, LINES * STEP>;
${WGSL_PROB_AND_DS}
${ENTRY}
  ${loadRows('qs', 'q', 'qBase', 'first', 'LINES', 'p.nq')}
  ${loadRows('dos', 'dOut', 'qBase', 'first', 'LINES', 'p.nq')}
  let row = first + line;
  var rowLse = 0.0;
  var rowDelta = 0.0;
  if (row < p.nq) {
    rowLse = lse[bh * p.nq + row];
    rowDelta = delta[bh * p.nq + row];
  }
  var acc: array<f32, DPT>;
  for (var j0 = 0u; j0 < p.nk; j0 += STEP) {
    ${loadRows('ks', 'k', 'kBase', 'j0', 'STEP', 'p.nk')}
    ${loadRows('vs', 'v', 'kBase', 'j0', 'STEP', 'p.nk')}
    workgroupBarrier();
    let valid = min(STEP, p.nk - j0);
    for (var c = t; c < STEP; c += TPL) {
      var qk = 0.0;
      var dov = 0.0;
      for (var e = 0u; e < D; e++) {
        qk += qs[line * D + e] * ks[c * D + e];
        dov += dos[line * D + e] * vs[c * D + e];
      }
      dss[line * STEP + c] = probAndDs(qk, dov, rowLse, rowDelta, c < valid && row < p.nq).y;
    }
    workgroupBarrier();
    for (var c = 0u; c < STEP; c++) {
      let dsc = dss[line * STEP + c];
      for (var i = 0u; i < DPT; i++) {
        let e = t + i * TPL;
        if (e < D) { acc[i] += dsc * ks[c * D + e]; }
      }
    }
    workgroupBarrier();
  }
  if (row < p.nq) {
    ${storeRow('dq', 'acc', 'qBase + row * D', 'p.scale')}
  }
}
`;
}

/** dK and dV: a workgroup owns LINES keys and streams query rows STEP at a time (no atomics needed). */
function dkdvSource(d: number, dtype: AttentionDType): string {
  const t = tilesFor('dkdv', d);
  return /* wgsl */ `${preamble(dtype)}${constants(d, t)}
${BACKWARD_BINDINGS}
@group(0) @binding(7) var<storage, read_write> dk: array<E>;
@group(0) @binding(8) var<storage, read_write> dv: array<E>;
var<workgroup> ks: array<f32, LINES * D>;
var<workgroup> vs: array<f32, LINES * D>;
var<workgroup> qs: array<f32, STEP * D>;
var<workgroup> dos: array<f32, STEP * D>;
var<workgroup> ps: array<f32, STEP * LINES>;
var<workgroup> dss: array<f32, STEP * LINES>;
var<workgroup> ls: array<f32, STEP>;
var<workgroup> dd: array<f32, STEP>;
${WGSL_PROB_AND_DS}
${ENTRY}
  ${loadRows('ks', 'k', 'kBase', 'first', 'LINES', 'p.nk')}
  ${loadRows('vs', 'v', 'kBase', 'first', 'LINES', 'p.nk')}
  let col = first + line;
  var accK: array<f32, DPT>;
  var accV: array<f32, DPT>;
  for (var i0 = 0u; i0 < p.nq; i0 += STEP) {
    ${loadRows('qs', 'q', 'qBase', 'i0', 'STEP', 'p.nq')}
    ${loadRows('dos', 'dOut', 'qBase', 'i0', 'STEP', 'p.nq')}
    ${LOAD_LSE_DELTA}
    workgroupBarrier();
    let valid = min(STEP, p.nq - i0);
    for (var r = t; r < STEP; r += TPL) {
      var qk = 0.0;
      var dov = 0.0;
      for (var e = 0u; e < D; e++) {
        qk += qs[r * D + e] * ks[line * D + e];
        dov += dos[r * D + e] * vs[line * D + e];
      }
      let pds = probAndDs(qk, dov, ls[r], dd[r], r < valid && col < p.nk);
      ps[r * LINES + line] = pds.x;
      dss[r * LINES + line] = pds.y;
    }
    workgroupBarrier();
    for (var r = 0u; r < STEP; r++) {
      let pr = ps[r * LINES + line];
      let dsr = dss[r * LINES + line];
      for (var i = 0u; i < DPT; i++) {
        let e = t + i * TPL;
        if (e < D) {
          accV[i] += pr * dos[r * D + e];
          accK[i] += dsr * qs[r * D + e];
        }
      }
    }
    workgroupBarrier();
  }
  if (col < p.nk) {
    ${storeRow('dk', 'accK', 'kBase + col * D', 'p.scale')}
    ${storeRow('dv', 'accV', 'kBase + col * D', '1.0')}
  }
}
`;
}

function elementBytes(dtype: AttentionDType): number {
  return dtype === 'f16' ? 2 : 4;
}

function checkDType(ctx: KernelContext, dtype: AttentionDType, op: string): void {
  if (dtype === 'f16' && !ctx.gpu.features.shaderF16) {
    throw new Error(`${op}: dtype f16 needs the shader-f16 feature, which this adapter lacks; use f32`);
  }
}

function checkBuffers(op: string, entries: [string, GPUBuffer, number][]): void {
  for (const [name, buf, bytes] of entries) {
    if (buf.size < bytes) throw new Error(`${op}: ${name} holds ${buf.size} bytes, needs ${bytes}`);
  }
}

function checkShape(op: string, s: AttentionShape): void {
  const dims = [s.batch, s.heads, s.queryLen, s.keyLen, s.headDim];
  if (!dims.every((x) => Number.isInteger(x) && x >= 1))
    throw new Error(`${op}: bad shape ${JSON.stringify(s)}`);
  if (s.headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new Error(
      `${op}: head dimension ${s.headDim} exceeds the supported maximum ${ATTENTION_MAX_HEAD_DIM}`,
    );
  }
}

function params(
  ctx: KernelContext,
  label: string,
  s: AttentionShape,
  tiles: number,
  accumulate: boolean,
): GPUBuffer {
  const scale = s.scale ?? 1 / Math.sqrt(s.headDim);
  return uniformBuffer(
    ctx,
    label,
    [s.batch * s.heads, s.queryLen, s.keyLen, scale, tiles, accumulate ? 1 : 0],
    new Set([3]),
  );
}

const ROW_SOURCES: Record<AttentionKernel, (d: number, dtype: AttentionDType) => string> = {
  forward: forwardSource,
  dq: dqSource,
  dkdv: dkdvSource,
};
const TILED_SOURCES: Record<
  AttentionKernel,
  (d: number, dtype: AttentionDType, t: TiledAttentionTiles) => string
> = { forward: tiledForwardSource, dq: tiledDqSource, dkdv: tiledDkdvSource };

/**
 * One attention kernel's pipeline and the lines each of its workgroups owns: the tiled kernel where a tiling fits
 * and neither the call nor the context asks for 'rows', else the row-wise one.
 */
async function kernelPipeline(
  ctx: KernelContext,
  label: string,
  kind: AttentionKernel,
  d: number,
  dtype: AttentionDType,
  choice: AttentionKernelChoice | undefined,
): Promise<{ pipeline: GPUComputePipeline; lines: number }> {
  const grid = attentionGrid(ctx);
  const tiled = (choice ?? ctx.attentionKernel) === 'rows' ? undefined : tiledAttentionTiles(kind, d, grid);
  if (tiled) {
    const code = TILED_SOURCES[kind](d, dtype, tiled);
    return {
      pipeline: await getPipeline(ctx, `${label}.tiled.${grid}.d${d}.${dtype}`, code),
      lines: tiled.lines,
    };
  }
  const code = ROW_SOURCES[kind](d, dtype);
  return {
    pipeline: await getPipeline(ctx, `${label}.d${d}.${dtype}`, code),
    lines: tilesFor(kind, d).lines,
  };
}

/** out = softmax(scale · q kᵀ) v per (batch, head), and the per-row logsumexp for the backward. */
export async function attentionForward(ctx: KernelContext, args: AttentionForwardArgs): Promise<void> {
  const label = 'attention.forward';
  const dtype = args.dtype ?? 'f32';
  checkShape(label, args);
  checkDType(ctx, dtype, label);
  const { batch, heads, queryLen: nq, keyLen: nk, headDim: d } = args;
  const eb = elementBytes(dtype);
  checkBuffers(label, [
    ['q', args.q, batch * heads * nq * d * eb],
    ['k', args.k, batch * heads * nk * d * eb],
    ['v', args.v, batch * heads * nk * d * eb],
    ['out', args.out, batch * heads * nq * d * eb],
    ['lse', args.lse, batch * heads * nq * 4],
  ]);
  const { pipeline, lines } = await kernelPipeline(ctx, label, 'forward', d, dtype, args.kernel);
  const tiles = ceilDiv(nq, lines);
  const u = params(ctx, label, args, tiles, false);
  launch(
    ctx,
    {
      label,
      pipeline,
      buffers: [u, args.q, args.k, args.v, args.out, args.lse],
      workgroups: dispatchFor(ctx, batch * heads * tiles),
    },
    [u],
  );
}

/**
 * FlashAttention-2 backward: delta = rowsum(dOut ⊙ out), then dK/dV (workgroups over key tiles,
 * streaming queries) and dQ (workgroups over query tiles, streaming keys). Probabilities are recomputed
 * tile by tile from q, k and lse; nothing of size Nq×Nk is stored.
 */
export async function attentionBackward(ctx: KernelContext, args: AttentionBackwardArgs): Promise<void> {
  const label = 'attention.backward';
  const dtype = args.dtype ?? 'f32';
  checkShape(label, args);
  checkDType(ctx, dtype, label);
  const { batch, heads, queryLen: nq, keyLen: nk, headDim: d } = args;
  const bh = batch * heads;
  const eb = elementBytes(dtype);
  checkBuffers(label, [
    ['q', args.q, bh * nq * d * eb],
    ['k', args.k, bh * nk * d * eb],
    ['v', args.v, bh * nk * d * eb],
    ['out', args.out, bh * nq * d * eb],
    ['dOut', args.dOut, bh * nq * d * eb],
    ['lse', args.lse, bh * nq * 4],
    ['delta', args.delta, bh * nq * 4],
    ['dq', args.dq, bh * nq * d * eb],
    ['dk', args.dk, bh * nk * d * eb],
    ['dv', args.dv, bh * nk * d * eb],
  ]);
  const accumulate = args.accumulate ?? false;
  const [deltaPipe, dkdv, dq] = await Promise.all([
    getPipeline(ctx, `${label}.delta.d${d}.${dtype}`, deltaSource(d, dtype)),
    kernelPipeline(ctx, `${label}.dkdv`, 'dkdv', d, dtype, args.kernel),
    kernelPipeline(ctx, `${label}.dq`, 'dq', d, dtype, args.kernel),
  ]);

  const uDelta = params(ctx, `${label}.delta`, args, 1, false);
  launch(
    ctx,
    {
      label: `${label}.delta`,
      pipeline: deltaPipe,
      buffers: [uDelta, args.dOut, args.out, args.delta],
      workgroups: dispatchFor(ctx, ceilDiv(bh * nq, 64)),
    },
    [uDelta],
  );

  const kvTiles = ceilDiv(nk, dkdv.lines);
  const uKv = params(ctx, `${label}.dkdv`, args, kvTiles, accumulate);
  launch(
    ctx,
    {
      label: `${label}.dkdv`,
      pipeline: dkdv.pipeline,
      buffers: [uKv, args.q, args.k, args.v, args.dOut, args.lse, args.delta, args.dk, args.dv],
      workgroups: dispatchFor(ctx, bh * kvTiles),
    },
    [uKv],
  );

  const qTiles = ceilDiv(nq, dq.lines);
  const uQ = params(ctx, `${label}.dq`, args, qTiles, accumulate);
  launch(
    ctx,
    {
      label: `${label}.dq`,
      pipeline: dq.pipeline,
      buffers: [uQ, args.q, args.k, args.v, args.dOut, args.lse, args.delta, args.dq],
      workgroups: dispatchFor(ctx, bh * qTiles),
    },
    [uQ],
  );
}

/**
 * Bytes the attention launchers need beyond q, k, v, out and the gradients dOut, dq, dk, dv:
 * the forward's lse [B, H, Nq] f32 (kept for the backward), the backward's delta [B, H, Nq] f32, and
 * the four small uniform blocks. Linear in Nq, independent of Nk and d: no Nq×Nk scratch exists.
 */
export function attentionScratchBytes(
  batch: number,
  heads: number,
  queryLen: number,
  _keyLen: number,
  _headDim: number,
): number {
  return 2 * batch * heads * queryLen * 4 + 4 * PARAMS_BYTES;
}

export interface HeadsArgs {
  input: GPUBuffer;
  output: GPUBuffer;
  batch: number;
  tokens: number;
  heads: number;
  headDim: number;
  dtype?: AttentionDType;
  /** Add into output instead of overwriting (for use as the other's backward). */
  accumulate?: boolean;
}

/** One permutation kernel: split reads [B, N, H·d] and writes [B, H, N, d]; merge the reverse. */
function headsSource(kind: 'split' | 'merge', dtype: AttentionDType): string {
  // Coordinates (b, h, n, e) of output element o, then the input index in the other layout.
  const decode =
    kind === 'split'
      ? `let n = (o / d) % nt; let h = (o / (d * nt)) % nh; let b = o / (d * nt * nh);
  let src = ((b * nt + n) * nh + h) * d + e;`
      : `let h = (o / d) % nh; let n = (o / (d * nh)) % nt; let b = o / (d * nh * nt);
  let src = ((b * nh + h) * nt + n) * d + e;`;
  return /* wgsl */ `
${dtype === 'f16' ? 'enable f16;' : ''}
alias E = ${dtype};
struct Params { total: u32, tokens: u32, heads: u32, headDim: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<E>;
@group(0) @binding(2) var<storage, read_write> y: array<E>;
${WGSL_FLAT_WORKGROUP}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let o = flatWorkgroupIndex(wid, nwg) * 256u + lid;
  if (o >= p.total) { return; }
  let d = p.headDim;
  let nt = p.tokens;
  let nh = p.heads;
  let e = o % d;
  ${decode}
  var val = x[src];
  if (p.accumulate != 0u) { val += y[o]; }
  y[o] = val;
}
`;
}

async function permuteHeads(ctx: KernelContext, kind: 'split' | 'merge', args: HeadsArgs): Promise<void> {
  const label = `attention.${kind}Heads`;
  const dtype = args.dtype ?? 'f32';
  checkDType(ctx, dtype, label);
  const total = args.batch * args.tokens * args.heads * args.headDim;
  const bytes = total * elementBytes(dtype);
  checkBuffers(label, [
    ['input', args.input, bytes],
    ['output', args.output, bytes],
  ]);
  const pipeline = await getPipeline(ctx, `${label}.${dtype}`, headsSource(kind, dtype));
  const u = uniformBuffer(ctx, label, [
    total,
    args.tokens,
    args.heads,
    args.headDim,
    args.accumulate ? 1 : 0,
  ]);
  launch(
    ctx,
    {
      label,
      pipeline,
      buffers: [u, args.input, args.output],
      workgroups: dispatchFor(ctx, ceilDiv(total, 256)),
    },
    [u],
  );
}

/** [B, N, H·d] → [B, H, N, d]. Its backward is `mergeHeads` of the gradient (with `accumulate` as needed). */
export function splitHeads(ctx: KernelContext, args: HeadsArgs): Promise<void> {
  return permuteHeads(ctx, 'split', args);
}

/** [B, H, N, d] → [B, N, H·d]. Its backward is `splitHeads` of the gradient. */
export function mergeHeads(ctx: KernelContext, args: HeadsArgs): Promise<void> {
  return permuteHeads(ctx, 'merge', args);
}

/** Backward of splitHeads: input is the gradient [B, H, N, d], output the gradient [B, N, H·d]. */
export const splitHeadsBackward = mergeHeads;
/** Backward of mergeHeads: input is the gradient [B, N, H·d], output the gradient [B, H, N, d]. */
export const mergeHeadsBackward = splitHeads;
