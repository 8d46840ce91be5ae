// Opens a page in headless Chromium and reports what a reader would meet: console errors,
// uncaught exceptions, failed or external requests, broken images, and the page's shape.
//
//   node tests/browser/open-page.mjs PAGE [--screenshot FILE]
//
// PAGE is a file path or an http(s) URL. Prints one JSON object on stdout; exits 1 when the page
// logged an error, threw, failed a request, fetched anything from another origin, or has an image
// that did not load. Uses Debian's chromium (CHROMIUM, default /usr/bin/chromium): Playwright's
// own browser download is not reachable everywhere.
import { launchChromium } from "./chromium.mjs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const args = process.argv.slice(2);
const target = args[0];
if (!target || target === "--help") {
  console.error("usage: node open-page.mjs PAGE [--screenshot FILE]");
  process.exit(2);
}
const screenshotAt = args.indexOf("--screenshot");
const screenshot = screenshotAt >= 0 ? args[screenshotAt + 1] : null;
const url = /^https?:\/\//.test(target) ? target : pathToFileURL(path.resolve(target)).href;
const origin = new URL(url).origin;

const browser = await launchChromium();
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
  page.on("request", (request) => {
    const requested = request.url();
    const local = requested.startsWith("data:") || requested.startsWith("blob:") || new URL(requested).origin === origin;
    if (!local) problems.push(`external request: ${requested}`);
  });
  const response = await page.goto(url, { waitUntil: "load" });
  if (response && !response.ok() && !url.startsWith("file:")) problems.push(`HTTP ${response.status()} for ${url}`);
  const shape = await page.evaluate(() => ({
    title: document.title,
    headings: [...document.querySelectorAll("h1, h2")].map((h) => h.textContent.trim()),
    svgs: document.querySelectorAll("svg").length,
    svgLabels: [...document.querySelectorAll("svg[aria-label]")].map((s) => s.getAttribute("aria-label")),
    images: document.images.length,
    brokenImages: [...document.images].filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.alt),
    text: document.body.innerText,
  }));
  for (const alt of shape.brokenImages) problems.push(`image did not load: ${alt}`);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ url, ...shape, problems }, null, 2));
} finally {
  await browser.close();
}
process.exit(problems.length ? 1 : 0);
