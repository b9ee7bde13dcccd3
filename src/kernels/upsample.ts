// Nearest-neighbour 2× upsampling of NCHW tensors (diffusers Upsample2D: F.interpolate(scale_factor=2,
// mode="nearest")) and its backward, which sums each output 2×2 block into its source pixel.
import { getPipeline, launch, uniformBuffer, type KernelContext } from './common';
import { flatDispatch, wgslFlatMain } from './elementwise';

const FORWARD = /* wgsl */ `
struct Params { n: u32, h: u32, w: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${wgslFlatMain(`let w2 = 2u * params.w;
  let ox = i % w2;
  let oy = (i / w2) % (2u * params.h);
  let plane = i / (w2 * 2u * params.h);
  var v = x[(plane * params.h + oy / 2u) * params.w + ox / 2u];
  if (params.accumulate != 0u) {
    v += y[i];
  }
  y[i] = v;`)}`;

const BACKWARD = /* wgsl */ `
struct Params { n: u32, h: u32, w: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${wgslFlatMain(`let w2 = 2u * params.w;
  let ix = i % params.w;
  let iy = (i / params.w) % params.h;
  let plane = i / (params.w * params.h);
  let top = (plane * 2u * params.h + 2u * iy) * w2 + 2u * ix;
  var v = dy[top] + dy[top + 1u] + dy[top + w2] + dy[top + w2 + 1u];
  if (params.accumulate != 0u) {
    v += dx[i];
  }
  dx[i] = v;`)}`;

/** One thread per element of `out` (n of them) for an upsample of planes × [h, w] inputs. */
async function run(
  ctx: KernelContext,
  label: string,
  code: string,
  src: GPUBuffer,
  out: GPUBuffer,
  n: number,
  args: { h: number; w: number; accumulate?: boolean },
): Promise<void> {
  if (n === 0) return;
  const pipeline = await getPipeline(ctx, label, code);
  const params = uniformBuffer(ctx, label, [n, args.h, args.w, args.accumulate ? 1 : 0]);
  launch(ctx, { label, pipeline, buffers: [src, out, params], workgroups: flatDispatch(ctx, n) }, [params]);
}

/** y [planes, 2h, 2w] = x [planes, h, w] repeated 2×2 (planes = N·C). */
export async function upsampleNearest2x(
  ctx: KernelContext,
  args: { x: GPUBuffer; y: GPUBuffer; planes: number; h: number; w: number; accumulate?: boolean },
): Promise<void> {
  await run(ctx, 'upsampleNearest2x', FORWARD, args.x, args.y, args.planes * 4 * args.h * args.w, args);
}

/** dx [planes, h, w] = sums of the 2×2 blocks of dy [planes, 2h, 2w]. */
export async function upsampleNearest2xBackward(
  ctx: KernelContext,
  args: { dy: GPUBuffer; dx: GPUBuffer; planes: number; h: number; w: number; accumulate?: boolean },
): Promise<void> {
  await run(
    ctx,
    'upsampleNearest2x.backward',
    BACKWARD,
    args.dy,
    args.dx,
    args.planes * args.h * args.w,
    args,
  );
}
