// AdamW (PyTorch's torch.optim.AdamW, decoupled weight decay, bias-corrected) updating param, m and v in
// place. Step-dependent numbers travel in a per-call uniform, so a schedule changes lr every step without
// recompiling; bias corrections are computed here in float64.
import { getPipeline, launch, uniformBuffer, type KernelContext } from './common';
import { flatDispatch, wgslFlatMain } from './elementwise';

export interface AdamWHyper {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** PyTorch's AdamW defaults. */
export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } as const;

const CODE = /* wgsl */ `
struct Params {
  n: u32,
  decay: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  stepSize: f32,
  invSqrtBc2: f32,
  gradScale: f32,
}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${wgslFlatMain(`let g = grad[i] * params.gradScale;
  let mi = params.beta1 * m[i] + (1.0 - params.beta1) * g;
  let vi = params.beta2 * v[i] + (1.0 - params.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) * params.invSqrtBc2 + params.eps;
  param[i] = param[i] * params.decay - params.stepSize * mi / denom;`)}`;

/**
 * One AdamW step t (1-based) over n elements: param ← param·(1 − lr·wd) − lr/(1−β1ᵗ) · m̂ / (√v/√(1−β2ᵗ) + ε)
 * with m, v the updated moments of grad·gradScale (gradScale e.g. 1/accumulation steps or a clip factor).
 */
export async function adamw(
  ctx: KernelContext,
  args: AdamWHyper & {
    param: GPUBuffer;
    grad: GPUBuffer;
    m: GPUBuffer;
    v: GPUBuffer;
    n: number;
    step: number;
    gradScale?: number;
  },
): Promise<void> {
  if (!(args.step >= 1 && Number.isInteger(args.step)))
    throw new Error(`adamw: step ${args.step} must be 1, 2, …`);
  if (args.n === 0) return;
  const h = { ...ADAMW_DEFAULTS, ...args };
  const pipeline = await getPipeline(ctx, 'adamw', CODE);
  const values = [
    args.n,
    1 - h.lr * h.weightDecay,
    h.beta1,
    h.beta2,
    h.eps,
    h.lr / (1 - h.beta1 ** args.step),
    1 / Math.sqrt(1 - h.beta2 ** args.step),
    args.gradScale ?? 1,
  ];
  const params = uniformBuffer(ctx, 'adamw', values, new Set([1, 2, 3, 4, 5, 6, 7]));
  launch(
    ctx,
    {
      label: 'adamw',
      pipeline,
      buffers: [args.param, args.grad, args.m, args.v, params],
      workgroups: flatDispatch(ctx, args.n),
    },
    [params],
  );
}
