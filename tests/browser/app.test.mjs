// Whole-page tests of the built app (dist/) in Debian's headless Chromium.
// Run by scripts/test after `scripts/build-web`; see tests/browser/README.md.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { existsSync } from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { randomBytes } from "node:crypto";
import {
  distCopy, launch, waitReady, analyze, exportJson,
  withScreenshot, cli, DIST, ROOT, SHARED, session as openSession, assertPrivate,
} from "./harness.mjs";

const SAMPLE =
  "FINDINGS: The heart is mildly enlarged. Small right pleural effusion with adjacent " +
  "atelectasis. No pneumothorax. Degenerative changes of the thoracic spine.\n" +
  "IMPRESSION: Cardiomegaly. Small right pleural effusion. No pneumothorax.";
// A marker that must never appear in any request.
const SECRET = "Patient Zebra-7731";

let browser;
before(async () => {
  assert.ok(existsSync(path.join(DIST, "index.html")), "build the app first: scripts/build-web");
  browser = await launch();
});
after(async () => browser?.close());

const session = (t, root = DIST) => openSession(t, browser, root);

function entitiesOf(page) {
  return page.$$eval("[data-entity]", (els) =>
    els.map((e) => ({
      text: e.textContent,
      label: e.dataset.label,
      concept: e.dataset.concept,
      assertion: e.dataset.assertion,
      score: Number(e.dataset.score),
    }))
  );
}

function rowsOf(page) {
  return page.$$eval("tr[data-finding]", (rows) =>
    rows.map((r) => ({
      concept: r.dataset.concept,
      type: r.dataset.type,
      source: r.dataset.source,
      probability: Number(r.dataset.probability),
    }))
  );
}

test("a report is highlighted and tabulated, privately, at 1280x800", async (t) => {
  const { server, page, requests, problems } = await session(t);
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/");
    await waitReady(page);
    await analyze(page, `${SECRET}. ${SAMPLE}`);

    const entities = await entitiesOf(page);
    const find = (text, concept) => entities.find((e) => e.text === text && e.concept === concept);
    assert.equal(find("pleural effusion", "Pleural Effusion")?.assertion, "present");
    assert.equal(find("pneumothorax", "Pneumothorax")?.assertion, "absent");
    assert.equal(find("Cardiomegaly", "Cardiomegaly")?.label, "DISEASE");
    assert.equal(find("atelectasis", "Pulmonary Atelectasis")?.assertion, "present");

    const rows = await rowsOf(page);
    const concepts = rows.map((r) => r.concept);
    assert.ok(concepts.includes("Pleural Effusion") && concepts.includes("Cardiomegaly"), concepts);
    assert.ok(!concepts.includes("Pneumothorax"), "an absent finding is not coded");
    // The model's findings (`text`) and, for the concepts the rules decide, the rule labeler's.
    assert.ok(rows.every((r) => ["text", "dictionary"].includes(r.source) && r.probability > 0 && r.probability <= 1), JSON.stringify(rows));
    assert.ok(rows.some((r) => r.source === "text"), JSON.stringify(rows));

    // Qualifiers end to end: chips on the row, the words that gave them
    // underlined in the report, and both in the exports.
    const chips = await page.$$eval('tr[data-finding][data-concept="Pleural Effusion"] .chip', (c) => c.map((x) => x.dataset.qualifier));
    assert.deepEqual(chips, ["right", "small"]);
    const cues = await page.$$eval("u.cue", (u) => u.map((x) => x.textContent));
    assert.ok(cues.includes("Small") && cues.includes("right"), cues);
    const exported = await exportJson(page);
    const effusion = exported.findings.find((f) => f.concept === "Pleural Effusion");
    assert.deepEqual(effusion.qualifiers, ["right", "small"]);
    assert.deepEqual(effusion.qualifiers_by_kind, { laterality: ["right"], severity: ["small"] });
    const [csvDownload] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
    const csvRows = (await readFile(await csvDownload.path(), "utf8")).split("\n");
    assert.ok(csvRows.some((l) => l.startsWith("finding,Pleural Effusion,disease,,present,") && l.includes(",text,right/small,")), csvRows.join("\n"));

    // Absent entities look different from present ones, not only by colour.
    const style = (sel) => page.$eval(sel, (e) => getComputedStyle(e).textDecorationLine);
    assert.equal(await style('[data-entity][data-assertion="absent"]'), "line-through");
    assert.equal(await style('[data-entity][data-assertion="present"]'), "none");

    // Keyboard: Ctrl+Enter analyses; entities take focus and show their details.
    await page.fill("#report", "No acute disease. Stable cardiomegaly.");
    await page.focus("#report");
    await page.keyboard.press("Control+Enter");
    await page.waitForSelector('tr[data-finding][data-concept="Cardiomegaly"]');
    await page.focus('[data-entity][data-concept="Cardiomegaly"]');
    assert.match(await page.textContent("#entity-details"), /^Cardiomegaly · disease · present · confidence \d+% · source text$/);

    // The threshold hides findings below it; sorting by term orders rows.
    await analyze(page, SAMPLE);
    await page.$eval("#threshold", (e) => {
      e.value = "1";
      e.dispatchEvent(new Event("input", { bubbles: true }));
    });
    assert.equal((await rowsOf(page)).length, 0);
    await page.$eval("#threshold", (e) => {
      e.value = "0";
      e.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await page.click("#findings th:first-child button");
    const terms = (await rowsOf(page)).map((r) => r.concept);
    assert.deepEqual(terms, [...terms].sort());

    // Everything fits 1280 px wide.
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 1280, `page is ${width}px wide`);
    for (const sel of ["#report", "#image-input", "#analyze", "#status", "#findings"]) {
      assert.ok(await page.$(sel), `${sel} exists`);
    }

    // Privacy: every request stayed on this origin, carried no body, and
    // none mentioned the report.
    assertPrivate(server, requests, /Zebra/);
    assert.deepEqual(problems, []);
  });
});

test("an image is analysed in the worker, alone and with its report, like the CLI; bad images are refused with a reason", async (t) => {
  const { server, page, requests, problems } = await session(t);
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/");
    await waitReady(page);
    const before = server.log.length;
    const xray = path.join(SHARED, "data/nih-cxr/images/00000061_012.png");
    await page.setInputFiles("#image-input", xray);
    await page.waitForSelector("#image-view");
    assert.match(await page.textContent("#analysis-inputs"), /reads the X-ray 00000061_012\.png alone/);
    assert.equal(await page.getAttribute("#image-view", "data-width"), "512");
    assert.match(await page.textContent("#image-view figcaption"), /00000061_012\.png · 512 × 512/);

    // The image alone: image findings, each with a heat map; the strongest is drawn.
    await analyze(page, "");
    const imageRows = await rowsOf(page);
    assert.ok(imageRows.length > 0, "an abnormal radiograph gives findings");
    assert.ok(imageRows.every((r) => r.source === "image"), JSON.stringify(imageRows));
    const strongest = imageRows.reduce((a, b) => (b.probability > a.probability ? b : a));
    assert.equal(await page.getAttribute("#heat-map", "data-concept"), strongest.concept);
    assert.equal((await page.$$("#heat-map rect")).length, 49);
    const other = imageRows.find((r) => r.concept !== strongest.concept);
    if (other) {
      await page.click(`tr[data-finding][data-concept="${other.concept}"] .show-heat-map`);
      assert.equal(await page.getAttribute("#heat-map", "data-concept"), other.concept);
    }
    // Same numbers as the native CLI on the same file.
    const web = await exportJson(page);
    const native = JSON.parse(cli(["predict", "--image", xray, "--image-model", path.join(ROOT, "models/image"), "--scores"]));
    assert.equal(web.findings.length, native.findings.length);
    for (const [w, c] of zip(web.findings, native.findings)) {
      assert.equal(w.concept, c.concept);
      assert.ok(Math.abs(w.probability - c.probability) <= 1e-4, `${w.concept} ${w.probability} vs ${c.probability}`);
    }
    assert.ok(Math.abs(web.scores.abnormal - native.scores.abnormal) <= 1e-4);
    for (const [w, c] of zip(web.heat_maps, native.heat_maps)) {
      assert.deepEqual(w.region, c.region);
      for (const [a, b] of zip(w.values, c.values)) assert.ok(Math.abs(a - b) <= 1e-3);
    }

    // Report and image together: the fusion model codes the case, as the CLI does.
    await analyze(page, `${SECRET}. ${SAMPLE}`);
    const fusedRows = await rowsOf(page);
    assert.ok(fusedRows.length > 0 && fusedRows.every((r) => r.source === "fusion"), JSON.stringify(fusedRows));
    const both = await exportJson(page);
    const nativeBoth = JSON.parse(
      cli(
        ["predict", "--image", xray, "--scores", "--text-model", path.join(ROOT, "models/text"),
          "--image-model", path.join(ROOT, "models/image"), "--fusion-model", path.join(ROOT, "models/fusion"), "-"],
        `${SECRET}. ${SAMPLE}`
      )
    );
    assert.deepEqual(both.findings.map((f) => f.concept), nativeBoth.findings.map((f) => f.concept));
    for (const [w, c] of zip(both.findings, nativeBoth.findings)) assert.ok(Math.abs(w.probability - c.probability) <= 1e-4);
    assert.ok(await page.$("#heat-map"), "a fused image finding shows its heat map");
    // What each model said is one hover away, and the image's abnormality is shown.
    const effusion = 'tr[data-finding][data-concept="Pleural Effusion"] td.num';
    assert.match(await page.getAttribute(effusion, "title"), /^fused from report \d+% and image \d+%$/);
    assert.match(await page.textContent("#abnormal"), /image model: abnormal \d+%/);

    // A truncated PNG and a 20,000 × 20,000 header: clear messages, no crash.
    // The refused file replaced the X-ray on screen: that one is unloaded
    // with the result computed on it, so Analyze cannot use it unawares.
    assert.match(await page.textContent("#analysis-inputs"), /reads the report and the X-ray 00000061_012\.png/);
    const png = await readFile(xray);
    await page.setInputFiles("#image-input", { name: "cut.png", mimeType: "image/png", buffer: png.subarray(0, 3000) });
    await page.waitForSelector("#notice:not([hidden])");
    assert.match(await page.textContent("#notice"), /^cut\.png: Cannot use this image: .*damaged.* The X-ray shown before \(00000061_012\.png\) was removed, so Analyze will not use it\.$/s);
    assert.equal(await page.$("#image-view"), null);
    assert.equal((await rowsOf(page)).length, 0, "no findings of the removed X-ray stay on screen");
    assert.equal(await page.$("#heat-map"), null);
    assert.match(await page.textContent("#analysis-inputs"), /reads the report; no X-ray is loaded/);
    // A real PNG whose header claims 20,000 × 20,000 pixels.
    const huge = Buffer.from(png);
    huge.writeUInt32BE(20000, 16);
    huge.writeUInt32BE(20000, 20);
    huge.writeUInt32BE(crc32(huge.subarray(12, 29)), 29);
    await page.setInputFiles("#image-input", { name: "huge.png", mimeType: "image/png", buffer: huge });
    await page.waitForFunction(() => /20000 × 20000/.test(document.querySelector("#notice")?.textContent));
    await page.setInputFiles("#image-input", { name: "notes.png", mimeType: "image/png", buffer: Buffer.from("plain text") });
    await page.waitForFunction(() => /not a PNG, JPEG or DICOM image/.test(document.querySelector("#notice")?.textContent));
    // Pictures that cannot be radiographs are refused, not coded.
    await page.setInputFiles("#image-input", { name: "black.png", mimeType: "image/png", buffer: flatPng(512, 512, 0) });
    await page.waitForFunction(() => /black\.png: .*almost uniform.*not a radiograph/.test(document.querySelector("#notice")?.textContent));
    await page.setInputFiles("#image-input", { name: "dot.png", mimeType: "image/png", buffer: flatPng(1, 1, 128) });
    await page.waitForFunction(() => /dot\.png: .*1 × 1 pixels/.test(document.querySelector("#notice")?.textContent));
    assert.equal(await page.$("#image-view"), null);
    assert.equal(await page.getAttribute("#status", "data-state"), "ready");

    // The image never travelled: no request after picking it carried a body.
    assert.ok(server.log.slice(before).every((r) => r.method === "GET" && r.body === 0));
    // The page shows the user's file through a blob: URL of its own origin,
    // which is memory, not network.
    const network = requests.filter((r) => !r.url.startsWith(`blob:${server.origin}/`));
    const offending = network.filter(
      (r) => !r.url.startsWith(server.origin + "/") || r.url.includes("00000061") || decodeURIComponent(r.url).includes("Zebra")
    );
    assert.deepEqual(offending, []);
    assert.deepEqual(problems, []);
  });
});

test("bad report input gets a clear message and the page keeps working", async (t) => {
  const { server, page } = await session(t);
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/");
    await waitReady(page);
    await page.fill("#report", "   ");
    await page.click("#analyze");
    assert.match(await page.textContent("#notice"), /paste a report or choose a chest X-ray first/);

    // Binary pasted as text after a normal report: refused, and the normal
    // report's result does not stay on screen under the new message.
    await analyze(page, SAMPLE);
    assert.ok((await rowsOf(page)).length > 0);
    const binary = Array.from({ length: 3000 }, (_, i) => String.fromCharCode((i * 7919) % 32)).join("");
    await page.fill("#report", "\u0089PNG" + binary);
    await page.click("#analyze");
    await page.waitForFunction(() => /binary data/.test(document.querySelector("#notice")?.textContent));
    assert.equal(await page.getAttribute("#status", "data-state"), "ready");
    assert.equal((await page.$$("[data-entity]")).length, 0);
    assert.equal((await rowsOf(page)).length, 0);
    assert.match(await page.textContent("#highlighted"), /Results appear here after Analyze/);

    // A 100,000-character report is analysed in the worker: too long for the
    // report model, so the rule labeler takes it, and the page says so.
    const sentence = "Small right pleural effusion. No pneumothorax. ";
    const big = sentence.repeat(Math.ceil(100_000 / sentence.length)).slice(0, 100_000);
    await analyze(page, big);
    assert.ok((await page.$$("[data-entity]")).length > 4000);
    assert.match(await page.textContent("#notice"), /report model reads at most 2048.*rule labeler analysed it alone/);

    // A soft hyphen or zero-width space inside a word does not hide it.
    await analyze(page, "Small right pleural effu\u00ADsion. No pneu\u200Bmothorax.");
    const hidden = await entitiesOf(page);
    assert.ok(hidden.some((e) => e.text === "pleural effu\u00ADsion" && e.concept === "Pleural Effusion"), JSON.stringify(hidden));
    assert.ok(hidden.some((e) => e.text === "pneu\u200Bmothorax" && e.assertion === "absent"), JSON.stringify(hidden));

    // Unusual Unicode: offsets in code points, highlighted text matches.
    const unicode = "🫁 Ünïcödé: right pleural effusion\u200B; no pneumothorax. مرحبا e\u0301dema";
    await analyze(page, unicode);
    const json = await exportJson(page);
    const chars = Array.from(unicode);
    assert.ok(json.entities.length >= 2);
    for (const e of json.entities) assert.equal(chars.slice(e.start, e.end).join(""), e.text);
    const marks = await entitiesOf(page);
    assert.deepEqual(marks.map((m) => m.text), json.entities.map((e) => e.text));
  });
});

test("a result is shown and exported only beside the inputs it came from", async (t) => {
  const { server, page, problems } = await session(t);
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/");
    await waitReady(page);
    const first = path.join(SHARED, "data/nih-cxr/images/00000061_012.png");
    const second = path.join(SHARED, "data/nih-cxr/images/00000061_015.png");
    await page.setInputFiles("#image-input", first);
    await page.waitForSelector("#image-view");
    await analyze(page, SAMPLE);
    assert.ok((await rowsOf(page)).length > 0);
    assert.ok(!(await page.isDisabled("#export-json")));

    // Editing the report hides the result until Analyze runs again.
    await page.fill("#report", SAMPLE + " Also a small hiatal hernia.");
    await page.waitForSelector("#stale");
    assert.equal((await rowsOf(page)).length, 0);
    assert.equal((await page.$$("[data-entity]")).length, 0);
    assert.ok(await page.isDisabled("#export-json"));
    assert.ok(await page.isDisabled("#export-csv"));
    // Putting the same text back shows the same result again.
    await page.fill("#report", SAMPLE);
    await page.waitForSelector("tr[data-finding]");

    // Another X-ray: the first one's findings are not shown under its name.
    await page.setInputFiles("#image-input", second);
    await page.waitForFunction(() => /00000061_015\.png/.test(document.querySelector("#image-view figcaption")?.textContent));
    await page.waitForSelector("#stale");
    assert.equal((await rowsOf(page)).length, 0);
    assert.equal(await page.$("#heat-map"), null);
    assert.doesNotMatch(await page.textContent("#abnormal"), /abnormal/);
    assert.ok(await page.isDisabled("#export-json"));
    await analyze(page, SAMPLE);
    const exported = await exportJson(page);
    const native = JSON.parse(
      cli(
        ["predict", "--image", second, "--scores", "--text-model", path.join(ROOT, "models/text"),
          "--image-model", path.join(ROOT, "models/image"), "--fusion-model", path.join(ROOT, "models/fusion"), "-"],
        SAMPLE
      )
    );
    assert.deepEqual(exported.findings.map((f) => f.concept), native.findings.map((f) => f.concept));

    // A 30 MB PNG: Analyze pressed while the worker still checks it waits
    // for the check instead of analysing the X-ray shown before.
    const big = noisePng(4000, 2600);
    assert.ok(big.length > 30e6, `${big.length} bytes`);
    await page.setInputFiles("#image-input", { name: "big.png", mimeType: "image/png", buffer: big });
    await page.click("#analyze");
    assert.match(await page.textContent("#notice"), /big\.png is still being checked/);
    await page.waitForFunction(() => /big\.png/.test(document.querySelector("#image-view figcaption")?.textContent), null, { timeout: 120_000 });
    assert.doesNotMatch(await page.textContent("#notice"), /worker/);
    assert.match(await page.textContent("#analysis-inputs"), /reads the report and the X-ray big\.png/);
    assert.equal((await rowsOf(page)).length, 0, "nothing of 00000061_015.png under big.png");
    await analyze(page, SAMPLE);
    assert.ok((await rowsOf(page)).length > 0);
    assert.equal(await page.getAttribute("#status", "data-state"), "ready");
    assert.deepEqual(problems, []);
  });
});

test("the browser and the native CLI give identical results", async (t) => {
  const { server, page } = await session(t);
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/");
    await waitReady(page);
    const reports = openiSample(20);
    reports.push({ id: "sample", text: SAMPLE });
    const native = cli(["predict", "--text-model", path.join(ROOT, "models/text"), await jsonlFile(reports)])
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(native.length, reports.length);
    let entities = 0;
    for (const [i, r] of reports.entries()) {
      await analyze(page, r.text);
      const web = await exportJson(page);
      const n = native[i];
      assert.equal(web.entities.length, n.entities.length, r.id);
      assert.equal(web.findings.length, n.findings.length, r.id);
      for (const [w, c] of zip(web.entities, n.entities)) {
        for (const k of ["start", "end", "text", "label", "concept", "assertion", "source"]) assert.equal(w[k], c[k], `${r.id} ${k}`);
        assert.deepEqual(w.modifiers ?? [], c.modifiers ?? [], `${r.id} modifiers`);
        assert.ok(Math.abs(w.score - c.score) <= 1e-4);
      }
      for (const [w, c] of zip(web.findings, n.findings)) {
        for (const k of ["concept", "type", "source"]) assert.equal(w[k], c[k], `${r.id} ${k}`);
        assert.deepEqual(w.qualifiers, c.qualifiers, `${r.id} qualifiers`);
        assert.ok(Math.abs(w.probability - c.probability) <= 1e-4);
      }
      entities += n.entities.length;
    }
    // The CSV export has one row per finding and entity.
    assert.ok(entities > 50, `only ${entities} entities compared`);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
    const csv = (await readFile(await download.path(), "utf8")).trim().split("\n");
    const last = native[native.length - 1];
    assert.equal(csv.length, 1 + last.findings.length + last.entities.length);
    assert.equal(csv[0], "kind,concept,type,label,assertion,probability,source,qualifiers,start,end,text");
  });
});

test("after one visit the app opens and analyses offline", async (t) => {
  const { server, page, problems } = await session(t);
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/");
    await waitReady(page);
    assert.equal(await page.getAttribute("#status", "data-origin"), "network");
    await page.evaluate(() => navigator.serviceWorker.ready);
    await server.close();
    await page.reload();
    await waitReady(page);
    assert.equal(await page.getAttribute("#status", "data-origin"), "cache");
    await analyze(page, SAMPLE);
    const concepts = (await rowsOf(page)).map((r) => r.concept);
    assert.ok(concepts.includes("Pleural Effusion"), concepts);
    assert.deepEqual(problems, []);
  });
});

test("a damaged or missing model file stops loading with a clear message", async (t) => {
  const damaged = await distCopy();
  const vocab = path.join(damaged, "models/rules/concepts.json");
  await writeFile(vocab, (await readFile(vocab, "utf8")).replace("Cardiomegaly", "Cardiomegalx"));
  const { server, page } = await session(t, damaged);
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/");
    await page.waitForSelector('#status[data-state="error"]');
    assert.match(await page.textContent("#status"), /integrity check.*SHA-256 mismatch/s);
    assert.ok(await page.isDisabled("#analyze"));
  });

  // NaN in the findings head with the manifest rewritten to match (a broken
  // export): the checksums pass, the worker's check of the weights does not.
  const poisoned = await distCopy();
  const gguf = path.join(poisoned, "models/text/model.gguf");
  await writeFile(gguf, withNaN(await readFile(gguf), "findings_classifier.bias"));
  cli(["export", path.join(poisoned, "models")]);
  const third = await session(t, poisoned);
  await withScreenshot(third.page, t.name + "-nan", async () => {
    await third.page.goto(third.server.origin + "/");
    await third.page.waitForSelector('#status[data-state="error"]');
    assert.match(await third.page.textContent("#status"), /report model cannot be loaded.*findings_classifier\.bias holds a NaN/s);
    assert.ok(await third.page.isDisabled("#analyze"));
  });

  const missing = await distCopy();
  await writeFile(path.join(missing, "models/manifest.json"), "{ not json");
  const second = await session(t, missing);
  await withScreenshot(second.page, t.name + "-manifest", async () => {
    await second.page.goto(second.server.origin + "/");
    await second.page.waitForSelector('#status[data-state="error"]');
    assert.match(await second.page.textContent("#status"), /manifest is not valid/);
  });
});

test("a worker that cannot start is reported, not waited on", async (t) => {
  const corrupt = await distCopy();
  await writeFile(path.join(corrupt, "integrabner-worker_bg.wasm"), Buffer.from("not wasm"));
  const first = await session(t, corrupt);
  await withScreenshot(first.page, t.name, async () => {
    await first.page.goto(first.server.origin + "/");
    await first.page.waitForSelector('#status[data-state="error"]');
    assert.match(await first.page.textContent("#status"), /analysis worker could not start/);
  });

  // A worker script that is missing crashes at once: the page restarts it a
  // few times, then says so and stops.
  const missing = await distCopy();
  await rm(path.join(missing, "integrabner-worker.js"));
  const second = await session(t, missing);
  await withScreenshot(second.page, t.name + "-missing", async () => {
    await second.page.goto(second.server.origin + "/");
    await second.page.waitForSelector('#status[data-state="error"]');
    assert.match(await second.page.textContent("#status"), /stopped 4 times in a row/);
    const starts = second.server.log.filter((r) => r.url.endsWith("/worker-loader.js")).length;
    assert.ok(starts >= 4, `${starts} worker starts`);
  });
});

test("a new bundle version replaces the cached one", async (t) => {
  const root = await distCopy();
  const { server, page } = await session(t, root);
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/");
    await waitReady(page);
    const cachedKeys = () =>
      page.evaluate(async () => (await (await caches.open("integrabner-models")).keys()).map((r) => r.url));
    const first = await cachedKeys();
    const footer = await page.textContent("footer");
    // Publish a changed rule file, as `integrabner export` would.
    const cues = path.join(root, "models/rules/radiology_cues.json");
    await writeFile(cues, (await readFile(cues, "utf8")) + "\n");
    cli(["export", path.join(root, "models")]);
    await page.reload();
    await waitReady(page);
    assert.equal(await page.getAttribute("#status", "data-origin"), "network");
    assert.notEqual(await page.textContent("footer"), footer, "the footer names the new bundle version");
    const second = await cachedKeys();
    const cueKeys = second.filter((u) => u.includes("radiology_cues.json"));
    assert.equal(cueKeys.length, 1, "the old rule file was pruned");
    assert.ok(!first.includes(cueKeys[0]));
    assert.equal(second.length, first.length);
  });
});

function* zip(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) yield [a[i], b[i]];
}

/// Every 150th OpenI report with text, as {id, text}.
function openiSample(n) {
  const lines = cli(["ingest", path.join(SHARED, "data/openi/NLMCXR_reports.tgz")]).trim().split("\n");
  const picked = [];
  for (let i = 0; i < lines.length && picked.length < n; i += 150) {
    const r = JSON.parse(lines[i]);
    const s = r.sections;
    const text = [["INDICATION", s.indication], ["FINDINGS", s.findings], ["IMPRESSION", s.impression]]
      .filter(([, v]) => v)
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n");
    if (text) picked.push({ id: r.id, text });
  }
  return picked;
}

async function jsonlFile(reports) {
  const file = path.join(await mkdtemp(path.join(tmpdir(), "integrabner-parity-")), "reports.jsonl");
  await writeFile(file, reports.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return file;
}

/// `bytes` of a GGUF file (as ours are written: string metadata only) with
/// the first value of the f32 tensor whose name ends in `suffix` set to NaN.
function withNaN(bytes, suffix) {
  const out = Buffer.from(bytes);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let at = 8; // magic, version
  const u64 = () => { const v = Number(view.getBigUint64(at, true)); at += 8; return v; };
  const u32 = () => { const v = view.getUint32(at, true); at += 4; return v; };
  const str = () => { const n = u64(); const s = out.subarray(at, at + n).toString("utf8"); at += n; return s; };
  const tensors = u64();
  const entries = u64();
  for (let i = 0; i < entries; i++) {
    str();
    assert.equal(u32(), 8, "string metadata");
    str();
  }
  let offset;
  for (let i = 0; i < tensors; i++) {
    const name = str();
    const dims = u32();
    at += 8 * dims;
    const type = u32();
    const start = u64();
    if (name.endsWith(suffix)) {
      assert.equal(type, 0, `${name} is f32`);
      offset = start;
    }
  }
  assert.notEqual(offset, undefined, `no tensor *${suffix}`);
  view.setFloat32(Math.ceil(at / 32) * 32 + offset, NaN, true);
  return out;
}

/// A `width` × `height` RGB PNG of random noise: incompressible, so the file
/// is about 3 bytes a pixel.
function noisePng(width, height) {
  return rgbPng(width, height, (raw) => randomBytes(raw));
}

/// A `width` × `height` RGB PNG of one grey `level`.
function flatPng(width, height, level) {
  return rgbPng(width, height, (raw) => Buffer.alloc(raw, level));
}

/// A `width` × `height` RGB PNG whose pixel bytes come from `pixels(n)`.
function rgbPng(width, height, pixels) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(zlib.crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per channel
  header[9] = 2; // RGB
  const row = 1 + width * 3;
  const raw = pixels(row * height);
  for (let y = 0; y < height; y++) raw[y * row] = 0; // filter: none
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", zlib.deflateSync(raw, { level: 1 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function crc32(bytes) {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
