// Model actions: ask the worker what it can do, then load the session's model (the embedded default).
import { DEFAULT_MODEL_URL } from '../../train/sessionStore';
import { describeError, TrainerMissingError } from '../errorText';
import { trainer } from '../trainerClient';
import { trainerCapabilities } from '../trainerCaps';
import type { VaeBackend, VaeStatus } from '../../../workers/api';
import { WEIGHT_STORAGES, type WeightStorage } from '../../models/weightStorage';
import { showNotice, useStudio } from '../studioStore';
import { adoptModelPrompt } from './session';

export async function loadCapabilities(): Promise<void> {
  try {
    useStudio.setState({ caps: await trainerCapabilities() });
  } catch (e) {
    console.error('capabilities() failed', e);
    useStudio.setState({ caps: new Set() });
  }
}

let loading: Promise<void> | undefined;
let loadingUrl: string | undefined;

/**
 * Loads the open session's model onto the worker's GPU: once per model folder, again after a lost device or
 * when a session that trains another model is opened. Waits for the session when none is open yet.
 */
export function loadModel(force = false): Promise<void> {
  const session = useStudio.getState().session;
  if (!session) return Promise.resolve(); // called again once initStudio has opened one (App's effect)
  const url = session.modelUrl ?? DEFAULT_MODEL_URL;
  if (loading && !force && loadingUrl === url) return loading;
  loadingUrl = url;
  const previous = loading;
  loading = (async () => {
    // One load at a time on the worker; a load superseded while it waited does not run.
    await previous;
    if (loadingUrl !== url) return;
    await loadCapabilities();
    if (!useStudio.getState().caps?.has('loadModel')) {
      useStudio.setState({
        model: { phase: 'missing', error: describeError(new TrainerMissingError('loadModel')) },
      });
      return;
    }
    useStudio.setState({ model: { phase: 'loading' } });
    try {
      const info = await trainer().loadModel(url, {
        vae: requestedVaeBackend(location.search),
        weights: requestedWeightStorage(location.search),
      });
      useStudio.setState({ model: { phase: 'ready', info } });
      adoptModelPrompt();
    } catch (e) {
      console.error(e);
      useStudio.setState({ model: { phase: 'error', error: describeError(e, { loading: 'model' }) } });
    }
  })();
  return loading;
}

/**
 * Takes the VAE's status a render came back with: when the worker moved the VAE to WASM (its WebGPU EP failed
 * while running), the model chip says so and a notice tells why; renders go on, slower.
 */
export function noteVaeStatus(vae: VaeStatus | undefined): void {
  const model = useStudio.getState().model;
  const info = model.phase === 'ready' ? model.info : undefined;
  if (!vae || !info?.vae || info.vae.backend === vae.backend) return;
  useStudio.setState({ model: { ...model, info: { ...info, vae } } });
  if (vae.backend === 'wasm')
    showNotice({
      title: 'The VAE moved to WASM',
      message: vae.fallbackReason ?? "onnxruntime-web's WebGPU EP failed.",
      advice: 'Images still render, on the CPU: decoding and encoding photos are slower until a reload.',
      action: 'none',
    });
}

/**
 * `?weights=f32` (or `auto`) in the address: how the worker stores the UNet's frozen weights on the GPU. Unset or
 * unknown: f16, half the memory (the kernels compute in f32 either way).
 */
export function requestedWeightStorage(search: string): WeightStorage {
  const asked = new URLSearchParams(search).get('weights');
  return WEIGHT_STORAGES.find((w) => w === asked) ?? 'f16';
}

/**
 * `?vae=wasm` in the address runs a latent model's VAE on onnxruntime-web's WASM EP instead of its WebGPU EP
 * (the default): a way around a GPU where that EP misbehaves, and how the e2e compares the two.
 */
export function requestedVaeBackend(search: string): VaeBackend {
  return new URLSearchParams(search).get('vae') === 'wasm' ? 'wasm' : 'webgpu';
}
