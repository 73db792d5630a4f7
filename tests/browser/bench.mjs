// In-browser benchmark of the built app (dist/) in Debian's headless Chromium.
// Prints a Markdown table for BENCHMARKS.md. Usage (after scripts/build-web):
//   node tests/browser/bench.mjs
// The reports are those of the native criterion benches
// (crates/core/benches/rule_pipeline.rs, crates/models/benches/report_model.rs),
// so the wasm/native ratio compares the same input.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { serve, launch, openPage, waitReady, analyze, DIST, ROOT, SHARED } from "./harness.mjs";

const REPORTS = path.join(ROOT, "crates/core/benches/reports");
// OpenI's median report length (the "typical report, about 60 tokens").
const MEDIAN = await readFile(path.join(REPORTS, "median.txt"), "utf8");
const TYPICAL = await readFile(path.join(REPORTS, "typical.txt"), "utf8");
// About 512 word pieces, built as the native bench builds it: the typical
// report repeated, space-separated (it prints the piece counts).
const LONG_REPEATS = 6;
const LONG = Array(LONG_REPEATS).fill(TYPICAL).join(" ");
// The radiograph of crates/models/benches/image_model.rs (512 x 512 PNG).
const XRAY = [...(await readFile(path.join(SHARED, "data/nih-cxr/images/00000061_012.png")))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await serve(DIST);
const browser = await launch();
const { page } = await openPage(browser);

async function timeToReady(load) {
  const start = Date.now();
  await load();
  await waitReady(page);
  return {
    wall: Date.now() - start,
    worker: Number(await page.getAttribute("#status", "data-load-ms")),
    origin: await page.getAttribute("#status", "data-origin"),
  };
}

const cold = await timeToReady(() => page.goto(server.origin + "/"));
const downloaded = server.log.reduce((sum, r) => sum + r.bytes, 0);
const distinct = new Map(server.log.map((r) => [new URL(r.url, server.origin).pathname, r.bytes]));
const distinctBytes = [...distinct.values()].reduce((a, b) => a + b, 0);
await page.evaluate(() => navigator.serviceWorker.ready);
const cachedRuns = [];
for (let i = 0; i < 5; i++) cachedRuns.push(await timeToReady(() => page.reload()));

// Round trip through the page as a user sees it: click, worker, render,
// timed inside the page (the driver's own latency is not the app's).
await analyze(page, TYPICAL);
const roundTrip = [];
for (let i = 0; i < 30; i++) {
  roundTrip.push(
    await page.evaluate(
      () =>
        new Promise((done) => {
          const shown = document.querySelector("#highlighted");
          const before = shown.dataset.request;
          const start = performance.now();
          const seen = new MutationObserver(() => {
            if (shown.dataset.request !== before) {
              seen.disconnect();
              // The next frame is when the user sees it.
              requestAnimationFrame(() => done(performance.now() - start));
            }
          });
          seen.observe(shown, { attributes: true, childList: true, subtree: true });
          document.querySelector("#analyze").click();
        })
    )
  );
}

// Pipeline time inside a worker of its own, many runs per sample because a
// worker's clock is coarse.
const compute = await page.evaluate(
  async ({ median, typical, long, xray }) => {
    const worker = new Worker("./worker-loader.js");
    const replies = [];
    let wake;
    worker.onmessage = (e) => {
      replies.push(JSON.parse(e.data));
      wake?.();
    };
    const next = async (kind) => {
      for (;;) {
        const i = replies.findIndex((m) => m.kind === kind || m.kind === "error");
        if (i >= 0) return replies.splice(i, 1)[0];
        await new Promise((r) => (wake = r));
      }
    };
    await next("ready");
    const run = async (text, runs, image, encoder) => {
      const samples = [];
      let memory = 0;
      for (let s = 0; s < (encoder ? 3 : 7); s++) {
        worker.postMessage(JSON.stringify({ kind: "benchmark", request: s, text, runs, image, encoder }));
        const m = await next("benchmark");
        if (m.kind === "error") throw new Error(m.message);
        samples.push(m.total_ms / m.runs);
        memory = m.wasm_memory_bytes;
      }
      samples.sort((a, b) => a - b);
      return { ms: samples[Math.floor(samples.length / 2)], memory };
    };
    const result = {
      median: await run(median, 20),
      typical: await run(typical, 20),
      long: await run(long, 3),
    };
    // The image model alone: the worker decodes the file once when it is
    // checked, as in the page; each run is preprocessing + encoder + head.
    const bytes = new Uint8Array(xray);
    worker.postMessage([JSON.stringify({ kind: "check-image", request: 100, name: "xray.png" }), bytes.buffer], [bytes.buffer]);
    const checked = await next("image-checked");
    if (checked.kind === "error") throw new Error(checked.message);
    result.image = await run("", 3, 100);
    // ResNet-50 with random weights (no trained one exists here): the same
    // arithmetic as a trained one.
    result.resnet = await run("", 1, 100, "resnet50");
    worker.terminate();
    return result;
  },
  { median: MEDIAN, typical: TYPICAL, long: LONG, xray: XRAY }
);

await browser.close();
await server.close();

const version = (await readFile("/proc/version", "utf8").catch(() => "")).split(" ").slice(0, 3).join(" ");
const fmt = (ms) => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);
console.log(`| measurement (headless Chromium, ${new Date().toISOString().slice(0, 10)}) | value |
|---|---|
| navigation to models ready, cold (empty caches) | ${cold.wall} ms (worker: ${cold.worker.toFixed(1)} ms, from ${cold.origin}) |
| navigation to models ready, cached (reload, median of 5) | ${median(cachedRuns.map((r) => r.wall))} ms (worker: ${median(cachedRuns.map((r) => r.worker)).toFixed(1)} ms, from ${cachedRuns[0].origin}) |
| total download, cold visit (all requests, incl. the service worker's copy of the shell) | ${(downloaded / 1024).toFixed(0)} kB |
| distinct files of a cold visit (app, worker, bundle) | ${(distinctBytes / 1024).toFixed(0)} kB in ${distinct.size} files |
| report model + rules in the worker, median report (${MEDIAN.length} chars) | ${fmt(compute.median.ms)} |
| report model + rules in the worker, typical report (${TYPICAL.length} chars) | ${fmt(compute.typical.ms)} |
| report model + rules in the worker, ${LONG_REPEATS} x typical (about 512 word pieces) | ${fmt(compute.long.ms)} |
| image model in the worker, EfficientNet-Lite0 at 224 px (512 x 512 PNG, decoded once) | ${fmt(compute.image.ms)} |
| image model in the worker, ResNet-50 at 224 px (random weights, median of 3) | ${fmt(compute.resnet.ms)} |
| typical report, click to highlighted result on screen (median of 30) | ${median(roundTrip).toFixed(1)} ms |
| worker wasm memory after the runs (peak) | ${(compute.long.memory / 2 ** 20).toFixed(1)} MiB |`);
console.error(`(${version})`);
