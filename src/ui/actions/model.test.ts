// A render that comes back with the VAE moved to WASM (its WebGPU EP failed while running) updates the model chip's
// info and says why once; the same status again, or a pixel model, changes nothing. `?weights=` picks how the
// worker stores the frozen weights.
import { beforeEach, describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../../workers/api';
import { BUILT_IN_SAMPLING } from '../../models/sampling';
import { useStudio } from '../studioStore';
import { noteVaeStatus, requestedWeightStorage } from './model';

function latentInfo(vae?: ModelInfo['vae']): ModelInfo {
  return {
    url: '/models/micro-latent/',
    name: 'micro-latent',
    resolution: 16,
    codec: 'vae',
    ...(vae ? { vae } : {}),
    layers: [],
    identifierTokens: ['<v1>'],
    sampling: { ...BUILT_IN_SAMPLING },
  };
}

const moved = {
  backend: 'wasm' as const,
  fallbackReason: "onnxruntime-web's WebGPU EP failed while decoding (Conv failed)",
};

describe('noteVaeStatus', () => {
  beforeEach(() => useStudio.setState({ notice: undefined }));

  it('records a move to WASM on the model info and shows a notice with the reason', () => {
    useStudio.setState({ model: { phase: 'ready', info: latentInfo({ backend: 'webgpu' }) } });
    noteVaeStatus(moved);
    const model = useStudio.getState().model;
    expect(model.phase === 'ready' && model.info?.vae).toEqual(moved);
    expect(useStudio.getState().notice).toMatchObject({
      title: 'The VAE moved to WASM',
      message: moved.fallbackReason,
    });
    useStudio.setState({ notice: undefined });
    noteVaeStatus(moved);
    expect(useStudio.getState().notice).toBeUndefined();
  });

  it('leaves a model whose VAE did not move, a pixel model, and a render without a status alone', () => {
    const onGpu = latentInfo({ backend: 'webgpu' });
    useStudio.setState({ model: { phase: 'ready', info: onGpu } });
    noteVaeStatus({ backend: 'webgpu' });
    noteVaeStatus(undefined);
    expect(useStudio.getState().model).toEqual({ phase: 'ready', info: onGpu });
    const pixel = { ...latentInfo(), codec: 'pixel' as const };
    useStudio.setState({ model: { phase: 'ready', info: pixel } });
    noteVaeStatus(moved);
    expect(useStudio.getState().model).toEqual({ phase: 'ready', info: pixel });
    expect(useStudio.getState().notice).toBeUndefined();
  });
});

describe('requestedWeightStorage', () => {
  it('takes f32 or auto from the address and falls back to f16 for anything else', () => {
    expect(requestedWeightStorage('?weights=f32')).toBe('f32');
    expect(requestedWeightStorage('?vae=wasm&weights=auto')).toBe('auto');
    expect(requestedWeightStorage('?weights=f16')).toBe('f16');
    expect(requestedWeightStorage('')).toBe('f16');
    expect(requestedWeightStorage('?weights=F32')).toBe('f16');
    expect(requestedWeightStorage('?weights=bf16')).toBe('f16');
  });
});
