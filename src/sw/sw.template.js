// The service worker (built into dist/sw.js by scripts/precache-plugin.ts, which replaces the manifest
// placeholder): precaches the app shell, the onnxruntime-web WebAssembly and the default model folder at
// install, then serves them cache-first so the studio loads with the network off.
/* global self, caches */

/** @type {{ version: string; files: string[] }} */
const MANIFEST = self.__PRECACHE_MANIFEST__;
const PREFIX = 'lora2-precache-';
const CACHE = PREFIX + MANIFEST.version;
const PRECACHED = new Set(MANIFEST.files);

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // 'reload' skips the HTTP cache, so a new version never precaches a stale file.
      await cache.addAll(MANIFEST.files.map((url) => new Request(url, { cache: 'reload' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys())
        if (key.startsWith(PREFIX) && key !== CACHE) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

/** A 206 answer for `Range: bytes=a-b` from a cached full response (weights read in slices). */
async function rangeResponse(full, range) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(range);
  const blob = await full.blob();
  if (!m) return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${blob.size}` } });
  let start = m[1] === '' ? blob.size - Number(m[2]) : Number(m[1]);
  let end = m[1] === '' || m[2] === '' ? blob.size - 1 : Math.min(Number(m[2]), blob.size - 1);
  start = Math.max(0, start);
  if (start > end || start >= blob.size) {
    return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${blob.size}` } });
  }
  end = Math.max(start, end);
  const headers = new Headers(full.headers);
  headers.set('Content-Range', `bytes ${start}-${end}/${blob.size}`);
  headers.set('Content-Length', String(end - start + 1));
  return new Response(blob.slice(start, end + 1), { status: 206, headers });
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  const path = req.mode === 'navigate' ? '/index.html' : url.pathname;
  if (!PRECACHED.has(path)) return;
  event.respondWith(
    (async () => {
      const cached = await caches.match(path, { cacheName: CACHE });
      if (!cached) return fetch(req);
      const range = req.headers.get('Range');
      return range ? rangeResponse(cached, range) : cached;
    })(),
  );
});
