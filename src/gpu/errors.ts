// Typed GPU errors: every way the GPU can fail carries what a UI needs to explain it to a person.

export type GpuErrorKind =
  'unavailable' | 'limit' | 'device-lost' | 'out-of-memory' | 'wgsl-compile' | 'validation';

export abstract class GpuError extends Error {
  abstract readonly kind: GpuErrorKind;
  /** One or two sentences a person can act on. */
  abstract readonly advice: string;
}

export type UnavailableReason = 'no-navigator-gpu' | 'no-adapter' | 'request-device-failed';

export class WebGpuUnavailableError extends GpuError {
  readonly kind = 'unavailable';
  constructor(
    readonly reason: UnavailableReason,
    detail = '',
  ) {
    super(
      {
        'no-navigator-gpu': 'WebGPU is not available: this browser exposes no navigator.gpu.',
        'no-adapter': 'WebGPU is available but the browser returned no GPU adapter.',
        'request-device-failed': 'The GPU adapter refused to create a device.',
      }[reason] + (detail ? ` (${detail})` : ''),
    );
    this.name = 'WebGpuUnavailableError';
  }
  get advice(): string {
    switch (this.reason) {
      case 'no-navigator-gpu':
        return 'Use a recent Chrome or Edge (version 113 or later) on a desktop. In a worker or an insecure (non-https, non-localhost) page WebGPU is hidden too.';
      case 'no-adapter':
        return 'Your GPU may be blocklisted or its driver too old. Update the GPU driver, or check chrome://gpu; on Linux start Chrome with --enable-unsafe-webgpu.';
      default:
        return 'Close other GPU-heavy tabs and reload the page.';
    }
  }
}

export class GpuLimitError extends GpuError {
  readonly kind = 'limit';
  constructor(
    readonly limit: string,
    readonly required: number,
    readonly available: number,
  ) {
    super(`GPU limit ${limit} is ${available}, but ${required} is needed.`);
    this.name = 'GpuLimitError';
  }
  get advice(): string {
    return 'This GPU is too small for the chosen model or settings. Pick a smaller model, resolution or batch size.';
  }
}

export class DeviceLostError extends GpuError {
  readonly kind = 'device-lost';
  constructor(
    /** GPUDeviceLostReason: 'destroyed' when we destroyed it ourselves, 'unknown' otherwise. */
    readonly reason: string,
    readonly gpuMessage: string,
  ) {
    super(`The GPU device was lost (${reason})${gpuMessage ? `: ${gpuMessage}` : ''}.`);
    this.name = 'DeviceLostError';
  }
  get advice(): string {
    return this.reason === 'destroyed'
      ? 'The GPU device was closed. Start again to get a new one.'
      : 'The GPU driver reset or the GPU was taken away. Training can resume from the last checkpoint.';
  }
}

export class GpuOutOfMemoryError extends GpuError {
  readonly kind = 'out-of-memory';
  constructor(
    readonly label: string,
    readonly gpuMessage: string,
  ) {
    super(`The GPU ran out of memory in ${label}${gpuMessage ? `: ${gpuMessage}` : ''}.`);
    this.name = 'GpuOutOfMemoryError';
  }
  get advice(): string {
    return 'Lower the batch size, resolution or maximum rank, turn on gradient checkpointing (Train → Advanced), or close other GPU-heavy tabs.';
  }
}

export interface WgslMessage {
  type: 'error' | 'warning' | 'info';
  message: string;
  lineNum: number;
  linePos: number;
}

export class WgslCompileError extends GpuError {
  readonly kind = 'wgsl-compile';
  constructor(
    readonly label: string,
    readonly messages: WgslMessage[],
    readonly source: string,
  ) {
    const errs = messages.filter((m) => m.type === 'error');
    super(
      `WGSL compile error in ${label}:\n` +
        errs.map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}`).join('\n'),
    );
    this.name = 'WgslCompileError';
  }
  get advice(): string {
    return 'This is a bug in LoRA² Studio or your browser version. Please report it with this message.';
  }
}

export class GpuValidationError extends GpuError {
  readonly kind = 'validation';
  constructor(
    readonly label: string,
    readonly gpuMessage: string,
  ) {
    super(`GPU validation error in ${label}: ${gpuMessage}`);
    this.name = 'GpuValidationError';
  }
  get advice(): string {
    return 'This is a bug in LoRA² Studio. Please report it with this message.';
  }
}

/** Plain-object form for crossing the worker boundary (structured clone drops class identity). */
export interface SerializedGpuError {
  name: string;
  kind: GpuErrorKind;
  message: string;
  advice: string;
  reason?: string;
}

export function serializeGpuError(e: unknown): SerializedGpuError | undefined {
  if (!(e instanceof GpuError)) return undefined;
  return {
    name: e.name,
    kind: e.kind,
    message: e.message,
    advice: e.advice,
    reason: 'reason' in e ? String((e as { reason: unknown }).reason) : undefined,
  };
}
