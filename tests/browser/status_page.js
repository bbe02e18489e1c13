// Loads the relay's status page in Debian's Chromium and reports what a person would see.
//
//   node status_page.js URL STREAM SCREENSHOT COUNT...
//
// For each COUNT in turn, waits until the card of STREAM ("app/name") shows that many
// players, then prints `seen heading="..." players=COUNT` (the test starts the next player
// on that line). Finally saves a screenshot. Exits non-zero, with the page's text, if a count
// does not appear within 60 s.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, stream, screenshot, ...counts] = process.argv.slice(2);
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"];

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "rtmp-edge-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.RTMP_EDGE_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport: { width: 390, height: 844 }, // a phone
  });
  let failed = false;
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on("console", (message) => console.error(`page console: ${message.text()}`));
    page.on("pageerror", (error) => { console.error(`page error: ${error}`); failed = true; });
    await page.goto(url);
    const card = page.locator(`article.stream[data-stream="${stream}"]`);
    for (const count of counts) {
      try {
        await card.locator("dd.players", { hasText: new RegExp(`^${count}$`) }).waitFor({ timeout: 60000 });
      } catch (error) {
        console.error(`players=${count} did not appear; the page shows:\n${await page.locator("body").innerText()}`);
        throw error;
      }
      // What a person reads: the heading's text and the players figure, as shown.
      const heading = await card.locator("h2").innerText();
      const players = await card.locator("dd.players").innerText();
      console.log(`seen heading=${JSON.stringify(heading)} players=${players}`);
    }
    // A sparkline with a few points makes a more useful picture.
    await page.waitForFunction(() => {
      const line = document.querySelector("svg.spark polyline");
      return line && line.getAttribute("points").split(" ").length >= 5;
    }, null, { timeout: 30000 });
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
