// Float64 CPU reference for one AdamW step, written as torch.optim.AdamW's single-tensor loop.
import { ADAMW_DEFAULTS, type AdamWHyper } from './adamw';

/** Updates param, m and v in place for step t (1-based). */
export function adamwRef(
  state: { param: Float64Array; m: Float64Array; v: Float64Array },
  grad: Float64Array,
  hyper: AdamWHyper,
  step: number,
  gradScale = 1,
): void {
  const h = { ...ADAMW_DEFAULTS, ...hyper };
  const { param, m, v } = state;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i] * gradScale;
    param[i] *= 1 - h.lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g * g;
    const mHat = m[i] / (1 - h.beta1 ** step);
    const vHat = v[i] / (1 - h.beta2 ** step);
    param[i] -= (h.lr * mHat) / (Math.sqrt(vHat) + h.eps);
  }
}
