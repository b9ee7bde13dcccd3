// Entry point: mounts the studio; the GPU lives in the trainer worker, never on the main thread.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { initStudio } from './ui/actions/session';
import { persistOnPageHide } from './ui/actions/training';
import { App } from './ui/App';
import { ErrorBoundary } from './ui/ErrorBoundary';
import { registerServiceWorker } from './ui/serviceWorkerClient';
import { metrics } from './ui/services';
import { useStudio } from './ui/studioStore';
import { trainer } from './ui/trainerClient';
import './ui/styles.css';

// A console/test hook: `__lora2.trainer()` is the worker API, `metrics` the chart data, `studio` the UI state.
(window as unknown as { __lora2: unknown }).__lora2 = { trainer, metrics, studio: useStudio };

registerServiceWorker();
persistOnPageHide();
void initStudio();

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ErrorBoundary area="The studio">
      <App />
    </ErrorBoundary>
  </StrictMode>,
);
