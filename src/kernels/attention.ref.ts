// Float64 CPU reference for scaled-dot-product attention (head-major [B, H, N, d]) and the head
// split/merge permutations: the oracle the WGSL kernels in attention.ts are tested against.

export interface AttentionRefShape {
  batch: number;
  heads: number;
  queryLen: number;
  keyLen: number;
  headDim: number;
  /** Defaults to 1/sqrt(headDim). */
  scale?: number;
}

export interface AttentionRefForward {
  out: Float64Array;
  /** Per-row logsumexp of the scaled scores, [B, H, Nq]. */
  lse: Float64Array;
}

export interface AttentionRefGrads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

function scaleOf(s: AttentionRefShape): number {
  return s.scale ?? 1 / Math.sqrt(s.headDim);
}

/** Row `i` of head `bh`: probabilities over keys (length Nk) and their logsumexp. */
function probabilities(
  q: Float64Array,
  k: Float64Array,
  s: AttentionRefShape,
  bh: number,
  i: number,
): { p: Float64Array; lse: number } {
  const { queryLen: nq, keyLen: nk, headDim: d } = s;
  const scale = scaleOf(s);
  const qo = (bh * nq + i) * d;
  const scores = new Float64Array(nk);
  let max = -Infinity;
  for (let j = 0; j < nk; j++) {
    const ko = (bh * nk + j) * d;
    let dot = 0;
    for (let e = 0; e < d; e++) dot += q[qo + e] * k[ko + e];
    scores[j] = dot * scale;
    max = Math.max(max, scores[j]);
  }
  let sum = 0;
  for (let j = 0; j < nk; j++) {
    scores[j] = Math.exp(scores[j] - max);
    sum += scores[j];
  }
  for (let j = 0; j < nk; j++) scores[j] /= sum;
  return { p: scores, lse: max + Math.log(sum) };
}

/** out = softmax(scale · q kᵀ) v per (batch, head); lse = logsumexp of each row of scale · q kᵀ. */
export function attentionRef(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  s: AttentionRefShape,
): AttentionRefForward {
  const { batch, heads, queryLen: nq, keyLen: nk, headDim: d } = s;
  const out = new Float64Array(batch * heads * nq * d);
  const lse = new Float64Array(batch * heads * nq);
  for (let bh = 0; bh < batch * heads; bh++) {
    for (let i = 0; i < nq; i++) {
      const row = probabilities(q, k, s, bh, i);
      lse[bh * nq + i] = row.lse;
      const oo = (bh * nq + i) * d;
      for (let j = 0; j < nk; j++) {
        const vo = (bh * nk + j) * d;
        for (let e = 0; e < d; e++) out[oo + e] += row.p[j] * v[vo + e];
      }
    }
  }
  return { out, lse };
}

/**
 * Gradients of attention given dOut (same layout as out). Textbook form, with the N×N probabilities
 * of one row at a time: dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = scale · dS k, dk = scale · dSᵀ q, dv = Pᵀ dOut.
 */
export function attentionBackwardRef(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  dOut: Float64Array,
  s: AttentionRefShape,
): AttentionRefGrads {
  const { batch, heads, queryLen: nq, keyLen: nk, headDim: d } = s;
  const scale = scaleOf(s);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let bh = 0; bh < batch * heads; bh++) {
    for (let i = 0; i < nq; i++) {
      const { p } = probabilities(q, k, s, bh, i);
      const go = (bh * nq + i) * d;
      const dp = new Float64Array(nk);
      let rowDot = 0;
      for (let j = 0; j < nk; j++) {
        const vo = (bh * nk + j) * d;
        let dot = 0;
        for (let e = 0; e < d; e++) dot += dOut[go + e] * v[vo + e];
        dp[j] = dot;
        rowDot += dot * p[j];
      }
      for (let j = 0; j < nk; j++) {
        const ko = (bh * nk + j) * d;
        const ds = p[j] * (dp[j] - rowDot) * scale;
        for (let e = 0; e < d; e++) {
          dq[go + e] += ds * k[ko + e];
          dk[ko + e] += ds * q[go + e];
          dv[ko + e] += p[j] * dOut[go + e];
        }
      }
    }
  }
  return { dq, dk, dv };
}

export interface HeadsRefShape {
  batch: number;
  tokens: number;
  heads: number;
  headDim: number;
}

/** Copies between the token-major [B, N, H·d] and head-major [B, H, N, d] layouts, either way. */
function permuteHeads(x: ArrayLike<number>, s: HeadsRefShape, split: boolean): Float64Array {
  const { batch, tokens, heads, headDim: d } = s;
  const out = new Float64Array(batch * tokens * heads * d);
  for (let b = 0; b < batch; b++)
    for (let n = 0; n < tokens; n++)
      for (let h = 0; h < heads; h++)
        for (let e = 0; e < d; e++) {
          const tokenMajor = ((b * tokens + n) * heads + h) * d + e;
          const headMajor = ((b * heads + h) * tokens + n) * d + e;
          if (split) out[headMajor] = x[tokenMajor];
          else out[tokenMajor] = x[headMajor];
        }
  return out;
}

/** [B, N, H·d] → [B, H, N, d]. */
export function splitHeadsRef(x: ArrayLike<number>, s: HeadsRefShape): Float64Array {
  return permuteHeads(x, s, true);
}

/** [B, H, N, d] → [B, N, H·d]. */
export function mergeHeadsRef(x: ArrayLike<number>, s: HeadsRefShape): Float64Array {
  return permuteHeads(x, s, false);
}
