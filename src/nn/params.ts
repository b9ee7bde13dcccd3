// Parameters by diffusers name, and the adapter hook: a Linear or a Conv2d at a module path can carry an
// adapter that adds to its output. nn knows nothing of what an adapter is (LoRA², fixed-rank LoRA, …).
import type { Tensor } from '../tensor/tensor';

/** How the frozen convolution an adapter sits on is applied (the adapter's down conv uses the same). */
export interface ConvCall {
  stride: number;
  padding: number;
}

/** Adds a learned update to a linear map's (or a convolution's) output: y = base(x) + adapter(x). */
export interface LinearAdapter {
  /**
   * Linear: x is [..., inFeatures]; returns [..., outFeatures]. Conv2d (`conv` given): x is [B, Cin, H, W];
   * returns [B, Cout, H', W'] like the frozen convolution. The result is added to the frozen output.
   */
  forward(x: Tensor, conv?: ConvCall): Promise<Tensor>;
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
