// The scorer's demo page (/ui): choose or drop an MRI image, POST it to /score, show the
// prediction, and on request the occlusion heat map (/score?explain=true). Plain ES2020, no
// framework, no build step. The page's CSP forbids inline scripts and styles, so every element is
// in index.html and every look in app.css; this file only sets text, attributes and classes (and
// the bar widths through the CSSOM, which the CSP allows).
"use strict";

(() => {
  const KEY_STORAGE = "scorer-demo-api-key";
  const DICOM_PLACEHOLDER = "DICOM file — the preview appears with the explanation";
  const OTHER_PLACEHOLDER = "No preview for this file type";

  const $ = (id) => document.getElementById(id);
  const ui = {
    keyRow: $("key-row"),
    key: $("api-key"),
    drop: $("drop"),
    file: $("file"),
    fileName: $("file-name"),
    status: $("status"),
    message: $("message"),
    workspace: $("workspace"),
    stage: $("stage"),
    preview: $("preview"),
    overlay: $("overlay"),
    placeholder: $("placeholder"),
    caption: $("stage-caption"),
    result: $("result"),
    frameRow: $("frame-row"),
    frame: $("frame"),
    frameInfo: $("frame-info"),
    label: $("label"),
    confidence: $("confidence"),
    bars: $("bars"),
    explain: $("explain"),
    model: $("model"),
  };

  const state = {
    file: null, // the File being shown
    isDicom: false,
    objectUrl: null, // preview of a JPEG/PNG
    result: null, // { predictions, model } of the last successful answer for `file`
    frameIndex: 0,
    inFlight: null, // { controller, explain }
    generation: 0, // bumps on every new file, so late answers for an old file are ignored
    elapsedTimer: 0,
  };

  // ---- API key ---------------------------------------------------------------------------------

  function keyRequired() {
    const marker = (el) => el && el.getAttribute("data-api-key") === "required";
    return marker(document.documentElement) || marker(document.body);
  }

  function showKeyField() {
    ui.keyRow.hidden = false;
  }

  function readStoredKey() {
    try {
      return window.sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return ""; // storage disabled: the field still works for this page
    }
  }

  function storeKey(value) {
    try {
      if (value) window.sessionStorage.setItem(KEY_STORAGE, value);
      else window.sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // storage disabled: nothing to keep
    }
  }

  // ---- status, busy and errors -----------------------------------------------------------------

  function setStatus(text, busy) {
    window.clearInterval(state.elapsedTimer);
    state.elapsedTimer = 0;
    ui.status.textContent = text;
    ui.status.classList.toggle("busy", Boolean(busy));
    ui.result.setAttribute("aria-busy", busy ? "true" : "false");
    ui.drop.setAttribute("aria-busy", busy ? "true" : "false");
    if (busy === "slow") {
      // A counter for the slow explanation; hidden from screen readers so the live region is
      // announced once, not every second.
      const counter = document.createElement("span");
      counter.className = "elapsed";
      counter.setAttribute("aria-hidden", "true");
      ui.status.append(" ", counter);
      const started = Date.now();
      state.elapsedTimer = window.setInterval(() => {
        counter.textContent = `${Math.round((Date.now() - started) / 1000)} s`;
      }, 1000);
    }
  }

  function showError(text) {
    ui.message.textContent = text;
  }

  function clearError() {
    ui.message.textContent = "";
  }

  /** The server's own message, tidied for people: a string, without the "image 0:" prefix. */
  function serverDetail(body) {
    if (!body || typeof body.message !== "string") return "";
    let detail = body.message.trim().replace(/^image \d+:\s*/i, "");
    if (detail.length > 240) detail = `${detail.slice(0, 237)}…`;
    return detail;
  }

  function withDetail(sentence, detail) {
    return detail ? `${sentence}: ${detail}` : `${sentence}.`;
  }

  function retryPhrase(retryAfter) {
    const seconds = Number.parseInt(retryAfter || "", 10);
    if (Number.isFinite(seconds) && seconds > 0) {
      return `Please try again in ${seconds} second${seconds === 1 ? "" : "s"}.`;
    }
    return "Please try again in a moment.";
  }

  /** One friendly sentence per HTTP status; never the raw body. */
  function friendlyError(status, body, retryAfter, explain) {
    const detail = serverDetail(body);
    const code = body && typeof body.code === "string" ? body.code : "";
    switch (status) {
      case 400:
        return withDetail("This file could not be read as an image", detail);
      case 401:
        return keyRequired() || !ui.keyRow.hidden
          ? "The API key is missing or wrong. Enter the key above and try again."
          : "This server needs an API key. Enter it above and try again.";
      case 403:
        return "This API key is not allowed to use the scorer.";
      case 404:
        return "The scoring service was not found on this server.";
      case 408:
        return "The upload took too long and the server stopped waiting. Please try again.";
      case 413:
        return withDetail("This file is too large for the server", detail);
      case 415:
        return withDetail("This file type is not supported", detail);
      case 429:
        return `The server is receiving too many requests. ${retryPhrase(retryAfter)}`;
      case 503:
        if (code === "not_ready") return `The model is still loading. ${retryPhrase(retryAfter)}`;
        if (code === "shutting_down") return `The server is restarting. ${retryPhrase(retryAfter)}`;
        return `The server is busy right now. ${retryPhrase(retryAfter)}`;
      case 504:
        return explain
          ? "Working out where the model looked took longer than the server allows. Please try again later."
          : "The server took too long to answer. Please try again.";
      case 500:
        return "The server could not score this image. Please try again later.";
      default:
        if (status >= 500) return `The server ran into a problem (HTTP ${status}). Please try again later.`;
        return withDetail(`The server refused the request (HTTP ${status})`, detail);
    }
  }

  // ---- the request -----------------------------------------------------------------------------

  function contentTypeFor(file, isDicom) {
    if (isDicom || file.type === "application/dicom" || file.type === "") return "application/dicom";
    if (file.type.startsWith("image/")) return file.type;
    // Anything else (a .txt, say): let the server sniff the bytes and say what they are not.
    return "application/octet-stream";
  }

  function isPrediction(p) {
    return (
      p &&
      typeof p.label === "string" &&
      typeof p.confidence === "number" &&
      p.probabilities !== null &&
      typeof p.probabilities === "object"
    );
  }

  async function score(explain) {
    const file = state.file;
    if (!file) return;
    const generation = state.generation;
    if (state.inFlight) state.inFlight.controller.abort();
    const controller = new AbortController();
    state.inFlight = { controller, explain };

    clearError();
    setStatus(
      explain
        ? "Working out where the model looked — this takes 10 to 20 seconds…"
        : `Scoring ${file.name}…`,
      explain ? "slow" : true,
    );
    ui.explain.setAttribute("aria-busy", explain ? "true" : "false");

    const headers = { "Content-Type": contentTypeFor(file, state.isDicom) };
    const key = ui.keyRow.hidden ? "" : ui.key.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;

    let response;
    let body = null;
    try {
      response = await fetch(explain ? "/score?explain=true" : "/score", {
        method: "POST",
        headers,
        body: file,
        signal: controller.signal,
        cache: "no-store",
        credentials: "same-origin",
      });
      const text = await response.text();
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = null;
      }
    } catch (error) {
      if (state.inFlight && state.inFlight.controller === controller) state.inFlight = null;
      if (error && error.name === "AbortError") return; // replaced by a newer request
      if (generation !== state.generation) return;
      finishWithError("Could not reach the server. Check the connection and try again.", explain);
      return;
    }
    if (state.inFlight && state.inFlight.controller === controller) state.inFlight = null;
    if (generation !== state.generation || controller.signal.aborted) return;

    if (!response.ok) {
      if (response.status === 401) {
        showKeyField();
        ui.key.focus();
      }
      finishWithError(friendlyError(response.status, body, response.headers.get("Retry-After"), explain), explain);
      return;
    }
    const predictions = body && Array.isArray(body.predictions) ? body.predictions.filter(isPrediction) : [];
    if (predictions.length === 0) {
      finishWithError("The server answered in a way this page does not understand.", explain);
      return;
    }
    if (explain && !predictions.some((p) => p.explanation && typeof p.explanation.overlay_png === "string")) {
      finishWithError("The server did not send an explanation for this image.", explain);
      return;
    }

    state.result = { predictions, model: body.model && typeof body.model === "object" ? body.model : null };
    if (state.frameIndex >= predictions.length) state.frameIndex = 0;
    ui.explain.setAttribute("aria-busy", "false");
    setStatus(explain ? "Explanation ready." : "Done.", false);
    render();
  }

  function finishWithError(text, explain) {
    ui.explain.setAttribute("aria-busy", "false");
    setStatus("", false);
    showError(text);
    if (explain && state.result) {
      // The prediction still stands; only the explanation failed.
      ui.explain.checked = false;
      render();
      return;
    }
    clearResult();
  }

  // ---- rendering -------------------------------------------------------------------------------

  function percent(value, digits = 1) {
    const clamped = Math.min(1, Math.max(0, Number(value) || 0));
    return `${(clamped * 100).toFixed(digits)}%`;
  }

  function clearResult() {
    state.result = null;
    state.frameIndex = 0;
    ui.workspace.hidden = true;
    ui.result.classList.remove("stale");
    ui.result.removeAttribute("data-stale");
    ui.label.textContent = "";
    ui.confidence.textContent = "";
    ui.bars.replaceChildren();
    ui.frame.replaceChildren();
    ui.frameRow.hidden = true;
    ui.frameInfo.textContent = "";
    ui.model.textContent = "";
    ui.overlay.hidden = true;
    ui.overlay.removeAttribute("src");
    ui.explain.checked = false;
    ui.explain.disabled = !state.file;
  }

  function markStale() {
    ui.result.classList.add("stale");
    ui.result.setAttribute("data-stale", "true");
  }

  function renderBars(probabilities, top) {
    const rows = Object.entries(probabilities)
      .filter(([, value]) => typeof value === "number")
      .sort((a, b) => b[1] - a[1])
      .map(([name, value]) => {
        const row = document.createElement("div");
        row.className = "bar-row";
        if (name === top) row.classList.add("top");

        const label = document.createElement("span");
        label.className = "bar-name";
        label.textContent = name;
        label.title = name;

        const bar = document.createElement("div");
        bar.className = "bar";
        bar.setAttribute("role", "meter");
        bar.setAttribute("aria-label", name);
        bar.setAttribute("aria-valuemin", "0");
        bar.setAttribute("aria-valuemax", "100");
        bar.setAttribute("aria-valuenow", (Math.min(1, Math.max(0, value)) * 100).toFixed(2));
        bar.setAttribute("aria-valuetext", percent(value));
        bar.dataset.class = name;
        const fill = document.createElement("div");
        fill.className = "bar-fill";
        fill.style.width = percent(value, 2); // CSSOM, not a style attribute: allowed by the CSP
        bar.append(fill);

        const number = document.createElement("span");
        number.className = "bar-value";
        number.textContent = percent(value);

        row.append(label, bar, number);
        return row;
      });
    ui.bars.replaceChildren(...rows);
  }

  function renderFrames(predictions) {
    const many = predictions.length > 1;
    ui.frameRow.hidden = !many;
    if (!many) {
      ui.frame.replaceChildren();
      return;
    }
    if (ui.frame.options.length !== predictions.length) {
      const options = predictions.map((p, i) => {
        const option = document.createElement("option");
        const n = p.dicom && Number.isInteger(p.dicom.frame) ? p.dicom.frame : i + 1;
        option.value = String(i);
        option.textContent = p.dicom ? `Frame ${n} of ${predictions.length}` : `Image ${n} of ${predictions.length}`;
        return option;
      });
      ui.frame.replaceChildren(...options);
    }
    ui.frame.selectedIndex = state.frameIndex;
  }

  function showPlainImage() {
    ui.overlay.hidden = true;
    ui.stage.classList.remove("overlay-on");
    if (state.objectUrl) {
      ui.preview.hidden = false;
      ui.placeholder.hidden = true;
    } else {
      ui.preview.hidden = true;
      ui.placeholder.hidden = false;
      ui.placeholder.textContent = state.isDicom ? DICOM_PLACEHOLDER : OTHER_PLACEHOLDER;
    }
  }

  function showOverlay(explanation) {
    const png = explanation.overlay_png;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(png)) {
      showError("The explanation's picture could not be shown.");
      showPlainImage();
      return false;
    }
    const src = `data:image/png;base64,${png}`;
    if (ui.overlay.getAttribute("src") !== src) ui.overlay.src = src;
    ui.overlay.hidden = false;
    ui.preview.hidden = true;
    ui.placeholder.hidden = true;
    ui.stage.classList.add("overlay-on");
    return true;
  }

  function captionFor(p, overlayShown) {
    const parts = [];
    if (overlayShown && p.explanation) {
      const e = p.explanation;
      const grid = e.grid && e.grid.rows && e.grid.columns ? `, ${e.grid.rows}×${e.grid.columns} grid` : "";
      const cls = typeof e.class === "string" ? e.class : p.label;
      parts.push(`Warmer areas: hiding them lowered the model's confidence in “${cls}” the most (${e.method || "occlusion"}${grid}).`);
    }
    if (p.dicom && typeof p.dicom.sop_instance_uid === "string") {
      parts.push(`SOP Instance UID ${p.dicom.sop_instance_uid}`);
    }
    return parts.join(" ");
  }

  function render() {
    const result = state.result;
    if (!result) return;
    const p = result.predictions[state.frameIndex] || result.predictions[0];
    ui.workspace.hidden = false;
    ui.result.classList.remove("stale");
    ui.result.removeAttribute("data-stale");

    renderFrames(result.predictions);
    if (p.dicom) {
      const frame = Number.isInteger(p.dicom.frame) ? p.dicom.frame : state.frameIndex + 1;
      const frames = Number.isInteger(p.dicom.frames) ? p.dicom.frames : result.predictions.length;
      ui.frameInfo.textContent = `DICOM · frame ${frame} of ${frames}`;
    } else {
      ui.frameInfo.textContent = "";
    }
    ui.label.textContent = p.label;
    ui.confidence.textContent = percent(p.confidence);
    renderBars(p.probabilities, p.label);

    ui.explain.disabled = false;
    let overlayShown = false;
    if (ui.explain.checked && p.explanation && typeof p.explanation.overlay_png === "string") {
      overlayShown = showOverlay(p.explanation);
    } else {
      showPlainImage();
    }
    ui.caption.textContent = captionFor(p, overlayShown);

    const m = result.model;
    ui.model.textContent =
      m && typeof m.name === "string" ? `Model ${m.name}${typeof m.version === "string" ? ` ${m.version}` : ""}` : "";
  }

  // ---- choosing a file -------------------------------------------------------------------------

  async function looksLikeDicom(file) {
    if (/\.(dcm|dicom)$/i.test(file.name) || file.type === "application/dicom") return true;
    if (file.type.startsWith("image/") || file.size < 132) return false;
    try {
      const magic = new Uint8Array(await file.slice(128, 132).arrayBuffer());
      return String.fromCharCode(...magic) === "DICM";
    } catch {
      return false;
    }
  }

  async function chooseFile(file) {
    if (!file) return;
    state.generation += 1;
    const generation = state.generation;
    if (state.inFlight) {
      state.inFlight.controller.abort();
      state.inFlight = null;
    }
    clearError();
    state.file = file;
    ui.fileName.textContent = file.name;
    if (state.result) markStale(); // the old answer stays visible, dimmed, until the new one arrives

    state.isDicom = await looksLikeDicom(file);
    if (generation !== state.generation) return;

    if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
    state.objectUrl = null;
    if (!state.isDicom && /^image\/(jpeg|png|gif|webp|bmp)$/.test(file.type)) {
      state.objectUrl = URL.createObjectURL(file);
      ui.preview.src = state.objectUrl;
      ui.preview.alt = `The chosen image, ${file.name}`;
    } else {
      ui.preview.removeAttribute("src");
    }
    ui.explain.disabled = false;
    score(ui.explain.checked);
  }

  function onExplainToggle() {
    const result = state.result;
    if (!ui.explain.checked) {
      if (state.inFlight && state.inFlight.explain) {
        state.inFlight.controller.abort();
        state.inFlight = null;
        setStatus("Explanation cancelled.", false);
        ui.explain.setAttribute("aria-busy", "false");
      }
      render();
      return;
    }
    const p = result && (result.predictions[state.frameIndex] || result.predictions[0]);
    if (p && p.explanation && typeof p.explanation.overlay_png === "string") {
      render();
      return;
    }
    if (state.file) score(true);
  }

  // ---- wiring ----------------------------------------------------------------------------------

  function init() {
    if (keyRequired()) {
      showKeyField();
      ui.key.value = readStoredKey();
    }
    ui.key.addEventListener("input", () => storeKey(ui.key.value.trim()));

    ui.file.addEventListener("change", () => {
      const file = ui.file.files && ui.file.files[0];
      if (file) chooseFile(file);
      // Forget the choice, so that choosing the same file again (say, after an error) scores it again.
      ui.file.value = "";
    });
    // A ring on the drop zone for browsers without :has() (app.css does the rest).
    ui.file.addEventListener("focus", () => {
      let visible = true;
      try {
        visible = ui.file.matches(":focus-visible");
      } catch {
        // an old browser: show the ring
      }
      ui.drop.classList.toggle("keyboard-focus", visible);
    });
    ui.file.addEventListener("blur", () => ui.drop.classList.remove("keyboard-focus"));

    const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
    ui.drop.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      ui.drop.classList.add("dragging");
    });
    ui.drop.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    ui.drop.addEventListener("dragleave", (event) => {
      if (!ui.drop.contains(event.relatedTarget)) ui.drop.classList.remove("dragging");
    });
    ui.drop.addEventListener("drop", (event) => {
      event.preventDefault();
      ui.drop.classList.remove("dragging");
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (file) chooseFile(file);
    });
    // A file dropped beside the zone should not make the browser navigate away to it.
    window.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    window.addEventListener("drop", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });

    ui.explain.addEventListener("change", onExplainToggle);
    ui.frame.addEventListener("change", () => {
      state.frameIndex = Math.max(0, ui.frame.selectedIndex);
      render();
    });
    ui.preview.addEventListener("error", () => {
      if (state.objectUrl && ui.preview.getAttribute("src") === state.objectUrl) {
        ui.preview.hidden = true;
        ui.placeholder.hidden = false;
        ui.placeholder.textContent = OTHER_PLACEHOLDER;
      }
    });
  }

  init();
})();
