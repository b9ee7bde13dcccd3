// The studio shell: header with tabs and compact status (model, offline, GPU), page-wide messages, and the
// Train / Generate / Sessions views, each behind an error boundary.
import { useEffect } from 'react';
import type { ModelInfo } from '../../workers/api';
import { loadCapabilities, loadModel } from './actions/model';
import { ErrorBoundary } from './ErrorBoundary';
import { ErrorBox } from './ErrorBox';
import { GenerateView } from './GenerateView';
import { GpuPanel, GpuUnavailable } from './GpuPanel';
import { useGpuStore } from './gpuStore';
import { SessionsView } from './SessionsView';
import { dismissNotice, setTab, useStudio, type Tab } from './studioStore';
import { TrainView } from './TrainView';

const TABS: { id: Tab; label: string }[] = [
  { id: 'train', label: 'Train' },
  { id: 'generate', label: 'Generate' },
  { id: 'sessions', label: 'Sessions' },
];

/** " (latent, VAE on WebGPU)" for a latent model, else nothing. */
function latentNote(info: ModelInfo): string {
  if (info.codec !== 'vae') return '';
  return info.vae ? ` (latent, VAE on ${info.vae.backend === 'webgpu' ? 'WebGPU' : 'WASM'})` : ' (latent)';
}

/** Why the VAE is not on WebGPU when the worker asked for it (the chip's tooltip). */
function vaeFallbackNote(info: ModelInfo | undefined): string | undefined {
  const why = info?.vae?.fallbackReason;
  return why ? `The VAE runs on WASM: ${why}` : undefined;
}

/** The UNet weights' GPU memory and storage type, for the model chip's tooltip. */
function weightsNote(info: ModelInfo | undefined): string | undefined {
  const w = info?.weights;
  if (!w) return undefined;
  const mib = (w.bytes / 2 ** 20).toFixed(w.bytes < 100 * 2 ** 20 ? 1 : 0);
  const kind = w.f16 === 0 ? 'all f32' : `linear and conv weights f16 (${w.f16} of ${w.f16 + w.f32} tensors)`;
  return `UNet weights: ${mib} MiB on the GPU, ${kind}`;
}

function ModelChip() {
  const model = useStudio((s) => s.model);
  const text = {
    idle: 'Model: waiting for GPU',
    loading: 'Loading model…',
    ready: model.info
      ? `${model.info.name} · ${model.info.resolution} px${latentNote(model.info)} · ` +
        `${model.info.layers.length} LoRA layers`
      : '',
    missing: 'Trainer not built yet',
    error: 'Model failed to load',
  }[model.phase];
  const dot = { idle: 'pending', loading: 'pending', ready: 'ok', missing: 'off', error: 'bad' }[model.phase];
  return (
    <span
      className="chip"
      data-testid="model-chip"
      data-phase={model.phase}
      title={model.error?.message ?? vaeFallbackNote(model.info) ?? weightsNote(model.info)}
    >
      <i className={`dot ${dot}`} /> {text}
    </span>
  );
}

export function App() {
  const start = useGpuStore((s) => s.start);
  const gpuPhase = useGpuStore((s) => s.phase);
  const tab = useStudio((s) => s.tab);
  const notice = useStudio((s) => s.notice);
  const offline = useStudio((s) => s.offlineReady);
  const modelUrl = useStudio((s) => s.session?.modelUrl);
  useEffect(() => {
    void start();
    void loadCapabilities();
  }, [start]);
  useEffect(() => {
    if (gpuPhase === 'ready' && modelUrl) void loadModel();
  }, [gpuPhase, modelUrl]);

  return (
    <div className="app">
      <header>
        <div className="brand">
          <h1>
            LoRA<sup>2</sup> Studio
          </h1>
          <p className="tagline">Adaptive-rank LoRA in your browser. Nothing is uploaded.</p>
        </div>
        <nav className="tabs" role="tablist">
          {TABS.map((t) => (
            <button
              key={t.id}
              role="tab"
              aria-selected={tab === t.id}
              className={tab === t.id ? 'active' : ''}
              data-testid={`tab-${t.id}`}
              onClick={() => setTab(t.id)}
            >
              {t.label}
            </button>
          ))}
        </nav>
        <div className="status">
          <ModelChip />
          {offline ? (
            <span
              className="chip"
              data-testid="offline-ready"
              title="The app, its WebAssembly and the default model are cached"
            >
              <i className="dot ok" /> offline ready
            </span>
          ) : null}
          <GpuPanel />
        </div>
      </header>
      <main>
        <GpuUnavailable />
        {notice ? (
          <ErrorBox
            key={notice.id}
            error={notice}
            testId="notice"
            onDismiss={dismissNotice}
            tone={notice.info ? 'info' : 'error'}
          />
        ) : null}
        <ErrorBoundary area={`The ${tab} view`} key={tab}>
          {tab === 'train' ? <TrainView /> : tab === 'generate' ? <GenerateView /> : <SessionsView />}
        </ErrorBoundary>
      </main>
    </div>
  );
}
