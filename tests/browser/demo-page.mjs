// Drives the demo page (/ui) in headless Chromium the way a reader would: scores an MRI, a DICOM
// file with its explanation, a file that is not an image, then checks keyboard access and a
// phone-sized screen.
//
//   node tests/browser/demo-page.mjs BASE_URL --mri FILE --expect LABEL --dicom FILE \
//        --not-image FILE --artefacts DIR [--api-key KEY]
//
// Prints a JSON summary on stdout and exits 0 when every step passes; otherwise prints which step
// failed and why on stderr and exits 1 (2 for a wrong command line). Fails on any console error,
// CSP violation, uncaught exception, failed request, or request to another origin. Uses Debian's
// chromium (CHROMIUM, default /usr/bin/chromium), like open-page.mjs.
import { launchChromium } from "./chromium.mjs";
import { mkdirSync } from "node:fs";
import path from "node:path";

const USAGE =
  "usage: node demo-page.mjs BASE_URL --mri FILE --expect LABEL --dicom FILE --not-image FILE --artefacts DIR [--api-key KEY]";

function parseArgs(argv) {
  const options = { base: null };
  const names = { "--mri": "mri", "--expect": "expect", "--dicom": "dicom", "--not-image": "notImage", "--artefacts": "artefacts", "--api-key": "apiKey" };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      process.exit(0);
    }
    if (arg in names) {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      options[names[arg]] = argv[++i];
    } else if (!arg.startsWith("--") && options.base === null) {
      options.base = arg;
    } else {
      usage(`unexpected argument ${arg}`);
    }
  }
  for (const [flag, key] of Object.entries(names)) {
    if (key !== "apiKey" && !options[key]) usage(`${flag} is required`);
  }
  if (!options.base || !/^https?:\/\//.test(options.base)) usage("BASE_URL must be an http(s) URL");
  options.base = options.base.replace(/\/+$/, "");
  return options;
}

function usage(problem) {
  console.error(`${problem}\n${USAGE}`);
  process.exit(2);
}

const options = parseArgs(process.argv.slice(2));
const origin = new URL(options.base).origin;
const uiUrl = `${options.base}/ui`;
mkdirSync(options.artefacts, { recursive: true });

class StepFailure extends Error {}

let currentStep = "setup";
const summary = { url: uiUrl, steps: {} };
// Console "Failed to load resource" errors that a step expects (the not-image upload answers 4xx).
let expectedHttpErrors = null;

/** Records everything on `page` that should never happen; `problems` collects it. */
function watch(page, problems) {
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    const at = message.location()?.url || "";
    if (expectedHttpErrors && expectedHttpErrors.test(text) && at && new URL(at).pathname === "/score") return;
    problems.push(`[${currentStep}] console error: ${text}${at ? ` (${at})` : ""}`);
  });
  page.on("pageerror", (error) => problems.push(`[${currentStep}] uncaught: ${error.message}`));
  page.on("requestfailed", (request) =>
    problems.push(`[${currentStep}] request failed: ${request.method()} ${request.url()} (${request.failure()?.errorText})`),
  );
  page.on("request", (request) => {
    const url = request.url();
    if (url.startsWith("data:") || url.startsWith("blob:")) return;
    if (new URL(url).origin !== origin) problems.push(`[${currentStep}] request to another origin: ${url}`);
  });
  page.on("response", (response) => {
    const url = new URL(response.url());
    if (url.origin === origin && url.pathname.startsWith("/ui") && response.status() >= 400) {
      problems.push(`[${currentStep}] HTTP ${response.status()} for ${response.url()}`);
    }
  });
}

// Reports CSP violations as console errors (Chromium also logs its own), before the page runs.
const CSP_LISTENER = () => {
  document.addEventListener("securitypolicyviolation", (event) => {
    console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"} (${event.sourceFile || ""}:${event.lineNumber || ""})`);
  });
};

async function step(name, problems, body) {
  currentStep = name;
  const started = Date.now();
  let result;
  try {
    result = await body();
  } catch (error) {
    if (error instanceof StepFailure) throw new StepFailure(`step "${name}" failed: ${error.message}`);
    throw new StepFailure(`step "${name}" failed: ${error.message.split("\n")[0]}`);
  }
  // Let late console messages of the step arrive.
  await new Promise((resolve) => setTimeout(resolve, 200));
  if (problems.length) throw new StepFailure(`step "${name}" failed:\n  ${problems.join("\n  ")}`);
  summary.steps[name] = { ms: Date.now() - started, ...result };
}

function fail(message) {
  throw new StepFailure(message);
}

/** Waits for `predicate` (run in the page with `arg`); on timeout fails with `describe()`'s text. */
async function waitInPage(page, predicate, arg, timeoutMs, describe) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 250 });
  } catch (error) {
    if (!/Timeout/i.test(error.message)) throw error;
    fail(await describe());
  }
}

/** What the page shows now, to explain a failure. */
async function pageState(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id)?.textContent.trim() ?? "(missing)";
    return `label "${text("label")}", confidence "${text("confidence")}", status "${text("status")}", message "${text("message")}"`;
  });
}

async function openUi(page) {
  const response = await page.goto(uiUrl, { waitUntil: "load" });
  if (!response) fail(`no response for ${uiUrl}`);
  if (!response.ok()) fail(`HTTP ${response.status()} for ${uiUrl}`);
  const csp = response.headers()["content-security-policy"];
  if (!csp) fail(`${uiUrl} has no Content-Security-Policy header`);
  return csp;
}

const browser = await launchChromium();

let exitCode = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  await context.addInitScript(CSP_LISTENER);
  const page = await context.newPage();
  const problems = [];
  watch(page, problems);

  await step("1 open", problems, async () => {
    const csp = await openUi(page);
    for (const id of ["file", "label", "confidence", "bars", "explain", "overlay", "preview", "message", "frame", "api-key"]) {
      if ((await page.locator(`#${id}`).count()) !== 1) fail(`the page has no #${id}`);
    }
    const title = await page.title();
    return { title, csp };
  });

  await step("2 api key", problems, async () => {
    const visible = await page.locator("#api-key").isVisible();
    if (!options.apiKey) return { given: false, fieldVisible: visible };
    if (!visible) fail("--api-key was given but the page shows no #api-key field (is data-api-key=\"required\" rendered?)");
    await page.fill("#api-key", options.apiKey);
    return { given: true, fieldVisible: true };
  });

  await step("3 mri", problems, async () => {
    await page.setInputFiles("#file", options.mri);
    // Wait for an answer (a fresh label or an error), then compare: a wrong label fails at once.
    await waitInPage(
      page,
      () =>
        document.getElementById("message").textContent.trim() !== "" ||
        (document.getElementById("label").textContent.trim() !== "" &&
          !document.getElementById("result").hasAttribute("data-stale") &&
          document.getElementById("result").getAttribute("aria-busy") !== "true"),
      null,
      60_000,
      async () => `no result within 60 s of choosing ${path.basename(options.mri)}; the page shows ${await pageState(page)}`,
    );
    const shown = (await page.textContent("#label")).trim();
    if (shown !== options.expect) fail(`#label shows "${shown}", expected "${options.expect}"; the page shows ${await pageState(page)}`);
    const bars = await page.$$eval("#bars [role=meter], #bars meter", (meters) =>
      meters.map((m) => ({
        name: m.getAttribute("aria-label") || m.closest(".bar-row")?.querySelector(".bar-name")?.textContent.trim() || "",
        value: Number(m.getAttribute("aria-valuenow") ?? m.value),
        text: m.closest(".bar-row")?.querySelector(".bar-value")?.textContent.trim() || "",
        width: m.getBoundingClientRect().width,
      })),
    );
    if (bars.length !== 4) fail(`expected 4 bars in #bars, found ${bars.length}`);
    for (const bar of bars) {
      if (!Number.isFinite(bar.value) || bar.value < 0 || bar.value > 100) fail(`bar "${bar.name}" has aria-valuenow ${bar.value}`);
      if (!/^\d+(\.\d+)?%$/.test(bar.text)) fail(`bar "${bar.name}" shows "${bar.text}", not a percentage`);
      if (!(bar.width > 0)) fail(`bar "${bar.name}" is not visible`);
    }
    const sum = bars.reduce((total, bar) => total + bar.value, 0);
    const shownSum = bars.reduce((total, bar) => total + Number.parseFloat(bar.text), 0);
    if (Math.abs(sum - 100) > 1 || Math.abs(shownSum - 100) > 1) fail(`the bars' percentages sum to ${sum.toFixed(2)} (shown: ${shownSum.toFixed(1)}), not ~100`);
    const confidence = (await page.textContent("#confidence")).trim();
    if (!/\d/.test(confidence)) fail(`#confidence shows "${confidence}"`);
    const preview = await page.evaluate(() => {
      const img = document.getElementById("preview");
      return { visible: !img.hidden && img.getBoundingClientRect().width > 0, loaded: img.complete && img.naturalWidth > 0 };
    });
    if (!preview.visible || !preview.loaded) fail(`the MRI preview is not shown (${JSON.stringify(preview)})`);
    return { label: options.expect, confidence, bars: bars.map(({ name, text }) => `${name} ${text}`), sum: Number(sum.toFixed(2)) };
  });

  await step("4 dicom + explanation", problems, async () => {
    await page.setInputFiles("#file", options.dicom);
    await waitInPage(
      page,
      () =>
        document.getElementById("message").textContent.trim() !== "" ||
        (document.getElementById("label").textContent.trim() !== "" &&
          !document.getElementById("result").hasAttribute("data-stale") &&
          document.getElementById("result").getAttribute("aria-busy") !== "true" &&
          /frame/i.test(document.body.innerText)),
      null,
      60_000,
      async () => `no DICOM result mentioning "frame" within 60 s; the page shows ${await pageState(page)}`,
    );
    const dicomError = (await page.textContent("#message")).trim();
    if (dicomError) fail(`the DICOM file ${path.basename(options.dicom)} was refused: "${dicomError}"`);
    const label = (await page.textContent("#label")).trim();
    const frameText = await page.evaluate(() => (document.body.innerText.match(/[^\n]*frame \d+ of \d+[^\n]*/i) || document.body.innerText.match(/[^\n]*frame[^\n]*/i))[0].trim());
    const frameOptions = await page.$$eval("#frame option", (options) => options.length);
    if (frameOptions > 1) {
      // Several frames: the selector must switch the prediction shown.
      if (!(await page.isVisible("#frame"))) fail(`the result has ${frameOptions} frames but #frame is not visible`);
      await page.selectOption("#frame", { index: 1 });
      await waitInPage(
        page,
        () => /frame 2 of/i.test(document.getElementById("result").innerText),
        null,
        5_000,
        async () => `choosing frame 2 in #frame did not show "frame 2 of …"; the page shows ${await pageState(page)}`,
      );
      await page.selectOption("#frame", { index: 0 });
    }

    if (await page.isDisabled("#explain")) fail("#explain is disabled after a result");
    const toggled = Date.now();
    await page.check("#explain");
    const busy = await page.evaluate(() => document.querySelector("[aria-busy=true]") !== null);
    await waitInPage(
      page,
      () => {
        if (document.getElementById("message").textContent.trim() !== "") return true;
        const img = document.getElementById("overlay");
        const box = img.getBoundingClientRect();
        return !img.hidden && box.width > 0 && box.height > 0 && (img.getAttribute("src") || "").startsWith("data:image/png") && img.complete && img.naturalWidth > 0;
      },
      null,
      180_000,
      async () => `#overlay did not show a decoded data:image/png within 180 s of turning #explain on; the page shows ${await pageState(page)}`,
    );
    const explainMs = Date.now() - toggled;
    const explainError = (await page.textContent("#message")).trim();
    if (explainError) fail(`turning #explain on showed an error instead of the overlay: "${explainError}"`);
    const overlay = await page.evaluate(() => {
      const img = document.getElementById("overlay");
      return { naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight };
    });
    const screenshot = path.join(options.artefacts, "demo-page-explained.png");
    await page.screenshot({ path: screenshot, fullPage: true });

    await page.uncheck("#explain");
    await waitInPage(
      page,
      () => {
        const img = document.getElementById("overlay");
        return img.hidden || img.getBoundingClientRect().width === 0;
      },
      null,
      5_000,
      async () => "#overlay is still visible after turning #explain off",
    );
    return { label, frameText, frameOptions, busyWhileExplaining: busy, explainMs, overlay, screenshot };
  });

  await step("5 not an image", problems, async () => {
    expectedHttpErrors = /^Failed to load resource: the server responded with a status of 4\d\d/;
    await page.setInputFiles("#file", options.notImage);
    await waitInPage(
      page,
      () => document.getElementById("message").textContent.trim() !== "",
      null,
      30_000,
      async () => `#message stayed empty after uploading ${path.basename(options.notImage)}; the page shows ${await pageState(page)}`,
    );
    const message = (await page.textContent("#message")).trim();
    if (/undefined|\[object|null|NaN/i.test(message)) fail(`#message is not a friendly text: "${message}"`);
    if (message.length < 10) fail(`#message is too short to help: "${message}"`);
    const role = await page.getAttribute("#message", "role");
    if (role !== "alert") fail(`#message has role "${role}", not "alert"`);
    const previous = await page.evaluate(() => {
      const result = document.getElementById("result");
      const label = document.getElementById("label");
      const visible = label.getBoundingClientRect().width > 0 && label.textContent.trim() !== "";
      return { stale: result.hasAttribute("data-stale"), labelShown: visible, label: label.textContent.trim() };
    });
    if (previous.labelShown && !previous.stale) fail(`the previous result ("${previous.label}") is still shown as current after the error`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expectedHttpErrors = null;
    return { message, previousResult: previous.labelShown ? "marked stale" : "cleared" };
  });

  await step("6 keyboard", problems, async () => {
    await page.reload({ waitUntil: "load" });
    let presses = 0;
    let active = "";
    while (presses < 10) {
      await page.keyboard.press("Tab");
      presses += 1;
      active = await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName || "");
      if (active === "file") break;
    }
    if (active !== "file") fail(`#file was not reached with 10 Tab presses (focus ended on "${active}")`);
    // The drop zone shows a focus ring while the hidden input has keyboard focus.
    const ring = await page.evaluate(() => {
      const style = getComputedStyle(document.getElementById("drop"));
      return { style: style.outlineStyle, width: style.outlineWidth };
    });
    if (ring.style === "none" || ring.width === "0px") fail(`the focused drop zone shows no focus outline (${JSON.stringify(ring)})`);
    // Space on the focused input opens the file chooser (Playwright intercepts the dialog).
    const chooser = page.waitForEvent("filechooser", { timeout: 15_000 }).catch(() => null);
    await page.keyboard.press("Space");
    if (!(await chooser)) fail("pressing Space on #file did not open a file chooser");
    return { presses, outline: `${ring.width} ${ring.style}`, spaceOpensChooser: true };
  });

  await step("7 phone", problems, async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await phone.addInitScript(CSP_LISTENER);
    const phonePage = await phone.newPage();
    watch(phonePage, problems);
    try {
      await openUi(phonePage);
      if (options.apiKey) await phonePage.fill("#api-key", options.apiKey); // a new tab: its own sessionStorage
      await phonePage.setInputFiles("#file", options.mri);
      await waitInPage(
        phonePage,
        () => document.getElementById("label").textContent.trim() !== "",
        null,
        60_000,
        async () => `no result on the phone within 60 s; the page shows ${await pageState(phonePage)}`,
      );
      const layout = await phonePage.evaluate(() => {
        const height = (selector) => {
          const element = document.querySelector(selector);
          return element && element.getBoundingClientRect().height;
        };
        return {
          scrollWidth: document.documentElement.scrollWidth,
          dropHeight: height("#drop"),
          toggleHeight: height("label[for=explain]"),
        };
      });
      if (layout.scrollWidth > 390) fail(`the page scrolls sideways at 390 px: scrollWidth ${layout.scrollWidth}`);
      if (layout.dropHeight < 44 || layout.toggleHeight < 44) fail(`tap targets under 44 px: ${JSON.stringify(layout)}`);
      const screenshot = path.join(options.artefacts, "demo-page-phone.png");
      await phonePage.screenshot({ path: screenshot, fullPage: true });
      return { ...layout, screenshot };
    } finally {
      await phone.close();
    }
  });

  summary.passed = true;
  console.log(JSON.stringify(summary, null, 2));
} catch (error) {
  exitCode = 1;
  if (error instanceof StepFailure) console.error(`FAIL ${error.message}`);
  else console.error(`FAIL [${currentStep}] ${error.stack || error}`);
} finally {
  await browser.close();
}
process.exit(exitCode);
