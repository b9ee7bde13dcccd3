// Entry point: mounts the studio; the GPU lives in the trainer worker, never on the main thread.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './ui/App';
import { trainer } from './ui/trainerClient';
import './ui/styles.css';

// A console/test hook: `__lora2.trainer()` is the worker API (diagnostics, e2e).
(window as unknown as { __lora2: unknown }).__lora2 = { trainer };

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
