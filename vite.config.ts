// Vite config for the studio: React, module workers, and the pages served by `vite preview` in e2e.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';
import { precachePlugin } from './scripts/precache-plugin';

export default defineConfig({
  // precachePlugin writes dist/sw.js: the offline service worker with the list of built files.
  plugins: [react(), precachePlugin()],
  worker: { format: 'es' },
  build: { target: 'es2022', sourcemap: true },
  server: { port: 5173 },
  preview: { port: 4173 },
});
