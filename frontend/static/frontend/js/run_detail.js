// Run detail page: curves (live while the run is active), configuration, recommendations, test
// results (confusion matrix, per-class accuracy), misclassified test images, first-layer filters
// and "Try the model" (try_model.js).
// Needs common.js, Chart.js, charts.js (TunerCharts), recommendations.js, draw_pad.js, try_model.js.
(function () {
  "use strict";
  const { api, urls: pages, el, fmt, errorText, RunStream, runState: RS } = window.Tuner;
  const root = document.getElementById("run-detail");
  if (!root) return;
  const runId = Number(root.dataset.experimentId);
  const urls = {
    schema: pages.to("api:config-schema"),
    run: (id) => pages.to("api:experiment-detail", id),
    apply: (id) => pages.to("api:recommendation-apply", id),
    weights: pages.to("api:experiment-weights", runId),
    misclassified: pages.to("api:experiment-misclassified", runId),
    filters: pages.to("api:experiment-filters", runId),
  };
  const SHORT_NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"];

  const $ = (id) => document.getElementById(id);
  const dom = {
    name: $("detail-name"), status: $("detail-status"), epochs: $("detail-epochs"), lineage: $("detail-lineage"),
    connectionWrap: $("detail-connection-wrap"), connection: $("detail-connection"),
    progressWrap: $("detail-progress-wrap"), progress: $("detail-progress"), progressBar: $("detail-progress-bar"),
    progressText: $("detail-progress-text"), message: $("detail-message"),
    factBest: $("fact-best"), factTest: $("fact-test"), factDuration: $("fact-duration"), factCreated: $("fact-created"),
    weights: $("download-weights"), openInTuner: $("open-in-tuner"),
    summary: $("performance-summary"), config: $("run-config"),
    recommendations: $("recommendations"), recommendationsError: $("recommendations-error"),
    confusionWrap: $("confusion-wrap"), perClass: $("per-class"),
    misclassified: $("misclassified"), misclassifiedSummary: $("misclassified-summary"), misclassifiedMore: $("misclassified-more"),
    filters: $("filters"), filtersSummary: $("filters-summary"), filtersMore: $("filters-more"),
  };

  const charts = window.TunerCharts.createMetricCharts($("detail-loss-chart"), $("detail-accuracy-chart"));
  const R = window.TunerRecommendations;

  let run = null;            // the run state (run_state.js), kept current from the live stream
  let schema = null;         // /api/config-schema/ (labels and help per field)
  let parentConfig = null;   // the parent's config, to mark what changed
  let stream = null;
  let inspected = false;     // misclassified + filters loaded
  let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

  const hasWeights = () => Boolean(run && run.links && run.links.weights);

  // Why test results ("results") or the stored network ("weights") are missing.
  function unavailableText(what = "weights") {
    if (!run) return "Loading…";
    if (RS.isActive(run.status)) return `Available when the run has succeeded (it is ${run.status}).`;
    if (run.status === "succeeded") return what === "results" ? "This run has no test results." : "This run has no stored weights.";
    const outcome = run.status === "cancelled" ? "was cancelled" : run.status;
    return what === "results"
      ? `Not available: the run ${outcome}, so it was not evaluated on the test set.`
      : `Not available: the run ${outcome}, so no weights were stored.`;
  }

  const tryModel = window.TunerTryModel.create({
    classNames: () => classNames,
    setClassNames: (names) => { classNames = names; },
    enabled: hasWeights,
    unavailableText,
  });

  // ------------------------------------------------------------------ header

  function renderHeader() {
    const total = RS.epochsTotal(run);
    dom.name.textContent = run.name || "untitled";
    document.title = `Run #${run.id}${run.name ? ` ${run.name}` : ""} · Tuner`;
    dom.status.textContent = run.status;
    dom.status.className = `status status-${run.status}`;
    root.dataset.status = run.status;
    dom.epochs.textContent = total ? `epoch ${RS.epochsDone(run)}/${total}` : "";

    const lineage = [];
    if (run.parent) {
      lineage.push(el("a", { href: pages.runPage(run.parent), title: `Derived from run #${run.parent}` }, `← #${run.parent}`));
    }
    const children = Array.isArray(run.children) ? run.children : [];
    if (children.length) {
      lineage.push(el("span", { class: "muted", text: run.parent ? " · children " : "children " }));
      children.forEach((child, i) => lineage.push(i ? ", " : "", el("a", { href: pages.runPage(child) }, `#${child}`)));
    }
    dom.lineage.replaceChildren(...lineage);

    const best = run.best_val_accuracy;
    dom.factBest.textContent = typeof best === "number" ? `${fmt.pct(best)}${run.best_epoch ? ` (ep ${run.best_epoch})` : ""}` : "–";
    dom.factTest.textContent = fmt.pct(run.test_accuracy);
    renderDuration();
    dom.factCreated.textContent = fmt.time(run.created_at);

    const lastLog = run.log.length ? run.log[run.log.length - 1] : null;
    const warning = lastLog && ["warning", "error"].includes(lastLog.level) ? lastLog.message : "";
    const error = run.error_message || "";
    dom.message.textContent = error || warning || run.message || "";
    dom.message.classList.toggle("form-error", Boolean(error));

    dom.progressWrap.hidden = !RS.isActive(run.status);
    if (RS.isActive(run.status)) {
      const { fraction, text } = RS.progressOf(run);
      const value = String(Math.round(fraction * 100));
      dom.progress.setAttribute("aria-valuenow", value);
      dom.progressBar.style.width = `${value}%`;
      dom.progressText.textContent = text;
    }

    if (hasWeights()) {
      dom.weights.href = urls.weights;
      dom.weights.removeAttribute("aria-disabled");
      dom.weights.setAttribute("download", "");
      dom.weights.title = "Trained weights (.npz: W0, b0, W1, b1, …, class_names)";
    } else {
      dom.weights.removeAttribute("href");
      dom.weights.setAttribute("aria-disabled", "true");
      dom.weights.title = "Weights are stored when a run succeeds";
    }
    if (run.config) dom.openInTuner.href = pages.tuner(run.config);
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

  // ------------------------------------------------------------------ config, summary, advice

  function renderConfig() {
    const config = run.config || {};
    const specs = new Map(((schema && schema.fields) || []).map((spec) => [spec.name, spec]));
    const rows = Object.entries(config).map(([name, value]) => {
      const spec = specs.get(name) || {};
      let changed = null;
      if (parentConfig && JSON.stringify(parentConfig[name]) !== JSON.stringify(value)) {
        changed = el("span", { class: "config-was", text: ` (was ${fmt.fieldValue(name, parentConfig[name])} in #${run.parent})` });
      }
      return el("tr", { class: changed ? "changed" : null, dataset: { field: name } }, [
        el("th", { scope: "row", title: spec.help || null }, [spec.label || name, el("span", { class: "config-key", text: name })]),
        el("td", {}, [el("code", { text: fmt.fieldValue(name, value) }), changed]),
      ]);
    });
    dom.config.replaceChildren(el("tbody", {}, rows.length ? rows : [el("tr", {}, [el("td", { text: "–" })])]));
  }

  function renderSummary() {
    if (run.analysis || run.performance_category) {
      R.renderPerformanceSummary(dom.summary, run.performance_category || null, run.analysis || {});
    } else {
      dom.summary.replaceChildren(el("p", { class: "muted", text: RS.isTerminal(run.status)
        ? "No performance summary for this run." : "The summary appears when the run has finished." }));
    }
  }

  function renderRecommendations() {
    const labels = Object.fromEntries(((schema && schema.fields) || []).map((spec) => [spec.name, spec.label]));
    R.renderRecommendations(dom.recommendations, run.recommendations, {
      baseConfig: run.config,
      labels,
      emptyText: RS.recommendationsEmptyText(run),
      onQuickApply: (changes) => { window.location.href = pages.tuner({ ...(run.config || {}), ...changes }); },
      onApplyRun: async (rec) => {
        dom.recommendationsError.textContent = "";
        try {
          const child = await api.post(urls.apply(rec.id));
          window.location.href = pages.runPage(child.id);
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

  function confusionCell(count, i, j, rowTotal) {
    const share = count / rowTotal;
    const alpha = i === j ? 0.12 + 0.78 * share : (count ? Math.min(0.9, 0.1 + share * 4) : 0);
    const background = i === j ? `rgba(0, 255, 65, ${alpha.toFixed(3)})`
      : (count ? `rgba(255, 92, 92, ${alpha.toFixed(3)})` : "transparent");
    const label = `true ${classNames[i]}, predicted ${classNames[j]}: ${count} (${(share * 100).toFixed(1)}% of ${classNames[i]})`;
    return el("td", {
      class: `cm-cell${i === j ? " diagonal" : ""}${alpha > 0.5 ? " bright" : ""}${count ? "" : " zero"}`,
      style: `background:${background}`, title: label, dataset: { count: String(count) },
    }, [el("span", { "aria-hidden": "true", text: String(count) }), el("span", { class: "visually-hidden", text: label })]);
  }

  function renderConfusion() {
    const matrix = run.confusion_matrix;
    if (!Array.isArray(matrix) || !matrix.length) {
      dom.confusionWrap.replaceChildren(el("p", { class: "muted", id: "confusion-empty", text: unavailableText("results") }));
      return;
    }
    const short = (i) => SHORT_NAMES[i] || classNames[i] || String(i);
    const total = matrix.reduce((sum, row) => sum + row.reduce((a, b) => a + b, 0), 0);
    const head = el("tr", {}, [
      el("th", { scope: "col", class: "corner" }, [el("span", { class: "visually-hidden", text: "True class" }),
        el("span", { "aria-hidden": "true", text: "true ↓ / pred →" })]),
      ...matrix.map((_, j) => el("th", { scope: "col", class: "pred-head", title: `predicted ${classNames[j] || j}` },
        [el("span", { text: short(j) })])),
    ]);
    const body = matrix.map((row, i) => {
      const rowTotal = row.reduce((a, b) => a + b, 0) || 1;
      return el("tr", {}, [
        el("th", { scope: "row", title: classNames[i] || String(i), text: short(i) }),
        ...row.map((count, j) => confusionCell(count, i, j, rowTotal)),
      ]);
    });
    dom.confusionWrap.replaceChildren(el("table", { id: "confusion-matrix", class: "confusion", dataset: { total: String(total) } }, [
      el("caption", { class: "visually-hidden", text: `Confusion matrix of ${total} test images: rows are the true class, columns the predicted class.` }),
      el("thead", {}, [head]), el("tbody", {}, body),
    ]));
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

  let misclassifiedOffset = 0;

  function misclassifiedItem(item) {
    const canvas = el("canvas", { width: 28, height: 28, class: "digit", "aria-hidden": "true" });
    window.TunerDrawPad.paintImage(canvas, item.pixels);
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
    button.addEventListener("click", () => tryModel.predictTestImage(item.index, true));
    return button;
  }

  async function loadMisclassified(more) {
    dom.misclassifiedMore.disabled = true;
    try {
      const data = await api.get(`${urls.misclassified}?limit=24&offset=${more ? misclassifiedOffset : 0}`);
      if (Array.isArray(data.class_names)) classNames = data.class_names;
      const items = data.items.map(misclassifiedItem);
      if (!more) dom.misclassified.replaceChildren();
      if (!more && !items.length) dom.misclassified.append(el("p", { class: "muted", text: "No test image is misclassified." }));
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
      const data = await api.get(`${urls.filters}?limit=${limit}`);
      const canvases = data.filters.map((pixels, unit) => {
        const canvas = el("canvas", { width: 28, height: 28, class: "filter", title: `unit ${unit}`,
          role: "img", "aria-label": `Input weights of hidden unit ${unit}`, dataset: { unit: String(unit) } });
        window.TunerDrawPad.paintImage(canvas, pixels, "green");
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

  // ------------------------------------------------------------------ data flow

  // Draws `next`, the parts that changed since `prev` (everything when prev is null).
  function show(next, prev) {
    run = next;
    const changed = (...keys) => !prev || keys.some((key) => next[key] !== prev[key]);
    if (changed("class_names") && Array.isArray(next.class_names) && next.class_names.length) classNames = next.class_names;
    renderHeader();
    if (changed("metrics")) charts.setMetrics(next.metrics);
    if (window.TunerDiagnosis && changed("diagnoses", "status", "message")) window.TunerDiagnosis.render(next);
    if (changed("config", "parent")) renderConfig();
    if (changed("analysis", "performance_category", "status")) renderSummary();
    if (changed("recommendations", "status", "config", "analysis_pending")) renderRecommendations();
    if (changed("confusion_matrix", "per_class_accuracy", "class_names", "status")) {
      renderConfusion();
      renderPerClass();
    }
    tryModel.refresh();
    loadInspection();
    // The test results and the weights link are not in the live events: read them once it ends.
    if (prev && RS.isActive(prev.status) && RS.isTerminal(next.status)) fetchResults();
  }

  async function fetchResults() {
    try {
      // Recommendations may arrive by event before or after this answer: only the results are taken.
      const { metrics, recommendations, analysis, performance_category, ...results } = await api.get(urls.run(runId));
      stream.apply({ type: "status", ...results });
    } catch (err) {
      dom.message.textContent = `Could not refresh the run: ${errorText(err)}`;
    }
  }

  dom.misclassifiedMore.addEventListener("click", () => loadMisclassified(true));
  dom.filtersMore.addEventListener("click", () => loadFilters(256));

  async function init() {
    const [detail, schemaData] = await Promise.all([
      api.get(urls.run(runId)),
      api.get(urls.schema).catch(() => null),
    ]).catch((err) => {
      dom.message.textContent = `Could not load this run: ${errorText(err)}`;
      dom.message.classList.add("form-error");
      return [null, null];
    });
    if (!detail) return;
    schema = schemaData;
    if (RS.isActive(detail.status)) {
      dom.connectionWrap.hidden = false;
      stream = new RunStream(runId, {
        initial: detail,
        change: (next, prev) => show(next, prev.status ? prev : null),
        connection: (state) => {
          dom.connection.textContent = state;
          dom.connectionWrap.dataset.state = state;
        },
      });
    } else {
      show(RS.applyRunEvent(null, { type: "snapshot", experiment: detail }), null);
    }
    if (detail.parent) {
      api.get(urls.run(detail.parent)).then((parent) => {
        parentConfig = parent.config || null;
        renderConfig();
      }).catch(() => { /* the parent may be gone */ });
    }
  }

  init();
  window.addEventListener("pagehide", () => { if (stream) stream.close(); });
})();
