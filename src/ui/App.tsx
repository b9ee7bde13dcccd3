// The studio shell: header, GPU status, and the workspace.
import { useEffect } from 'react';
import { GpuPanel } from './GpuPanel';
import { useGpuStore } from './gpuStore';

export function App() {
  const start = useGpuStore((s) => s.start);
  useEffect(() => {
    void start();
  }, [start]);
  return (
    <div className="app">
      <header>
        <h1>
          LoRA<sup>2</sup> Studio
        </h1>
        <p className="tagline">
          Adaptive-rank LoRA fine-tuning, in your browser, on your GPU. Nothing is uploaded.
        </p>
      </header>
      <main>
        <GpuPanel />
      </main>
    </div>
  );
}
