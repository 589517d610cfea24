// The tuner page's live run panel (#current-run and the performance / recommendations panels):
// status, progress bar with ETA and throughput, the log console, both charts, the analysis and the
// recommendations, all drawn from a run state (run_state.js) and what changed since the last one.
// Needs common.js, charts.js (window.TunerCharts) and recommendations.js.
//
// API (window.TunerLiveRun):
//   const view = TunerLiveRun.create({onQuickApply(changes, rec), onApplyRun(rec), labels() -> {field: label}})
//   view.show(id)                 a new run is followed: empty panel titled #id (null: no run)
//   view.render(run, prev)        draw `run`; log lines for what is new since `prev`
//   view.connection(state)        live | polling | refused
//   view.setCancelling(on), view.error(text), view.recommendationsError(text)
(function () {
  "use strict";
  const { el, fmt, runState: RS } = window.Tuner;
  const { renderRecommendations, renderPerformanceSummary } = window.TunerRecommendations;
  const MAX_LOG_LINES = 800;

  const $ = (id) => document.getElementById(id);

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function epochLine(metric, total) {
    const n = (v, d = 4) => (typeof v === "number" && isFinite(v) ? v.toFixed(d) : "nan");
    const rate = metric.learning_rate;
    const lr = typeof rate === "number" && isFinite(rate)
      ? (rate !== 0 && Math.abs(rate) < 0.01 ? rate.toExponential(2) : String(Number(rate.toPrecision(3)))) : "–";
    const parts = [
      `epoch ${metric.epoch}/${total || "?"}`, `loss ${n(metric.train_loss)}`, `acc ${fmt.pct(metric.train_accuracy)}`,
      `val_loss ${n(metric.val_loss)}`, `val_acc ${fmt.pct(metric.val_accuracy)}`, `lr ${lr}`,
    ];
    if (typeof metric.seconds === "number") parts.push(`${metric.seconds.toFixed(1)}s`);
    return parts.join("  ");
  }

  function statusLine(run) {
    const extra = [];
    if (RS.isTerminal(run.status)) {
      if (typeof run.best_val_accuracy === "number") {
        extra.push(`best val ${fmt.pct(run.best_val_accuracy)}${run.best_epoch ? ` @ epoch ${run.best_epoch}` : ""}`);
      }
      if (typeof run.test_accuracy === "number") extra.push(`test ${fmt.pct(run.test_accuracy)}`);
    }
    if (run.message) extra.push(run.message);
    if (run.error_message) extra.push(run.error_message);
    return `status → ${run.status}${extra.length ? ` · ${extra.join(" · ")}` : ""}`;
  }

  function create(options) {
    const dom = {
      currentRun: $("current-run"), runTitle: $("run-title"), runStatus: $("run-status"), connection: $("connection-state"),
      runLink: $("run-link"), cancel: $("cancel-button"), runError: $("run-error"), progressBar: $("progress-bar"),
      progressText: $("progress-text"), eta: $("eta"), throughput: $("throughput"), log: $("log-console"),
      summary: $("performance-summary"), recommendations: $("recommendations"), recError: $("recommendations-error"),
    };
    const charts = window.TunerCharts.createMetricCharts($("loss-chart"), $("accuracy-chart"));
    let current = null;     // the run state drawn last
    let cancelling = false;
    let epochClock = null;  // {epoch, start, fraction}: timing the first epoch for an ETA

    function appendLog(text, kind) {
      const stick = dom.log.scrollHeight - dom.log.scrollTop - dom.log.clientHeight < 24;
      dom.log.append(el("div", { class: `log-line line-${kind || "info"}` }, [
        el("span", { class: "log-prompt", "aria-hidden": "true", text: "> " }), text,
      ]));
      while (dom.log.childElementCount > MAX_LOG_LINES) dom.log.firstElementChild.remove();
      if (stick) dom.log.scrollTop = dom.log.scrollHeight;
    }

    function setProgress(percent, text, eta, throughput) {
      const value = Math.min(100, Math.max(0, Math.round(percent * 10) / 10));
      const width = `${value}%`;
      if (dom.progressBar.style.width !== width) dom.progressBar.style.width = width;
      const now = String(Math.round(value));
      if (dom.progressBar.getAttribute("aria-valuenow") !== now) dom.progressBar.setAttribute("aria-valuenow", now);
      if (dom.progressBar.getAttribute("aria-valuetext") !== text) dom.progressBar.setAttribute("aria-valuetext", text);
      setText(dom.progressText, text);
      setText(dom.eta, eta);
      setText(dom.throughput, throughput);
    }

    function secondsPerEpoch(run) {
      const recent = run.metrics.slice(-3).map((m) => m.seconds).filter((s) => typeof s === "number" && s > 0);
      if (recent.length) return recent.reduce((a, b) => a + b, 0) / recent.length;
      const p = run.progress;
      if (epochClock && p && p.epoch === epochClock.epoch) {
        const fraction = p.batch / p.batches - epochClock.fraction;
        const elapsed = (performance.now() - epochClock.start) / 1000;
        if (fraction > 0.05 && elapsed > 0.2) return elapsed / fraction;
      }
      return null;
    }

    function renderProgress(run) {
      const last = RS.lastMetric(run);
      const throughput = last && typeof last.samples_per_second === "number"
        ? `${Math.round(last.samples_per_second).toLocaleString("en-US")} samples/s` : "– samples/s";
      const { fraction, text } = RS.progressOf(run);
      let eta = "–";
      if (run.status === "succeeded") eta = "done";
      else if (run.status === "running") {
        const total = RS.epochsTotal(run);
        const perEpoch = secondsPerEpoch(run);
        eta = perEpoch && total ? fmt.duration(Math.max(0, (1 - fraction) * total * perEpoch)) : "estimating…";
      }
      setProgress(fraction * 100, text, eta, throughput);
    }

    function renderStatus(run) {
      setText(dom.runStatus, run.status || "–");
      dom.runStatus.className = run.status ? `status status-${run.status}` : "status";
      if (!RS.isActive(run.status)) cancelling = false;
      dom.cancel.disabled = !RS.isActive(run.status) || cancelling;
      setText(dom.cancel, cancelling ? "Cancelling…" : "Cancel");
    }

    // Log lines for what `run` has that `prev` had not. A finishing run's last epochs come before
    // its final status line.
    function renderLog(run, prev) {
      const seen = new Set(prev.metrics.map((m) => m.epoch));
      const fresh = run.metrics.filter((m) => !seen.has(m.epoch));
      const newStatus = run.status && run.status !== prev.status;
      const statusEntry = () => appendLog(statusLine(run), RS.STATUS_LEVEL[run.status] || "status");
      if (newStatus && !RS.isTerminal(run.status)) statusEntry();
      for (const metric of fresh) appendLog(epochLine(metric, RS.epochsTotal(run)), "epoch");
      if (newStatus && RS.isTerminal(run.status)) statusEntry();
      if (!newStatus && run.error_message && run.error_message !== prev.error_message) {
        appendLog(`error: ${run.error_message}`, "error");
      }
      if (run.log !== prev.log && run.log.length && prev.id === run.id) {
        const entry = run.log[run.log.length - 1];
        appendLog(entry.message, ["warning", "error"].includes(entry.level) ? entry.level : "info");
      }
    }

    function renderAdvice(run, prev) {
      const changed = ["recommendations", "status", "performance_category", "analysis", "config"]
        .some((key) => run[key] !== prev[key]);
      if (!changed) return;
      renderRecommendations(dom.recommendations, run.recommendations, {
        baseConfig: run.config || null, labels: options.labels(), emptyText: RS.recommendationsEmptyText(run),
        onQuickApply: options.onQuickApply, onApplyRun: options.onApplyRun,
      });
      if (run.performance_category || run.analysis) {
        renderPerformanceSummary(dom.summary, run.performance_category || null, run.analysis || {});
      }
    }

    function render(run, prev) {
      const before = prev || RS.emptyRun(run.id);
      const p = run.progress;
      if (p && (!epochClock || epochClock.epoch !== p.epoch)) {
        epochClock = { epoch: p.epoch, start: performance.now(), fraction: p.batch / Math.max(1, p.batches) };
      }
      setText(dom.runTitle, `#${run.id}${run.name ? ` · ${run.name}` : ""}`);
      renderStatus(run);
      renderLog(run, before);
      if (run.metrics !== before.metrics) charts.setMetrics(run.metrics);
      renderProgress(run);
      renderAdvice(run, before);
      current = run;
    }

    function show(id) {
      current = null;
      cancelling = false;
      epochClock = null;
      charts.reset();
      dom.log.replaceChildren();
      setText(dom.runError, "");
      setText(dom.recError, "");
      dom.currentRun.dataset.experimentId = id === null ? "" : String(id);
      dom.runLink.hidden = id === null;
      setText(dom.runTitle, id === null ? "" : `#${id}`);
      setText(dom.runStatus, id === null ? "idle" : "–");
      dom.runStatus.className = "status";
      dom.cancel.disabled = true;
      setProgress(0, id === null ? "no run yet" : "waiting for the run…", "–", "– samples/s");
      if (id === null) connection("idle");
      dom.summary.dataset.category = "";
      dom.summary.replaceChildren(el("p", { class: "muted", text: "The analysis appears when the run finishes." }));
      renderRecommendations(dom.recommendations, [], { emptyText: "Recommendations appear when the run finishes." });
    }

    function connection(state) {
      setText(dom.connection, state);
      dom.connection.className = state === "idle" ? "connection-state" : `connection-state connection-${state}`;
      if (state === "refused") {
        const id = dom.currentRun.dataset.experimentId;
        setText(dom.runError, `Run #${id} cannot be shown: it does not exist, is not yours, or your session expired.`);
        dom.cancel.disabled = true;
        if (!current || !current.status) setProgress(0, "run unavailable", "–", "– samples/s");
      }
    }

    // A running run's ETA counts down between events.
    window.setInterval(() => { if (current && current.status === "running") renderProgress(current); }, 1000);

    return {
      show,
      render,
      connection,
      setCancelling(on) {
        cancelling = on;
        if (current) renderStatus(current);
      },
      error: (text) => setText(dom.runError, text),
      recommendationsError: (text) => setText(dom.recError, text),
      setLink: (href) => { dom.runLink.href = href; },
    };
  }

  window.TunerLiveRun = { create };
})();
