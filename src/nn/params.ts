// Parameters by diffusers name, and the adapter hook: a Linear (or 1×1 conv) at a module path can carry an
// adapter that adds to its output. nn knows nothing of what an adapter is (LoRA², fixed-rank LoRA, …).
import type { Tensor } from '../tensor/tensor';

/** Adds a learned update to a linear map's output: y = base(x) + adapter(x). */
export interface LinearAdapter {
  /** x is [..., inFeatures]; returns [..., outFeatures] to be added to the frozen output. */
  forward(x: Tensor): Promise<Tensor>;
}

export class ParameterStore {
  /** Adapters by module path (e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`). */
  readonly adapters = new Map<string, LinearAdapter>();

  constructor(readonly tensors: Map<string, Tensor>) {}

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`parameter ${name} is not loaded`);
    return t;
  }

  maybe(name: string): Tensor | undefined {
    return this.tensors.get(name);
  }

  release(): void {
    for (const t of this.tensors.values()) t.release();
    this.tensors.clear();
  }
}
