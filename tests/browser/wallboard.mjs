// Loads the wallboard in Debian's headless chromium and prints what it shows
// as JSON (every number from its data-* attributes), after saving a
// screenshot. Usage: node wallboard.mjs URL SCREENSHOT.png [MIN_GENERATED_AT]
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, screenshot, minGenerated = "0"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "cx-chromium-"));
// A fresh profile directory each run (playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1920, height: 1080 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = browser.pages()[0] || (await browser.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(
    (min) => document.body.dataset.ready === "1" && Number(document.body.dataset.generated) >= min,
    Number(minGenerated), { timeout: 60000 });
  await page.screenshot({ path: screenshot });
  const shown = await page.evaluate(() => {
    const num = (s) => (s === "" || s === undefined ? null : Number(s));
    const read = (sel) => [...document.querySelectorAll(sel)].map((e) => ({
      metric: e.dataset.metric, window: e.dataset.window, channel: e.dataset.channel,
      team: e.dataset.team, value: num(e.dataset.value), n: num(e.dataset.n), text: e.textContent,
      lower: num(e.dataset.lower), upper: num(e.dataset.upper),
    }));
    return {
      generated_at: Number(document.body.dataset.generated),
      tiles: read("#tiles .value[data-window]"),
      sparklines: [...document.querySelectorAll("#tiles svg.spark")].map((s) => ({
        metric: s.dataset.metric, points: Number(s.dataset.points), lines: s.querySelectorAll("polyline").length })),
      cells: read("#heat td[data-channel]"),
      intervals: read("#tiles .ci[data-window]"),
      bands: [...document.querySelectorAll("#tiles svg.spark[data-band]")].map((s) => ({
        metric: s.dataset.metric, points: Number(s.dataset.band) })),
      sla: document.getElementById("sla").hidden ? null : Object.fromEntries(
        [...document.querySelectorAll("#sla [data-sla]")].map((e) => [e.dataset.sla, num(e.dataset.value)])),
      alerts: [...document.querySelectorAll("#alerts li[data-alertname]")].map((e) => ({
        alertname: e.dataset.alertname, channel: e.dataset.channel, team: e.dataset.team })),
      events: num(document.getElementById("events").dataset.value),
      workers_up: num(document.getElementById("workers").dataset.up),
      banner: document.getElementById("banner").hidden ? "" : document.getElementById("banner").textContent,
    };
  });
  shown.errors = errors;
  console.log(JSON.stringify(shown));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
