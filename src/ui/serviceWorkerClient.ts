// Registers the service worker (production builds only: in dev it would cache modules Vite rebuilds) and
// reports when the app shell, the WebAssembly and the default model are cached for offline use.
import { useStudio } from './studioStore';

export function registerServiceWorker(): void {
  if (!import.meta.env.PROD || !('serviceWorker' in navigator)) return;
  navigator.serviceWorker
    .register('/sw.js', { scope: '/' })
    .then(() => navigator.serviceWorker.ready)
    .then(() => useStudio.setState({ offlineReady: true }))
    .catch((e) => console.warn('service worker registration failed; the app will not work offline', e));
}
