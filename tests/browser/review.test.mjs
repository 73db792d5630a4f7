// The review mode end to end in Debian's headless Chromium: a 5-case session
// from a JSONL file and an NIH image, judged with the keyboard (and the mouse
// where a field is needed), a reload in the middle, the closing form, both
// exports, and the export imported again in a fresh browser profile. Every
// request is recorded: none may carry case data.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { session, assertPrivate, launch, openPage, waitReady, withScreenshot, DIST, ROOT, SHARED } from "./harness.mjs";

const SECRET = "Patient Zebra-7731";
const XRAY = path.join(SHARED, "data/nih-cxr/images/00000061_012.png");
const CASES = [
  {
    id: "case-1",
    text:
      `${SECRET}. FINDINGS: The heart is mildly enlarged. Small right pleural effusion. ` +
      "No pneumothorax. Degenerative changes of the thoracic spine.\nIMPRESSION: Cardiomegaly.",
  },
  { id: "case-2", text: "Heart size normal. Small left pleural effusion. No pneumothorax.", image: "00000061_012.png" },
  { id: "case-3", text: "Stable cardiomegaly. Possible small left pleural effusion." },
  { id: "case-4", text: "Lungs are clear. No pneumothorax or pleural effusion." },
  { id: "case-5", text: "Right lower lobe atelectasis. Calcified granuloma in the left upper lobe." },
];
const IMAGE = async () => ({ name: path.basename(XRAY), mimeType: "image/png", buffer: await readFile(XRAY) });
const JSONL = { name: "cases.jsonl", mimeType: "application/json", buffer: Buffer.from(CASES.map((c) => JSON.stringify(c)).join("\n")) };

let browser;
before(async () => {
  assert.ok(existsSync(path.join(DIST, "index.html")), "build the app first: scripts/build-web");
  browser = await launch();
});
after(async () => browser?.close());

const items = (page) =>
  page.$$eval("tr[data-review-item]", (rows) =>
    rows.map((r) => ({ ...r.dataset, focused: r.getAttribute("aria-selected") === "true" }))
  );
const caseIndex = (page) => page.getAttribute("#review-case", "data-case-index").then(Number);
const saved = (page) => page.getAttribute("#review", "data-saved").then(Number);

/// Presses `key` with nothing focused, as a reviewer moving through cases does.
async function press(page, key) {
  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press(key);
}

async function showCase(page, index) {
  await page.waitForSelector(`#review-case[data-case-index="${index}"]`);
}

/// Selects the first occurrence of `text` in the review report, as a mouse would.
async function selectInReport(page, text) {
  await page.evaluate((text) => {
    const report = document.querySelector("#review-report");
    const walker = document.createTreeWalker(report, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const at = node.data.indexOf(text);
      if (at >= 0) {
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + text.length);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        report.dispatchEvent(new MouseEvent("mouseup", { bubbles: true }));
        return;
      }
    }
    throw new Error(`${text} is not in one text node of the report`);
  }, text);
}

/// Opens the review mode and starts the 5-case session with its image.
async function startSession(page, server) {
  await page.goto(server.origin + "/#review");
  await waitReady(page);
  await page.waitForSelector('#review[data-stage="start"]');
  await page.setInputFiles("#review-files", [JSONL, await IMAGE()]);
  await page.waitForSelector('#review[data-stage="cases"]', { timeout: 120_000 });
  await showCase(page, 0);
}

async function download(page, selector) {
  const [file] = await Promise.all([page.waitForEvent("download"), page.click(selector)]);
  return { name: file.suggestedFilename(), text: await readFile(await file.path(), "utf8") };
}

/// No request carries case data: the marker, a case id or report words.
const CASE_DATA = /Zebra|case-\d|pleural/i;

test("an expert reviews a 5-case session with the keyboard, reloads midway, finishes, exports and re-imports", async (t) => {
  const first = await session(t, browser);
  const { server, page, requests, problems } = first;
  const bundle = JSON.parse(await readFile(path.join(ROOT, "models/manifest.json"), "utf8"));
  let exported;
  await withScreenshot(page, t.name, async () => {
    await startSession(page, server);
    assert.equal(await page.getAttribute("#review-case", "data-case-id"), "case-1");

    // Case 1: the model's entities in text order, then its findings, all pending.
    let rows = await items(page);
    assert.ok(rows.length >= 6, JSON.stringify(rows));
    assert.ok(rows.every((r) => r.verdict === "pending"));
    assert.ok(rows[0].focused);
    assert.ok(rows.some((r) => r.kind === "finding" && r.concept === "Cardiomegaly"));
    // a accepts and moves on; r rejects; u undoes; r again.
    await press(page, "a");
    await press(page, "r");
    rows = await items(page);
    assert.deepEqual([rows[0].verdict, rows[1].verdict, rows[2].focused], ["accepted", "rejected", true]);
    await press(page, "u");
    assert.equal((await items(page))[1].verdict, "pending");
    await press(page, "k");
    await press(page, "r");
    assert.equal((await items(page))[1].verdict, "rejected");
    // Correct an assertion with the mouse: "No pneumothorax" read as uncertain.
    const pneumo = 'tr[data-review-item][data-kind="entity"][data-concept="Pneumothorax"]';
    await page.selectOption(`${pneumo} select[aria-label="Assertion"]`, "uncertain");
    await page.waitForSelector(`${pneumo}[data-verdict="corrected"][data-assertion="uncertain"]`);
    // Correct a finding's qualifiers: the effusion is on the left, not the right.
    const effusion = 'tr[data-review-item][data-kind="finding"][data-concept="Pleural Effusion"]';
    const effusionQualifiers = `${effusion} input.qualifiers`;
    assert.deepEqual((await page.inputValue(effusionQualifiers)).split(", ").sort(), ["right", "small"]);
    await page.fill(effusionQualifiers, "huge");
    await page.press(effusionQualifiers, "Tab");
    assert.match(await page.textContent("#review-message"), /\u201chuge\u201d is not an OpenI qualifier/);
    await page.fill(effusionQualifiers, "Small, left");
    await page.press(effusionQualifiers, "Tab");
    await page.waitForSelector(`${effusion}[data-verdict="corrected"][data-qualifiers="left/small"]`);
    // Add a missed entity by selecting its words, and a missed finding by type-ahead.
    await selectInReport(page, "Degenerative changes");
    assert.match(await page.textContent(".review-add .note"), /Degenerative changes/);
    await page.fill("#add-concept", "");
    await page.selectOption("#add-type", "finding");
    await page.click("#add-entity");
    await page.waitForSelector('tr[data-review-item][data-kind="entity"][data-verdict="added"][data-type="finding"][data-concept=""]');
    // The selection was used up: adding again asks for one.
    await page.click("#add-entity");
    assert.match(await page.textContent("#review-message"), /Select words of the report first/);
    await page.fill("#add-concept", "granuloma");
    await page.click("#add-finding");
    await page.waitForSelector('tr[data-review-item][data-kind="finding"][data-verdict="added"][data-concept="Granuloma"]');
    // Something not in the vocabulary is refused with a reason.
    await page.fill("#add-concept", "unicorn horn");
    await page.click("#add-finding");
    assert.match(await page.textContent("#review-message"), /not in the vocabulary/);
    // The case form.
    await page.click("#case-correctness-4");
    await page.click("#case-usefulness-5");
    await page.click("#case-interpretability-3");
    await page.fill("#case-comment", "Spine finding missed; otherwise right.");
    await press(page, "Shift+A");
    assert.equal(await page.getAttribute("#review-case", "data-pending"), "0");

    // Case 2 has the image: shown, with fused findings and their heat maps.
    await press(page, "ArrowRight");
    await showCase(page, 1);
    await page.waitForSelector('#review-image img[src^="blob:"]');
    // The strongest fused finding's heat map is drawn; another one's on request.
    await page.waitForSelector("#review-image #heat-map");
    assert.equal((await page.$$("#review-image #heat-map rect")).length, 49);
    const drawn = await page.getAttribute("#review-image #heat-map", "data-concept");
    const mapped = await page.$$eval('tr[data-review-item][data-kind="finding"]', (rows) =>
      rows.filter((r) => r.querySelector(".show-heat-map")).map((r) => r.dataset.concept)
    );
    assert.ok(mapped.includes(drawn), `${drawn} in ${mapped}`);
    const other = mapped.find((c) => c !== drawn);
    if (other) {
      await page.click(`tr[data-review-item][data-kind="finding"][data-concept="${other}"] .show-heat-map`);
      assert.equal(await page.getAttribute("#review-image #heat-map", "data-concept"), other);
    }
    await press(page, "Shift+A");

    // Case 3: reject the first item, then reload in the middle of the session.
    await press(page, "n");
    await showCase(page, 2);
    await press(page, "r");
    await page.waitForSelector('tr[data-review-item][data-index="0"][data-verdict="rejected"]');
    const savedBefore = await saved(page);
    await page.waitForFunction((n) => Number(document.querySelector("#review").dataset.saved) >= n, savedBefore);
    await page.reload();
    await page.waitForSelector('#review[data-stage="cases"]');
    await showCase(page, 2);
    assert.equal((await items(page))[0].verdict, "rejected", "the judgment survived the reload");
    await press(page, "ArrowLeft");
    await press(page, "ArrowLeft");
    await showCase(page, 0);
    assert.equal(await page.getAttribute("#review-case", "data-pending"), "0");
    assert.ok(await page.isChecked("#case-correctness-4"));
    assert.equal(await page.inputValue("#case-comment"), "Spine finding missed; otherwise right.");
    await page.waitForSelector('tr[data-review-item][data-verdict="added"][data-concept="Granuloma"]');

    // Finish the rest: case 3 accepted, case 4 accepted, case 5 half judged.
    await press(page, "p"); // already at the first case: stays
    await showCase(page, 0);
    for (const i of [1, 2]) {
      await press(page, "ArrowRight");
      await showCase(page, i);
    }
    await press(page, "Shift+A");
    await press(page, "ArrowRight");
    await showCase(page, 3);
    await press(page, "Shift+A");
    await press(page, "ArrowRight");
    await showCase(page, 4);
    await press(page, "a");
    await page.click("#review-finish");
    await page.waitForSelector('#review[data-stage="summary"]');
    await page.click("#session-usefulness-4");
    await page.fill("#session-comment", "Useful; assertion errors were rare.");

    const agreement = await page.$eval("#review-agreement", (e) => ({ ...e.dataset }));
    assert.equal(agreement.added, "2");
    assert.equal(agreement.corrected, "2");
    assert.equal(agreement.correctedQualifiers, "1");
    // The qualifier pairs are scored: the model's "right" was wrong, "small" right.
    const pairs = await page.$eval('tr[data-summary-row][data-level="overall"][data-kind="qualifier"]', (e) => ({ ...e.dataset }));
    assert.ok(Number(pairs.precision) > 0 && Number(pairs.precision) < 1, JSON.stringify(pairs));
    assert.ok(Number(agreement.rejected) >= 2, JSON.stringify(agreement));
    assert.ok(Number(agreement.pending) >= 1, "case 5 is left half judged");
    const overall = await page.$eval('tr[data-summary-row][data-level="overall"][data-kind="entity"]', (e) => ({ ...e.dataset }));
    assert.ok(Number(overall.precision) > 0 && Number(overall.precision) < 1, JSON.stringify(overall));

    // The exports: the whole session with the model version, and a CSV summary.
    const json = await download(page, "#review-export-json");
    assert.match(json.name, /^integrabner-review-\d{4}-\d\d-\d\d\.json$/);
    exported = JSON.parse(json.text);
    assert.equal(exported.format, "integrabner-review-v1");
    assert.equal(exported.model.bundle, bundle.version);
    assert.equal(exported.model.vocabulary, bundle.vocabulary_version);
    assert.deepEqual(exported.cases.map((c) => c.id), CASES.map((c) => c.id));
    const c1 = exported.cases[0];
    assert.ok(c1.items.every((i) => i.verdict !== "pending"));
    const corrected = c1.items.find((i) => i.verdict === "corrected" && i.kind === "entity");
    assert.deepEqual([corrected.text, corrected.reading.assertion, corrected.correction.assertion], ["pneumothorax", "absent", "uncertain"]);
    const requalified = c1.items.find((i) => i.verdict === "corrected" && i.kind === "finding");
    assert.deepEqual([requalified.text, requalified.correction.qualifiers], ["Pleural Effusion", ["left", "small"]]);
    assert.ok(requalified.reading.qualifiers.includes("right"), JSON.stringify(requalified.reading));
    const addedEntity = c1.items.find((i) => i.verdict === "added" && i.kind === "entity");
    assert.equal(addedEntity.text, "Degenerative changes");
    assert.equal(Array.from(c1.text).slice(...addedEntity.span).join(""), "Degenerative changes");
    assert.deepEqual([addedEntity.reading.type, addedEntity.reading.concept], ["finding", null]);
    assert.deepEqual(c1.form, { correctness: 4, usefulness: 5, interpretability: 3, comment: "Spine finding missed; otherwise right." });
    assert.ok(c1.time_ms > 0);
    assert.equal(exported.cases[2].items[0].verdict, "rejected");
    assert.equal(exported.cases[1].image, "00000061_012.png");
    assert.ok(exported.cases[1].prediction.heat_maps.length > 0);
    assert.equal(exported.form.usefulness, 4);
    assert.equal(exported.summary.agreement.added, 2);
    assert.equal(String(exported.summary.agreement.rejected), agreement.rejected);

    const csv = await download(page, "#review-export-csv");
    const lines = csv.text.trim().split("\n");
    assert.ok(lines[0].startsWith("level,kind,name,true_positives,false_positives,false_negatives,precision,recall,seconds"));
    assert.ok(lines.some((l) => l.startsWith("overall,entity,all,")));
    assert.ok(lines.some((l) => l.startsWith("concept,finding,Granuloma,0,0,1,")), csv.text);
    assert.ok(lines.some((l) => /^case,,case-1,.*,4,5,3,Spine finding missed; otherwise right\.$/.test(l)), csv.text);
    assert.ok(lines.some((l) => /^session,.*,,4,,Useful; assertion errors were rare\.$/.test(l)), csv.text);

    assertPrivate(server, requests, CASE_DATA, { blobs: true });
    assert.deepEqual(problems, []);
  });

  // Another machine: a fresh profile imports the export (with the image).
  const second = await openPage(browser);
  t.after(() => second.context.close());
  await withScreenshot(second.page, `${t.name} import`, async () => {
    const p = second.page;
    await p.goto(server.origin + "/#review");
    await p.waitForSelector('#review[data-stage="start"]');
    await p.setInputFiles("#review-files", [
      // As if analysed by an older bundle: the page says so.
      {
        name: "session.json",
        mimeType: "application/json",
        buffer: Buffer.from(JSON.stringify({ ...exported, model: { ...exported.model, bundle: "0000older" } })),
      },
      await IMAGE(),
    ]);
    await p.waitForSelector('#review[data-stage="summary"]');
    await waitReady(p);
    assert.match(await p.textContent("#review-bundle"), /analysed with model bundle 0000older .* this page has bundle \w+/);
    const again = await p.$eval("#review-agreement", (e) => ({ ...e.dataset }));
    assert.equal(again.added, "2");
    assert.equal(String(exported.summary.agreement.accepted), again.accepted);
    await p.click("#review-back");
    await showCase(p, 4);
    await press(p, "ArrowLeft");
    await press(p, "ArrowLeft");
    await press(p, "ArrowLeft");
    await showCase(p, 1);
    await p.waitForSelector('#review-image img[src^="blob:"]');
    assertPrivate(server, second.requests, CASE_DATA, { blobs: true });
    assert.deepEqual(second.problems, []);
  });
});

test("a case file that cannot be read is refused with a reason", async (t) => {
  const s = await session(t, browser);
  const { server, page } = s;
  await withScreenshot(page, t.name, async () => {
    await page.goto(server.origin + "/#review");
    await waitReady(page);
    await page.waitForSelector('#review[data-stage="start"]');
    for (const [file, message] of [
      [{ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello") }, /not a case file/],
      [{ name: "cases.csv", mimeType: "text/csv", buffer: Buffer.from("id,findings\n1,x\n") }, /needs a "text"/],
      [{ name: "old.json", mimeType: "application/json", buffer: Buffer.from('{"id":"x","findings":[]}') }, /not an IntegraBNER review session/],
    ]) {
      await page.setInputFiles("#review-files", [file]);
      await page.waitForFunction((re) => new RegExp(re).test(document.querySelector("#review-message")?.textContent), message.source);
      assert.equal(await page.getAttribute("#review", "data-stage"), "start");
    }
    assert.deepEqual(s.problems, []);
  });
});

test("the same session open in two tabs never loses a judgment whose save was confirmed", async (t) => {
  const s = await session(t, browser);
  const { server, page, context } = s;
  await withScreenshot(page, t.name, async () => {
    await startSession(page, server);

    // A second tab opens the same session and judges the first item: saved.
    const second = await context.newPage();
    await second.goto(server.origin + "/#review");
    await second.waitForSelector('#review[data-stage="cases"]', { timeout: 120_000 });
    await showCase(second, 0);
    const before = await saved(second);
    await press(second, "a");
    await second.waitForFunction((n) => Number(document.querySelector("#review").dataset.saved) > n, before);

    // The first tab, opened earlier, no longer holds the session: its change
    // is not saved over the second tab's, and it says so.
    await press(page, "r");
    await page.waitForSelector("#review[data-held-elsewhere]");
    assert.match(await page.textContent("#review-message"), /open in another tab.*not saved.*Reload this tab/s);
    await press(page, "a");
    assert.match(await page.textContent("#review-message"), /open in another tab/);

    // What is stored is the second tab's judgment, as both tabs see on reload.
    for (const tab of [second, page]) {
      await tab.reload();
      await tab.waitForSelector('#review[data-stage="cases"]');
      await showCase(tab, 0);
      assert.equal((await items(tab))[0].verdict, "accepted");
    }
    // The tab reloaded last holds the session again; the other one does not.
    await press(page, "r");
    await page.waitForSelector('tr[data-review-item][data-index="0"][data-verdict="rejected"]');
    assert.equal(await page.getAttribute("#review", "data-held-elsewhere"), null);
    await press(second, "j");
    await press(second, "r");
    await second.waitForSelector("#review[data-held-elsewhere]");
    assert.deepEqual(s.problems, []);
  });
});
