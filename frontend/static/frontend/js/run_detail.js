// Run detail page: curves (live while the run is active), configuration, recommendations,
// test results (confusion matrix, per-class accuracy), misclassified test images, first-layer
// filters and "Try the model" (draw a 28x28 image, get class probabilities from the server).
// Needs common.js (window.Tuner), Chart.js, charts.js (TunerCharts), recommendations.js.
(function () {
  "use strict";
  const { api, el, fmt, RunStream } = window.Tuner;
  const root = document.getElementById("run-detail");
  if (!root) return;
  const runId = Number(root.dataset.experimentId);
  const ACTIVE = new Set(["queued", "running"]);
  const TERMINAL = new Set(["succeeded", "failed", "diverged", "cancelled", "pruned"]);
  const SHORT_NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"];
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  const $ = (id) => document.getElementById(id);
  const dom = {
    name: $("detail-name"), status: $("detail-status"), epochs: $("detail-epochs"), lineage: $("detail-lineage"),
    connectionWrap: $("detail-connection-wrap"), connection: $("detail-connection"),
    progressWrap: $("detail-progress-wrap"), progress: $("detail-progress"), progressBar: $("detail-progress-bar"),
    progressText: $("detail-progress-text"), message: $("detail-message"),
    factBest: $("fact-best"), factTest: $("fact-test"), factDuration: $("fact-duration"), factCreated: $("fact-created"),
    csv: $("download-csv"), weights: $("download-weights"), openInTuner: $("open-in-tuner"),
    summary: $("performance-summary"), config: $("run-config"),
    recommendations: $("recommendations"), recommendationsError: $("recommendations-error"),
    confusionWrap: $("confusion-wrap"), perClass: $("per-class"),
    misclassified: $("misclassified"), misclassifiedSummary: $("misclassified-summary"),
    misclassifiedMore: $("misclassified-more"),
    filters: $("filters"), filtersSummary: $("filters-summary"), filtersMore: $("filters-more"),
    canvas: $("predict-canvas"), random: $("predict-random"), clear: $("predict-clear"), submit: $("predict-submit"),
    brush: $("predict-brush"), live: $("predict-live"), result: $("predict-result"), source: $("predict-source"),
    predictError: $("predict-error"),
  };

  const charts = window.TunerCharts
    ? window.TunerCharts.createMetricCharts($("detail-loss-chart"), $("detail-accuracy-chart"))
    : null;

  let run = null;            // the run, detail shape (kept current from the live stream)
  let schema = null;         // /api/config-schema/ (labels and help per field)
  let parentConfig = null;   // the parent's config, to mark what changed
  let stream = null;
  let inspected = false;     // misclassified + filters loaded
  let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
  let refetching = null;

  // ------------------------------------------------------------------ helpers

  function tunerUrl(config) {
    return `/?config=${encodeURIComponent(JSON.stringify(config))}`;
  }

  function hasWeights() {
    return Boolean(run && run.links && run.links.weights);
  }

  function errorText(err) {
    const data = err && err.data;
    if (data && typeof data === "object" && typeof data.detail !== "string") {
      const parts = [];
      const walk = (value, prefix) => {
        if (Array.isArray(value)) parts.push(`${prefix}${value.join(" ")}`);
        else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) walk(v, `${k}: `);
        else if (value !== undefined) parts.push(`${prefix}${value}`);
      };
      walk(data, "");
      if (parts.length) return parts.join("; ");
    }
    return err && err.message ? err.message : "Something went wrong.";
  }

  // Why test results ("results") or the stored network ("weights") are missing.
  function unavailableText(what = "weights") {
    if (!run) return "Loading…";
    if (ACTIVE.has(run.status)) return `Available when the run has succeeded (it is ${run.status}).`;
    if (run.status === "succeeded") return what === "results" ? "This run has no test results." : "This run has no stored weights.";
    const outcome = run.status === "cancelled" ? "was cancelled" : run.status;
    return what === "results"
      ? `Not available: the run ${outcome}, so it was not evaluated on the test set.`
      : `Not available: the run ${outcome}, so no weights were stored.`;
  }

  // ------------------------------------------------------------------ header

  function renderHeader() {
    const c = run.config || {};
    dom.name.textContent = run.name || "untitled";
    document.title = `Run #${run.id}${run.name ? ` ${run.name}` : ""} · Tuner`;
    dom.status.textContent = run.status;
    dom.status.className = `status status-${run.status}`;
    root.dataset.status = run.status;
    dom.epochs.textContent = typeof c.epochs === "number" ? `epoch ${run.epochs_done || 0}/${c.epochs}` : "";

    const lineage = [];
    if (run.parent) {
      lineage.push(el("a", { href: `/runs/${run.parent}/`, title: `Derived from run #${run.parent}` }, `← #${run.parent}`));
    }
    const children = Array.isArray(run.children) ? run.children : [];
    if (children.length) {
      lineage.push(el("span", { class: "muted", text: run.parent ? " · children " : "children " }));
      children.forEach((child, i) => {
        if (i) lineage.push(", ");
        lineage.push(el("a", { href: `/runs/${child}/` }, `#${child}`));
      });
    }
    dom.lineage.replaceChildren(...lineage);

    const best = run.best_val_accuracy;
    dom.factBest.textContent = best === null || best === undefined ? "–"
      : `${fmt.pct(best)}${run.best_epoch ? ` (ep ${run.best_epoch})` : ""}`;
    dom.factTest.textContent = fmt.pct(run.test_accuracy);
    renderDuration();
    dom.factCreated.textContent = fmt.time(run.created_at);

    const error = run.error_message || run.error || "";
    dom.message.textContent = error || run.message || "";
    dom.message.classList.toggle("form-error", Boolean(error));

    dom.progressWrap.hidden = !ACTIVE.has(run.status);
    if (ACTIVE.has(run.status) && typeof c.epochs === "number" && dom.progress.getAttribute("aria-valuenow") === "0") {
      setProgress(((run.epochs_done || 0) / c.epochs) * 100, run.status === "queued" ? "waiting for a worker" : "");
    }

    dom.csv.href = `/api/experiments/${run.id}/metrics/?format=csv`;
    if (hasWeights()) {
      dom.weights.href = `/api/experiments/${run.id}/weights/`;
      dom.weights.removeAttribute("aria-disabled");
      dom.weights.setAttribute("download", "");
      dom.weights.title = "Trained weights (.npz: W0, b0, W1, b1, …, class_names)";
    } else {
      dom.weights.removeAttribute("href");
      dom.weights.setAttribute("aria-disabled", "true");
      dom.weights.title = "Weights are stored when a run succeeds";
    }
    if (run.config) dom.openInTuner.href = tunerUrl(run.config);
    setPredictEnabled(hasWeights());
  }

  // A running run's duration ticks in the browser (the server's only moves with heartbeats).
  function renderDuration() {
    let seconds = run.duration_seconds;
    if (run.status === "running" && run.started_at) {
      seconds = Math.max(seconds || 0, (Date.now() - Date.parse(run.started_at)) / 1000);
    }
    dom.factDuration.textContent = fmt.duration(seconds);
  }
  window.setInterval(() => { if (run && run.status === "running") renderDuration(); }, 1000);

  function setProgress(percent, text) {
    const value = Math.max(0, Math.min(100, Math.round(percent)));
    dom.progress.setAttribute("aria-valuenow", String(value));
    dom.progressBar.style.width = `${value}%`;
    dom.progressText.textContent = text;
  }

  // ------------------------------------------------------------------ config & summary

  function renderConfig() {
    const c = run.config || {};
    const specs = schema && Array.isArray(schema.fields) ? schema.fields : [];
    const byName = new Map(specs.map((spec) => [spec.name, spec]));
    const names = Object.keys(c);
    const rows = names.map((name) => {
      const spec = byName.get(name) || {};
      const value = c[name];
      const shown = value === null && name === "train_size" ? "all" : fmt.value(value);
      let changed = null;
      if (parentConfig && JSON.stringify(parentConfig[name]) !== JSON.stringify(value)) {
        const old = parentConfig[name] === null && name === "train_size" ? "all" : fmt.value(parentConfig[name]);
        changed = el("span", { class: "config-was", text: ` (was ${old} in #${run.parent})` });
      }
      return el("tr", { class: changed ? "changed" : null, dataset: { field: name } }, [
        el("th", { scope: "row", title: spec.help || null }, [
          spec.label || name, el("span", { class: "config-key", text: name }),
        ]),
        el("td", {}, [el("code", { text: shown }), changed]),
      ]);
    });
    dom.config.replaceChildren(el("tbody", {}, rows.length ? rows : [el("tr", {}, [el("td", { text: "–" })])]));
  }

  function renderSummary() {
    const R = window.TunerRecommendations;
    if (run.analysis || run.performance_category) {
      if (R) R.renderPerformanceSummary(dom.summary, run.performance_category || null, run.analysis || {});
    } else {
      dom.summary.replaceChildren(el("p", { class: "muted", text: TERMINAL.has(run.status)
        ? "No performance summary for this run." : "The summary appears when the run has finished." }));
    }
  }

  function renderRecommendations(list) {
    const R = window.TunerRecommendations;
    if (!R) return;
    const labels = {};
    if (schema && Array.isArray(schema.fields)) for (const spec of schema.fields) labels[spec.name] = spec.label;
    R.renderRecommendations(dom.recommendations, list || [], {
      baseConfig: run.config,
      labels,
      emptyText: TERMINAL.has(run.status) ? "No recommendations for this run." : "Recommendations appear when the run has finished.",
      onQuickApply: (changes) => {
        window.location.href = tunerUrl({ ...(run.config || {}), ...changes });
      },
      onApplyRun: async (rec) => {
        dom.recommendationsError.textContent = "";
        try {
          const child = await api.post(`recommendations/${rec.id}/apply/`);
          window.location.href = `/runs/${child.id}/`;
        } catch (err) {
          dom.recommendationsError.textContent = `Apply & Run failed: ${errorText(err)}`;
          throw err;
        }
      },
    });
    // Here "Quick Apply" opens the tuner with this run's config plus the changes.
    for (const button of dom.recommendations.querySelectorAll("button.quick-apply")) {
      button.textContent = "Open in tuner";
      if (!button.disabled) button.title = "Open the tuner with this run's configuration plus these changes (nothing is started)";
    }
  }

  // ------------------------------------------------------------------ test results

  function renderConfusion() {
    const matrix = run.confusion_matrix;
    if (!Array.isArray(matrix) || !matrix.length) {
      const old = document.getElementById("confusion-matrix");
      if (old) old.remove();
      dom.confusionWrap.replaceChildren(el("p", { class: "muted", id: "confusion-empty", text: unavailableText("results") }));
      return;
    }
    const names = classNames;
    const total = matrix.reduce((sum, row) => sum + row.reduce((a, b) => a + b, 0), 0);
    const head = el("tr", {}, [
      el("th", { scope: "col", class: "corner" }, [el("span", { class: "visually-hidden", text: "True class" }),
        el("span", { "aria-hidden": "true", text: "true ↓ / pred →" })]),
      ...matrix.map((_, j) => el("th", { scope: "col", class: "pred-head", title: `predicted ${names[j] || j}` },
        [el("span", { text: SHORT_NAMES[j] || names[j] || String(j) })])),
    ]);
    const body = matrix.map((row, i) => {
      const rowTotal = row.reduce((a, b) => a + b, 0) || 1;
      return el("tr", {}, [
        el("th", { scope: "row", title: names[i] || String(i), text: SHORT_NAMES[i] || names[i] || String(i) }),
        ...row.map((count, j) => {
          const share = count / rowTotal;
          let alpha;
          let background;
          if (i === j) {
            alpha = 0.12 + 0.78 * share;
            background = `rgba(0, 255, 65, ${alpha.toFixed(3)})`;
          } else {
            alpha = count ? Math.min(0.9, 0.1 + share * 4) : 0;
            background = count ? `rgba(255, 92, 92, ${alpha.toFixed(3)})` : "transparent";
          }
          const label = `true ${names[i]}, predicted ${names[j]}: ${count} (${(share * 100).toFixed(1)}% of ${names[i]})`;
          return el("td", {
            class: `cm-cell${i === j ? " diagonal" : ""}${alpha > 0.5 ? " bright" : ""}${count ? "" : " zero"}`,
            style: `background:${background}`, title: label, dataset: { count: String(count) },
          }, [el("span", { "aria-hidden": "true", text: String(count) }), el("span", { class: "visually-hidden", text: label })]);
        }),
      ]);
    });
    const table = el("table", { id: "confusion-matrix", class: "confusion", dataset: { total: String(total) } }, [
      el("caption", { class: "visually-hidden", text: `Confusion matrix of ${total} test images: rows are the true class, columns the predicted class.` }),
      el("thead", {}, [head]), el("tbody", {}, body),
    ]);
    dom.confusionWrap.replaceChildren(table);
  }

  function renderPerClass() {
    const values = run.per_class_accuracy;
    if (!Array.isArray(values) || !values.length) {
      dom.perClass.replaceChildren(el("p", { class: "muted", text: unavailableText("results") }));
      return;
    }
    const rows = values.map((value, i) => {
      const pct = Math.max(0, Math.min(1, value)) * 100;
      const level = value >= 0.85 ? "high" : value >= 0.65 ? "mid" : "low";
      return el("tr", { class: `per-class-row level-${level}`, dataset: { class: String(i), value: String(value) } }, [
        el("th", { scope: "row", text: classNames[i] || String(i) }),
        el("td", { class: "bar-cell" }, [el("div", { class: "bar-track", "aria-hidden": "true" },
          [el("div", { class: "bar-fill", style: `width:${pct.toFixed(1)}%` })])]),
        el("td", { class: "bar-value", text: fmt.pct(value) }),
      ]);
    });
    dom.perClass.replaceChildren(el("table", { class: "per-class-table" }, [
      el("caption", { class: "visually-hidden", text: "Test accuracy per class" }), el("tbody", {}, rows),
    ]));
  }

  // ------------------------------------------------------------------ images

  // Draws 784 grey values (0..255) on a 28x28 canvas, optionally tinted.
  function paintImage(canvas, pixels, tint) {
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(28, 28);
    for (let p = 0; p < 784; p++) {
      const v = pixels[p] || 0;
      let r = v;
      let g = v;
      let b = v;
      if (tint === "green") { r = Math.max(0, v * 2 - 255) * 0.8; g = v; b = Math.max(0, v * 2 - 255) * 0.85; }
      image.data[p * 4] = r;
      image.data[p * 4 + 1] = g;
      image.data[p * 4 + 2] = b;
      image.data[p * 4 + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  let misclassifiedOffset = 0;
  let misclassifiedTotal = 0;

  async function loadMisclassified(more) {
    dom.misclassifiedMore.disabled = true;
    try {
      const data = await api.get(`experiments/${runId}/misclassified/?limit=24&offset=${more ? misclassifiedOffset : 0}`);
      if (Array.isArray(data.class_names)) classNames = data.class_names;
      misclassifiedTotal = data.total;
      const items = data.items.map((item) => {
        const canvas = el("canvas", { width: 28, height: 28, class: "digit", "aria-hidden": "true" });
        paintImage(canvas, item.pixels);
        const button = el("button", {
          type: "button", class: "misclassified-item", title: `Test image #${item.index}: try it in the model below`,
          dataset: { index: String(item.index), true: String(item.true), predicted: String(item.predicted) },
        }, [
          canvas,
          el("span", { class: "caption" }, [
            el("span", { class: "truth", text: classNames[item.true] }), " → ",
            el("span", { class: "wrong", text: classNames[item.predicted] }),
            el("span", { class: "confidence", text: ` (${Math.round(item.confidence * 100)}%)` }),
          ]),
          el("span", { class: "visually-hidden", text: ` (test image #${item.index}; load it into Try the model)` }),
        ]);
        button.addEventListener("click", () => predictTestIndex(item.index, true));
        return button;
      });
      if (!more) dom.misclassified.replaceChildren();
      if (!more && !items.length) {
        dom.misclassified.append(el("p", { class: "muted", text: "No test image is misclassified." }));
      }
      dom.misclassified.append(...items);
      misclassifiedOffset = (more ? misclassifiedOffset : 0) + items.length;
      const shown = dom.misclassified.querySelectorAll(".misclassified-item").length;
      dom.misclassifiedSummary.textContent = `${data.total} of ${data.test_count} test images wrong · ${shown} shown, most confident first`;
      dom.misclassifiedMore.hidden = shown >= data.total;
    } catch (err) {
      dom.misclassified.replaceChildren(el("p", { class: "form-error", text: `Could not load: ${errorText(err)}` }));
    } finally {
      dom.misclassifiedMore.disabled = false;
    }
  }

  async function loadFilters(limit) {
    dom.filtersMore.disabled = true;
    try {
      const data = await api.get(`experiments/${runId}/filters/?limit=${limit}`);
      const canvases = data.filters.map((pixels, unit) => {
        const canvas = el("canvas", { width: 28, height: 28, class: "filter", title: `unit ${unit}`,
          role: "img", "aria-label": `Input weights of hidden unit ${unit}`, dataset: { unit: String(unit) } });
        paintImage(canvas, pixels, "green");
        return canvas;
      });
      dom.filters.replaceChildren(...canvases);
      dom.filtersSummary.textContent = `${canvases.length} of ${data.units} units`;
      dom.filtersMore.hidden = canvases.length >= data.units || limit >= 256;
      dom.filtersMore.textContent = data.units > 256 ? "Show 256 units" : "Show all units";
    } catch (err) {
      dom.filters.replaceChildren(el("p", { class: "form-error", text: `Could not load: ${errorText(err)}` }));
    } finally {
      dom.filtersMore.disabled = false;
    }
  }

  function loadInspection() {
    if (inspected) return;
    if (!hasWeights()) {
      const text = unavailableText();
      dom.misclassified.replaceChildren(el("p", { class: "muted", text }));
      dom.filters.replaceChildren(el("p", { class: "muted", text }));
      return;
    }
    inspected = true;
    loadMisclassified(false);
    loadFilters(32);
  }

  // ------------------------------------------------------------------ try the model

  const SIZE = dom.canvas.width;       // 280: ten canvas pixels per image pixel
  const SCALE = SIZE / 28;
  const ctx = dom.canvas.getContext("2d", { willReadFrequently: true });
  const cursor = { x: 14, y: 14, down: false, visible: false };
  let drawing = false;
  let last = null;
  let source = null;        // {index, label} while the canvas shows an unmodified test image
  let dirty = false;        // something drawn since the last prediction
  let predictSeq = 0;
  let liveTimer = null;
  let lastLive = 0;
  const cursorBox = el("div", { class: "predict-cursor", "aria-hidden": "true", hidden: true });
  dom.canvas.parentElement.append(cursorBox);

  function clearCanvas() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, SIZE, SIZE);
  }

  function brushRadius() {
    return (parseFloat(dom.brush.value) || 2.4) * SCALE;
  }

  function dab(x, y) {
    const radius = brushRadius();
    const gradient = ctx.createRadialGradient(x, y, 0, x, y, radius);
    gradient.addColorStop(0, "rgba(255, 255, 255, 0.95)");
    gradient.addColorStop(0.45, "rgba(255, 255, 255, 0.7)");
    gradient.addColorStop(1, "rgba(255, 255, 255, 0)");
    ctx.fillStyle = gradient;
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, Math.PI * 2);
    ctx.fill();
  }

  function strokeTo(x, y) {
    if (!last) { dab(x, y); last = { x, y }; return; }
    const dx = x - last.x;
    const dy = y - last.y;
    const distance = Math.hypot(dx, dy);
    const step = Math.max(1, brushRadius() * 0.3);
    const n = Math.max(1, Math.ceil(distance / step));
    for (let i = 1; i <= n; i++) dab(last.x + (dx * i) / n, last.y + (dy * i) / n);
    last = { x, y };
  }

  function markDrawn() {
    source = null;
    dirty = true;
    dom.source.textContent = "Your drawing.";
    scheduleLive(false);
  }

  function pointFromEvent(event) {
    const rect = dom.canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) / rect.width) * SIZE,
      y: ((event.clientY - rect.top) / rect.height) * SIZE,
    };
  }

  dom.canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== undefined && event.button > 0) return;
    event.preventDefault();
    drawing = true;
    last = null;
    hideCursor();
    try { dom.canvas.setPointerCapture(event.pointerId); } catch (err) { /* synthetic events */ }
    const p = pointFromEvent(event);
    strokeTo(p.x, p.y);
    markDrawn();
  });
  dom.canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) {
      const p = pointFromEvent(e);
      strokeTo(p.x, p.y);
    }
    markDrawn();
  });
  const endStroke = () => {
    if (!drawing) return;
    drawing = false;
    last = null;
    scheduleLive(true);
  };
  dom.canvas.addEventListener("pointerup", endStroke);
  dom.canvas.addEventListener("pointercancel", endStroke);
  dom.canvas.addEventListener("lostpointercapture", endStroke);

  // Keyboard drawing: arrows move the brush, Space (held) or Enter paints, Delete clears.
  function showCursor() {
    cursor.visible = true;
    cursorBox.hidden = false;
    const size = (brushRadius() * 2) / SIZE * 100;
    cursorBox.style.width = `${size}%`;
    cursorBox.style.height = `${size}%`;
    cursorBox.style.left = `${((cursor.x + 0.5) / 28) * 100}%`;
    cursorBox.style.top = `${((cursor.y + 0.5) / 28) * 100}%`;
    cursorBox.classList.toggle("down", cursor.down);
  }
  function hideCursor() {
    cursor.visible = false;
    cursorBox.hidden = true;
  }
  function paintAtCursor() {
    const x = (cursor.x + 0.5) * SCALE;
    const y = (cursor.y + 0.5) * SCALE;
    strokeTo(x, y);
    markDrawn();
  }
  dom.canvas.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[event.key]) {
      event.preventDefault();
      const step = event.shiftKey ? 3 : 1;
      cursor.x = Math.max(0, Math.min(27, cursor.x + moves[event.key][0] * step));
      cursor.y = Math.max(0, Math.min(27, cursor.y + moves[event.key][1] * step));
      if (cursor.down) paintAtCursor();
      else last = null;
      showCursor();
    } else if (event.key === " " || event.key === "Spacebar") {
      event.preventDefault();
      if (!cursor.down) { cursor.down = true; last = null; paintAtCursor(); }
      showCursor();
    } else if (event.key === "Enter") {
      event.preventDefault();
      last = null;
      paintAtCursor();
      last = null;
      showCursor();
      scheduleLive(true);
    } else if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      clearAll();
    }
  });
  dom.canvas.addEventListener("keyup", (event) => {
    if (event.key === " " || event.key === "Spacebar") {
      cursor.down = false;
      last = null;
      showCursor();
      scheduleLive(true);
    }
  });
  dom.canvas.addEventListener("focus", () => { if (!drawing) showCursor(); });
  dom.canvas.addEventListener("blur", () => { cursor.down = false; hideCursor(); });
  dom.canvas.addEventListener("pointerenter", hideCursor);
  dom.brush.addEventListener("change", () => { if (cursor.visible) showCursor(); });

  // The drawing as 784 values 0..255: the mean of each 10x10 block of canvas pixels.
  function canvasPixels() {
    const data = ctx.getImageData(0, 0, SIZE, SIZE).data;
    const out = new Array(784).fill(0);
    for (let y = 0; y < SIZE; y++) {
      const row = Math.floor(y / SCALE) * 28;
      for (let x = 0; x < SIZE; x++) out[row + Math.floor(x / SCALE)] += data[(y * SIZE + x) * 4];
    }
    const area = SCALE * SCALE;
    return out.map((sum) => Math.max(0, Math.min(255, Math.round(sum / area))));
  }

  function showPixels(pixels) {
    const small = el("canvas", { width: 28, height: 28 });
    paintImage(small, pixels);
    ctx.imageSmoothingEnabled = false;
    clearCanvas();
    ctx.drawImage(small, 0, 0, SIZE, SIZE);
  }

  function setPredictEnabled(on) {
    for (const button of [dom.random, dom.submit]) {
      button.disabled = !on;
      button.title = on ? "" : unavailableText();
    }
    dom.live.disabled = !on;
    const placeholder = dom.result.querySelector(":scope > p.muted");
    if (placeholder && !dom.result.querySelector(".probability")) {
      placeholder.textContent = on ? "Class probabilities appear here." : unavailableText();
    }
  }

  function renderProbabilities(data) {
    const names = data.class_names || classNames;
    const probabilities = data.probabilities || [];
    const top = data.predicted;
    const label = data.label;
    const headline = el("p", { class: "predict-headline" }, [
      "Prediction: ", el("strong", { text: names[top] }), ` (${(probabilities[top] * 100).toFixed(1)}%)`,
      label === null || label === undefined ? null
        : el("span", { class: label === top ? "verdict correct" : "verdict wrong",
          text: label === top ? " ✓ correct" : ` ✗ true class: ${names[label]}` }),
    ]);
    const rows = probabilities.map((p, i) => el("div", {
      class: `probability${i === top ? " top" : ""}${i === label ? " truth" : ""}`,
      dataset: { class: String(i), name: names[i], value: p.toFixed(6) },
    }, [
      el("span", { class: "probability-name", text: names[i] }),
      el("span", { class: "bar-track", "aria-hidden": "true" },
        [el("span", { class: "bar-fill", style: `width:${(p * 100).toFixed(1)}%` })]),
      el("span", { class: "probability-value", text: `${(p * 100).toFixed(1)}%` }),
    ]));
    dom.result.replaceChildren(headline, el("div", { class: "probability-list", role: "list" },
      rows.map((row) => { row.setAttribute("role", "listitem"); return row; })));
    dom.result.dataset.predicted = String(top);
  }

  async function requestPrediction(body, { fromTest = false } = {}) {
    const seq = ++predictSeq;
    dom.predictError.textContent = "";
    dom.result.setAttribute("aria-busy", "true");
    try {
      const data = await api.post(`experiments/${runId}/predict/`, body);
      if (seq !== predictSeq) return null;
      if (Array.isArray(data.class_names)) classNames = data.class_names;
      if (fromTest) {
        showPixels(data.pixels);
        source = { index: data.test_index, label: data.label };
        dom.source.textContent = `Test image #${data.test_index} · true class: ${classNames[data.label]}`;
      }
      renderProbabilities(data);
      return data;
    } catch (err) {
      if (seq === predictSeq) dom.predictError.textContent = `Prediction failed: ${errorText(err)}`;
      return null;
    } finally {
      if (seq === predictSeq) dom.result.removeAttribute("aria-busy");
    }
  }

  function predictDrawing() {
    window.clearTimeout(liveTimer);
    dirty = false;
    lastLive = Date.now();
    if (source) return requestPrediction({ test_index: source.index });
    return requestPrediction({ pixels: canvasPixels() });
  }

  function predictTestIndex(index, scroll) {
    if (scroll) {
      document.getElementById("try-title").scrollIntoView({ behavior: reducedMotion ? "auto" : "smooth", block: "start" });
    }
    return requestPrediction({ test_index: index }, { fromTest: true });
  }

  // While drawing: at most every 400 ms; at the end of a stroke: at once.
  function scheduleLive(now) {
    if (!dom.live.checked || !hasWeights()) return;
    window.clearTimeout(liveTimer);
    const wait = now ? 60 : Math.max(0, 400 - (Date.now() - lastLive));
    liveTimer = window.setTimeout(() => { if (dirty) predictDrawing(); }, wait);
  }

  function clearAll() {
    window.clearTimeout(liveTimer);
    predictSeq += 1; // drop answers still on their way
    clearCanvas();
    source = null;
    dirty = false;
    last = null;
    dom.source.textContent = "";
    dom.predictError.textContent = "";
    delete dom.result.dataset.predicted;
    dom.result.removeAttribute("aria-busy");
    dom.result.replaceChildren(el("p", { class: "muted", text: "Class probabilities appear here." }));
    setPredictEnabled(hasWeights());
  }

  dom.clear.addEventListener("click", clearAll);
  dom.submit.addEventListener("click", () => predictDrawing());
  dom.random.addEventListener("click", () => requestPrediction({ random: true }, { fromTest: true }));
  clearCanvas();

  // ------------------------------------------------------------------ data flow

  function applyDetail(detail) {
    run = detail;
    if (Array.isArray(detail.class_names) && detail.class_names.length) classNames = detail.class_names;
    renderHeader();
    if (charts) charts.setMetrics(detail.metrics || []);
    renderConfig();
    renderSummary();
    renderRecommendations(detail.recommendations);
    renderConfusion();
    renderPerClass();
    loadInspection();
  }

  async function refetch() {
    if (refetching) return refetching;
    refetching = (async () => {
      try {
        applyDetail(await api.get(`experiments/${runId}/`));
      } catch (err) {
        dom.message.textContent = `Could not refresh the run: ${errorText(err)}`;
      } finally {
        refetching = null;
      }
    })();
    return refetching;
  }

  function mergeState(state) {
    const { error, epochs, ...rest } = state;
    run = { ...run, ...rest };
    if (error !== undefined) run.error_message = error;
  }

  function onSnapshot(snapshot) {
    const before = run.status;
    mergeState(snapshot.experiment || {});
    renderHeader();
    if (charts) charts.setMetrics(snapshot.metrics || []);
    if (snapshot.recommendations) renderRecommendations(snapshot.recommendations);
    renderSummary();
    if (TERMINAL.has(run.status) && (ACTIVE.has(before) || !run.links || (run.status === "succeeded" && !hasWeights()))) {
      refetch();
    }
  }

  function onEvent(event) {
    switch (event.type) {
      case "epoch": {
        if (charts) charts.addEpoch(event);
        const best = run.best_val_accuracy;
        if (best === null || best === undefined || event.val_accuracy > best) {
          run.best_val_accuracy = event.val_accuracy;
          run.best_epoch = event.epoch;
        }
        run.epochs_done = Math.max(run.epochs_done || 0, event.epoch);
        if (run.status === "queued") run.status = "running";
        renderHeader();
        break;
      }
      case "progress": {
        const epochs = event.epochs || (run.config && run.config.epochs) || 1;
        const fraction = ((event.epoch - 1) + (event.batches ? event.batch / event.batches : 0)) / epochs;
        setProgress(fraction * 100, `epoch ${event.epoch}/${epochs} · batch ${event.batch}/${event.batches}`);
        break;
      }
      case "status": {
        const before = run.status;
        mergeState({ status: event.status, epochs_done: event.epochs_done, best_val_accuracy: event.best_val_accuracy,
          test_accuracy: event.test_accuracy, message: event.message, error: event.error,
          ...(event.name !== undefined ? { name: event.name } : {}) });
        renderHeader();
        if (TERMINAL.has(event.status) && before !== event.status) refetch();
        break;
      }
      case "finished":
        refetch();
        break;
      case "recommendations":
        run.performance_category = event.category || run.performance_category;
        run.analysis = event.summary || run.analysis;
        renderSummary();
        renderRecommendations(event.recommendations || []);
        break;
      case "log":
        if (event.level === "warning" || event.level === "error") dom.message.textContent = event.message;
        break;
      default:
        break;
    }
  }

  function startStream() {
    if (stream || !RunStream) return;
    dom.connectionWrap.hidden = false;
    stream = new RunStream(runId, {
      snapshot: onSnapshot,
      event: onEvent,
      connection: (state) => {
        dom.connection.textContent = state;
        dom.connectionWrap.dataset.state = state;
      },
    });
  }

  dom.misclassifiedMore.addEventListener("click", () => loadMisclassified(true));
  dom.filtersMore.addEventListener("click", () => loadFilters(256));

  async function init() {
    setPredictEnabled(false);
    const [detail, schemaData] = await Promise.all([
      api.get(`experiments/${runId}/`),
      api.get("config-schema/").catch(() => null),
    ]).catch((err) => {
      dom.message.textContent = `Could not load this run: ${errorText(err)}`;
      dom.message.classList.add("form-error");
      return [null, null];
    });
    if (!detail) return;
    schema = schemaData;
    applyDetail(detail);
    if (ACTIVE.has(detail.status)) startStream();
    if (detail.parent) {
      api.get(`experiments/${detail.parent}/`).then((parent) => {
        parentConfig = parent.config || null;
        renderConfig();
      }).catch(() => { /* the parent may be gone */ });
    }
  }

  init();
  window.addEventListener("pagehide", () => { if (stream) stream.close(); });
})();
