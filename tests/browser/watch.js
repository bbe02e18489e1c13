// Plays a stream from the relay's status page in Debian's Chromium, as a person would: the
// card's "watch" button, then "watch over WebSocket".
//
//   node watch.js URL STREAM SCREENSHOT PROTOCOL...
//
// For each PROTOCOL (http-flv, ws-flv) in turn: clicks that button on the card of STREAM
// ("app/name"), waits until the <video> plays, then until its currentTime has advanced by
// at least 3 s, and prints `played protocol=P from=T0 to=T1` (the test checks the relay's
// API on that line). Saves a screenshot of the page playing after the last one. Exits
// non-zero, with the viewer's state and the page's console, if playback does not advance.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, stream, screenshot, ...protocols] = process.argv.slice(2);
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--autoplay-policy=no-user-gesture-required"];
const ADVANCE_S = 3;

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "rtmp-edge-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.RTMP_EDGE_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport: { width: 800, height: 900 },
  });
  let failed = false;
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on("console", (message) => console.error(`page console: ${message.text()}`));
    page.on("pageerror", (error) => { console.error(`page error: ${error}`); failed = true; });
    await page.goto(url);
    const card = page.locator(`article.stream[data-stream="${stream}"]`);
    for (const protocol of protocols) {
      await card.locator(`button.watch[data-protocol="${protocol}"]`).click({ timeout: 60000 });
      await page.waitForFunction((p) => document.getElementById("viewer").dataset.protocol === p, protocol);
      try {
        // Playing: time moves. Then it must move on by ADVANCE_S more.
        const from = await page.waitForFunction(() => {
          const video = document.getElementById("video");
          return video.currentTime > 0 && !video.paused ? video.currentTime : false;
        }, null, { timeout: 30000, polling: 100 }).then((handle) => handle.jsonValue());
        const to = await page.waitForFunction((start) => {
          const time = document.getElementById("video").currentTime;
          return time >= start + 3 ? time : false;
        }, from, { timeout: 30000, polling: 100 }).then((handle) => handle.jsonValue());
        console.log(`played protocol=${protocol} from=${from.toFixed(2)} to=${to.toFixed(2)}`);
      } catch (error) {
        const state = await page.locator("#viewer-state").innerText();
        const time = await page.evaluate(() => document.getElementById("video").currentTime);
        console.error(`${protocol}: playback did not advance ${ADVANCE_S} s (currentTime ${time}); viewer says: ${state}`);
        throw error;
      }
    }
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`screenshot ${screenshot}`);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  if (failed) process.exit(1);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
