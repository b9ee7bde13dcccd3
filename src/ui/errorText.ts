// Turns any error the studio meets (typed GPU errors from the worker, a missing trainer method, a bad
// model or photo file, a full disk) into a title, a message and what to do, plus the action to offer.
import type { TrainerMethod, WorkerError } from '../../workers/api';

export type ErrorAction = 'resume' | 'reload' | 'sessions' | 'none';

export interface ReadableError {
  title: string;
  message: string;
  advice?: string;
  action: ErrorAction;
}

/** A worker build without the method the UI needs (the trainer lands in parts). */
export class TrainerMissingError extends Error {
  constructor(readonly method: TrainerMethod) {
    super(`This build's trainer worker has no ${method}() yet.`);
    this.name = 'TrainerMissingError';
  }
}

const FEATURE: Partial<Record<TrainerMethod, string>> = {
  loadModel: 'Loading models',
  startTraining: 'Training',
  pause: 'Pausing',
  stop: 'Stopping',
  generate: 'Generating images',
  exportLora: 'LoRA export',
  importLora: 'LoRA import',
  listCheckpoints: 'Checkpoints',
};

function fields(e: unknown): {
  name: string;
  message: string;
  kind?: string;
  advice?: string;
  method?: string;
} {
  if (e && typeof e === 'object') {
    const o = e as Record<string, unknown>;
    return {
      name: String(o.name ?? 'Error'),
      message: String(o.message ?? e),
      kind: typeof o.kind === 'string' ? o.kind : undefined,
      advice: typeof o.advice === 'string' ? o.advice : undefined,
      method: typeof o.method === 'string' ? o.method : undefined,
    };
  }
  return { name: 'Error', message: String(e) };
}

/** Comlink passes a thrown Error as name + message only; the typed GPU errors are known by name too. */
const KIND_BY_NAME: Record<string, string> = {
  DeviceLostError: 'device-lost',
  GpuOutOfMemoryError: 'out-of-memory',
  WebGpuUnavailableError: 'unavailable',
  GpuLimitError: 'limit',
  WgslCompileError: 'wgsl-compile',
  GpuValidationError: 'validation',
};

export function describeError(
  e: unknown,
  context?: { checkpointStep?: number; loading?: 'model' },
): ReadableError {
  const f = fields(e);
  f.kind ??= KIND_BY_NAME[f.name];
  if (f.name === 'TrainerMissingError') {
    const what = FEATURE[f.method as TrainerMethod] ?? `${f.method}()`;
    return {
      title: `${what} is not available yet`,
      message: f.message,
      advice:
        'The trainer is still being built into this app version; photos, settings and sessions already work.',
      action: 'none',
    };
  }
  switch (f.kind) {
    case 'device-lost': {
      const at = context?.checkpointStep ? ` (step ${context.checkpointStep})` : '';
      return {
        title: 'The GPU was lost',
        message: f.message,
        advice: `The GPU driver reset or the GPU was taken away (sleep, a driver update, another heavy tab). Resume continues from the last checkpoint${at}.`,
        action: 'resume',
      };
    }
    case 'out-of-memory':
      return { title: 'The GPU ran out of memory', message: f.message, advice: f.advice, action: 'none' };
    case 'unavailable':
    case 'limit':
      return { title: 'WebGPU cannot run this', message: f.message, advice: f.advice, action: 'none' };
    case 'wgsl-compile':
    case 'validation':
      return { title: 'Internal GPU error', message: f.message, advice: f.advice, action: 'reload' };
  }
  if (f.name === 'StorageFullError' || f.name === 'QuotaExceededError') {
    return { title: 'Browser storage is full', message: f.message, action: 'sessions' };
  }
  if (
    context?.loading === 'model' ||
    f.name === 'SafetensorsError' ||
    /safetensors|onnx|model file|config\.json/i.test(f.message)
  ) {
    return {
      title: 'The model could not be loaded',
      message: f.message,
      advice:
        'A file of the model is damaged, missing or of a kind this version cannot run. Download it again, or pick a diffusers-format model folder.',
      action: 'none',
    };
  }
  if (f.name === 'SchemaTooNewError' || f.name === 'SessionFileError' || f.name === 'PhotoError') {
    return { title: 'That file cannot be used', message: f.message, action: 'none' };
  }
  return { title: 'Something went wrong', message: f.message, advice: f.advice, action: 'none' };
}

/** The plain-data form that crosses structured clone (an Error's own fields are lost on the way). */
export function toWorkerError(e: unknown): WorkerError {
  const f = fields(e);
  return { name: f.name, message: f.message, kind: f.kind, advice: f.advice };
}
