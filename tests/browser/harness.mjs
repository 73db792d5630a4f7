// Shared pieces of the browser tests and the benchmark: a static file server
// that logs every request it receives, Debian's Chromium driven by
// playwright-core, and the native CLI for parity checks.
import { createServer } from "node:http";
import { readFile, stat, mkdir, cp, mkdtemp } from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "../..");
export const DIST = path.join(ROOT, "dist");
export const SHARED = path.resolve(ROOT, "../shared");
export const ARTIFACTS = path.join(here, "artifacts");
export const CLI =
  process.env.INTEGRABNER_BIN ?? path.join(ROOT, "target/debug/integrabner");

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".css": "text/css",
  ".json": "application/json",
  ".png": "image/png",
};

/// Serves `root` on 127.0.0.1 like any static host; `log` gets one entry per
/// request with its method, URL, request body size and response bytes.
export async function serve(root) {
  const log = [];
  const server = createServer(async (req, res) => {
    let body = 0;
    req.on("data", (chunk) => (body += chunk.length));
    await new Promise((done) => req.on("end", done));
    const entry = { method: req.method, url: req.url, body, bytes: 0 };
    log.push(entry);
    const url = new URL(req.url, "http://localhost");
    let file = path.join(root, decodeURIComponent(url.pathname));
    if (!file.startsWith(root)) return res.writeHead(403).end();
    try {
      if ((await stat(file)).isDirectory()) file = path.join(file, "index.html");
      const data = await readFile(file);
      entry.bytes = data.length;
      res.writeHead(200, {
        "content-type": MIME[path.extname(file)] ?? "application/octet-stream",
        "content-length": data.length,
      });
      res.end(data);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((ready) => server.listen(0, "127.0.0.1", ready));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    log,
    close: () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(done);
      }),
  };
}

/// A copy of dist/ that a test may damage without touching the real build.
export async function distCopy() {
  const dir = await mkdtemp(path.join(tmpdir(), "integrabner-dist-"));
  await cp(DIST, dir, { recursive: true });
  return dir;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/// A fresh page at 1280×800 that records every request it or its workers
/// make, and every Content-Security-Policy violation.
export async function openPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const requests = [];
  context.on("request", (r) =>
    requests.push({ url: r.url(), method: r.method(), body: r.postDataBuffer()?.length ?? 0 })
  );
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  return { context, page, requests, problems };
}

/// A static server of `root` and a fresh page, both closed when test `t` ends.
export async function session(t, browser, root = DIST) {
  const server = await serve(root);
  const s = await openPage(browser);
  t.after(async () => {
    await s.context.close();
    await server.close();
  });
  return { server, ...s };
}

/// Privacy: every request stayed on the server's origin, was a GET without a
/// body, and matched nothing of `secret` (a RegExp of case data). With
/// `blobs`, `blob:` URLs of the origin pass: they name the page's own
/// in-memory copies of files the user chose.
export function assertPrivate(server, requests, secret, { blobs = false } = {}) {
  assert.ok(requests.length > 0);
  for (const r of requests) {
    if (blobs && r.url.startsWith(`blob:${server.origin}/`)) continue;
    assert.ok(r.url.startsWith(server.origin + "/"), `request left the origin: ${r.url}`);
    assert.equal(r.method, "GET", r.url);
    assert.equal(r.body, 0, r.url);
    assert.ok(!secret.test(decodeURIComponent(r.url)), r.url);
  }
  for (const r of server.log) assert.ok(r.method === "GET" && r.body === 0 && !secret.test(r.url), r.url);
}

export async function waitReady(page, timeout = 60_000) {
  await page.waitForSelector('#status[data-state="ready"]', { timeout });
}

/// Types `text` into the report box and analyses it; returns the JSON export.
export async function analyze(page, text) {
  await page.fill("#report", text);
  const before = await page.getAttribute("#highlighted", "data-request");
  await page.click("#analyze");
  await page.waitForFunction(
    (prev) => {
      const shown = document.querySelector("#highlighted")?.dataset.request;
      const s = document.querySelector("#status")?.dataset.state;
      return s === "ready" && shown !== undefined && shown !== prev;
    },
    before,
    { timeout: 60_000 }
  );
}

export async function exportJson(page) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-json")]);
  return JSON.parse(await readFile(await download.path(), "utf8"));
}

/// Runs `body`; on failure saves a screenshot named after the test.
export async function withScreenshot(page, name, body) {
  try {
    return await body();
  } catch (e) {
    await mkdir(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `${name.replace(/\W+/g, "-")}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    e.message += `\n(screenshot: ${file})`;
    throw e;
  }
}

/// Runs the native CLI; returns stdout. Exit status 3 (some inputs skipped,
/// each named on stderr) counts as success.
export function cli(args, input) {
  const run = spawnSync(CLI, args, { input, encoding: "utf8", maxBuffer: 1 << 28 });
  if (run.error) throw run.error;
  if (run.status !== 0 && run.status !== 3) throw new Error(`integrabner ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}
