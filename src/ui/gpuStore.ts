// GPU status slice: what the worker's adapter is and whether the compute self-test passed.
import { create } from 'zustand';
import type { GpuInfo, SelfTestResult } from '../../workers/api';
import type { SerializedGpuError } from '../gpu/errors';
import { trainer } from './trainerClient';

export type GpuPhase = 'starting' | 'ready' | 'unavailable' | 'error';

interface GpuState {
  phase: GpuPhase;
  info?: GpuInfo;
  error?: SerializedGpuError | { name: string; message: string; advice?: string };
  selfTest?: SelfTestResult;
  start(): Promise<void>;
}

export const useGpuStore = create<GpuState>((set) => ({
  phase: 'starting',
  async start() {
    set({ phase: 'starting', error: undefined });
    try {
      const init = await trainer().init();
      if (!init.ok) {
        set({ phase: 'unavailable', error: init.error });
        return;
      }
      set({ phase: 'ready', info: init.gpu });
      set({ selfTest: await trainer().selfTest() });
    } catch (e) {
      set({ phase: 'error', error: { name: 'WorkerError', message: String((e as Error)?.message ?? e) } });
    }
  },
}));
