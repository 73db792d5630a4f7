// IntegraBNER service worker: keeps the app shell so the page opens offline.
// The model bundle is not handled here: the inference worker verifies and
// caches it itself (Cache API "integrabner-models"), keyed by SHA-256.
// Network first, so a new deployment is picked up whenever the server is
// reachable; the cache answers only when it is not.
const SHELL = "integrabner-shell";
const WORKER_FILES = ["worker-loader.js", "integrabner-worker.js", "integrabner-worker_bg.wasm"];

async function precache() {
  const cache = await caches.open(SHELL);
  const index = await fetch("./", { cache: "no-store" });
  const html = await index.clone().text();
  await cache.put("./", index);
  // Every same-origin file that index.html links to, plus the worker's files.
  const linked = [...html.matchAll(/(?:href|src)="(\.\/[^"]+)"/g)].map((m) => m[1]);
  await cache.addAll([...new Set([...linked, ...WORKER_FILES])]);
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.includes("/models/")) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(SHELL);
      try {
        const response = await fetch(event.request);
        if (response.ok) await cache.put(event.request, response.clone());
        return response;
      } catch (offline) {
        const key = event.request.mode === "navigate" ? "./" : event.request;
        const cached = await cache.match(key, { ignoreSearch: true });
        if (cached) return cached;
        throw offline;
      }
    })()
  );
});
