// Sweep detail page (/sweeps/<id>/): follows the sweep over its websocket (ws/sweeps/<id>/: a snapshot,
// then numbered trial_started / trial_epoch / trial_ended / best_changed / sweep_status / sweep_finished
// events, kept in a sweep_state.js state) and draws the header, warnings, trial table, best-so-far chart,
// a parallel-coordinates plot and the importance bars. Polling GET /api/sweeps/<id>/ every 2 s is only
// the fallback while the socket is down; `?poll=off` (sets #sweep-page[data-poll-fallback=off]) turns it
// off, so a test can prove the page updates from pushes alone. Needs common.js, sweep_state.js and
// Chart.js (window.Chart).
(function () {
  "use strict";
  const { api, urls, el, fmt, errorText, runState: RS, LiveSocket } = window.Tuner;
  const SS = window.TunerSweepState;
  const AT = window.TunerAutotune;  // autotune.js: anytimeSeries

  const root = document.getElementById("sweep-page");
  const sweepId = parseInt(root.dataset.sweepId, 10);
  if (new URLSearchParams(window.location.search).get("poll") === "off") root.dataset.pollFallback = "off";
  const POLL_MS = 2000;
  const ACTIVE = RS.ACTIVE;  // sweeps and their trials (runs) share the run statuses' active pair
  const COLORS = { green: "#00ff41", info: "#5cc8ff", grid: "rgba(15, 90, 38, 0.55)", tick: "#8fcf9f", text: "#c8ffd4" };
  const FONT = { family: '"Source Code Pro", ui-monospace, monospace', size: 11 };
  const hasChart = typeof window.Chart === "function";

  const $ = (id) => document.getElementById(id);
  const statusEl = $("sweep-status");
  const connection = $("sweep-connection");
  const connectionBox = $("sweep-connection-box");
  const hidePruned = $("hide-pruned");
  const cancelButton = $("sweep-cancel");
  const extendButton = $("sweep-extend");
  const extendInput = $("sweep-extend-by");
  const useBest = $("sweep-use-best");
  const runBest = $("sweep-run-best");
  const actionMessage = $("sweep-action-message");

  let state = SS.emptySweep(sweepId);  // the sweep as last applied (sweep_state.js)
  let sweep = null;                    // the sweep as last drawn
  let timer = null;
  let busy = false;
  let bestConfig = { id: null, config: null, pending: null };
  const charts = { best: null, parallel: null, importance: null, anytime: null };

  // ------------------------------------------------------------------ websocket, polling as fallback

  function setConnection(dataState, text) {
    connectionBox.dataset.state = dataState;
    connection.textContent = text;
  }

  function apply(event) {
    const next = SS.applySweepEvent(state, event);
    if (next === state) return;
    state = next;
    if (state.status) render(state);
  }

  function receive(event) {
    if (SS.resyncRefused(event)) { poll(); return; }  // one REST read instead
    if (SS.seqGap(state, event)) resync();  // the channel layer dropped something
    apply(event);
  }

  function resync() {
    if (socket.open) socket.send({ type: "resync" });
    else poll();
  }

  const pollingOff = () => root.dataset.pollFallback === "off";

  function stopPolling() {
    window.clearTimeout(timer);
    timer = null;
  }

  // The socket is down: read the REST detail every 2 s while the sweep is active (unless turned off).
  function fallback() {
    if (pollingOff()) { setConnection("refused", "disconnected · polling off"); return; }
    setConnection("polling", "polling · every 2 s");
    if (timer === null) poll();
  }

  async function poll() {
    stopPolling();
    try {
      apply({ type: "snapshot", sweep: await api.get(urls.to("api:sweep-detail", sweepId)) });
    } catch (err) {
      if (err.status === 404) { setConnection("refused", "not found"); return; }
    }
    if (!socket.open && !pollingOff() && (!state.status || SS.isActive(state))) {
      timer = window.setTimeout(poll, POLL_MS);
    }
  }

  const socket = new LiveSocket(`sweeps/${sweepId}/`, {
    open: () => { stopPolling(); setConnection("live", "live"); },
    message: receive,
    down: fallback,
    refused: () => { stopPolling(); setConnection("refused", "not found"); },
  });

  // ------------------------------------------------------------------ header

  function render(data) {
    sweep = data;
    document.title = `Sweep #${data.id} · Tuner`;
    $("sweep-name").textContent = data.name || "";
    statusEl.textContent = data.status;
    statusEl.className = `status status-${data.status}`;
    const so = data.second_objective && data.second_objective !== "none" ? ` · second objective: ${data.second_objective}` : "";
    $("sweep-meta").textContent = `${data.strategy} search · pruner: ${data.pruner} · parallelism ${data.parallelism} · ` +
      `seed ${data.seed}${so}${data.warm_start ? ` · warm start (${(data.warm_start_runs || []).length} runs)` : ""}`;

    const c = data.counts || {};
    const done = (c.total || 0) - (c.active || 0);
    const pct = data.budget ? Math.min(100, Math.round((100 * done) / data.budget)) : 0;
    $("sweep-progress").setAttribute("aria-valuenow", String(pct));
    $("sweep-progress").setAttribute("aria-valuetext", `${done} of ${data.budget} trials finished`);
    $("sweep-progress-bar").style.width = `${pct}%`;
    const parts = [`${done}/${data.budget} trials finished`];
    for (const key of [...ACTIVE].reverse().concat(RS.STATUSES.filter((status) => !ACTIVE.has(status)))) {
      if (c[key]) parts.push(`${c[key]} ${key}`);
    }
    if (c.remaining) parts.push(`${c.remaining} still to create`);
    $("sweep-counts").textContent = parts.join(" · ");

    $("sweep-best-value").textContent = fmt.pct(data.best_value, 2);
    const bestCell = $("sweep-best-trial");
    const best = (data.trials || []).find((t) => t.id === data.best_trial);
    bestCell.replaceChildren(data.best_trial
      ? el("a", { href: urls.runPage(data.best_trial), text: `run #${data.best_trial}${best ? ` (trial ${best.trial_number})` : ""}` })
      : "–");
    $("sweep-message").textContent = data.message || "";
    $("sweep-warnings").replaceChildren(...(data.warnings || []).map((w) => el("li", { class: "sweep-warning", text: w })));

    const active = ACTIVE.has(data.status);
    cancelButton.disabled = busy || !active;
    extendButton.disabled = busy || data.status === "cancelled";
    extendInput.disabled = data.status === "cancelled";
    runBest.disabled = busy || !data.best_trial;
    updateUseBest(data.best_trial);

    renderTrials();
    renderBestSoFar();
    renderAnytime();
    renderParallel();
    renderImportance();
  }

  // ------------------------------------------------------------------ best config

  async function fetchBestConfig(id) {
    if (bestConfig.id === id && bestConfig.config) return bestConfig.config;
    if (bestConfig.id === id && bestConfig.pending) return bestConfig.pending;
    bestConfig = { id, config: null, pending: null };
    bestConfig.pending = api.get(urls.to("api:experiment-detail", id)).then((run) => {
      if (bestConfig.id === id) bestConfig.config = run.config;
      return run.config;
    }).finally(() => { if (bestConfig.id === id) bestConfig.pending = null; });
    return bestConfig.pending;
  }

  function updateUseBest(id) {
    if (!id) {
      useBest.setAttribute("aria-disabled", "true");
      useBest.removeAttribute("href");
      return;
    }
    if (bestConfig.id === id && bestConfig.config) {
      useBest.href = urls.tuner(bestConfig.config);
      useBest.removeAttribute("aria-disabled");
      return;
    }
    fetchBestConfig(id).then(() => updateUseBest(id)).catch(() => { /* retried on next render */ });
  }

  // ------------------------------------------------------------------ trials table

  function paramText(value) {
    if (Array.isArray(value)) return value.map((v) => (Array.isArray(v) ? v.join("×") : fmt.value(v))).join("×");
    return fmt.value(value);
  }

  function renderTrials() {
    const trials = (sweep.trials || []).slice().sort((a, b) => a.trial_number - b.trial_number);
    const shown = hidePruned.checked ? trials.filter((t) => !t.pruned && t.status !== "pruned") : trials;
    $("trials-count").textContent = `(${shown.length}${shown.length !== trials.length ? ` of ${trials.length}` : ""})`;
    const body = $("trials-body");
    if (!shown.length) {
      body.replaceChildren(el("tr", {}, [el("td", { colspan: 7, class: "muted", text: trials.length ? "All trials are hidden." : "No trials yet." })]));
      return;
    }
    body.replaceChildren(...shown.map((t) => {
      const status = t.pruned && t.status !== "pruned" ? `${t.status} (pruned)` : t.status;
      const isBest = t.id === sweep.best_trial;
      const params = Object.entries(t.params || {}).map(([k, v]) =>
        el("span", { class: "param-chip" }, [el("span", { class: "muted", text: `${k}=` }), paramText(v)]));
      return el("tr", { dataset: { trialId: t.id, status: t.status }, class: isBest ? "best-trial" : null }, [
        el("td", { class: "col-num", dataset: { label: "Trial" }, text: `${t.trial_number}${isBest ? " ★" : ""}` }),
        el("td", { dataset: { label: "Status" } }, [el("span", {
          class: `status status-${t.pruned ? "pruned" : t.status}`, text: status, title: t.message || null })]),
        el("td", { class: "col-params", dataset: { label: "Params" } }, params),
        el("td", { class: "col-num col-accuracy", dataset: { label: "Best val" }, text: fmt.pct(t.best_val_accuracy, 2) }),
        el("td", { class: "col-num", dataset: { label: "Epochs" }, text: String(t.epochs_done ?? 0) }),
        el("td", { class: "col-num", dataset: { label: "Time" }, text: t.seconds ? fmt.duration(t.seconds) : "–" }),
        el("td", { dataset: { label: "Run" } }, [el("a", { href: urls.runPage(t.id), text: `#${t.id}`,
          "aria-label": `Open run #${t.id} (trial ${t.trial_number})` })]),
      ]);
    }));
  }

  // ------------------------------------------------------------------ charts

  function axisScale(label) {
    return {
      grid: { color: COLORS.grid }, ticks: { color: COLORS.tick, font: FONT },
      title: { display: !!label, text: label || "", color: COLORS.tick, font: FONT },
    };
  }

  // The anytime curve (best val / test accuracy so far vs seconds): only for sweeps with `anytime` points.
  function renderAnytime() {
    const points = Array.isArray(sweep.anytime) ? sweep.anytime : [];
    const panel = $("anytime-panel");
    const canvas = $("anytime-chart");
    panel.hidden = points.length === 0;
    canvas.dataset.points = String(points.length);
    if (!points.length) return;
    const { val, test } = AT.anytimeSeries(points);
    const last = points[points.length - 1];
    const budget = sweep.time_budget_seconds ? ` of a ${fmt.value(sweep.time_budget_seconds / 60)}-min budget` : "";
    $("anytime-summary").textContent = `best val ${fmt.pct(last.best_val_accuracy, 2)} · best test ` +
      `${fmt.pct(last.best_test_accuracy, 2)} at ${Math.round(last.seconds)} s${budget}`;
    if (!hasChart) return;
    const xMax = sweep.time_budget_seconds || undefined;
    if (!charts.anytime) {
      charts.anytime = new window.Chart(canvas, {
        type: "line",
        data: { datasets: [
          { label: "best val acc %", data: val, borderColor: COLORS.green, backgroundColor: COLORS.green,
            stepped: true, borderWidth: 2, pointRadius: 3 },
          { label: "best test acc %", data: test, borderColor: COLORS.info, backgroundColor: COLORS.info,
            stepped: true, borderWidth: 2, pointRadius: 3 }] },
        options: { responsive: true, maintainAspectRatio: false, animation: false,
          interaction: { mode: "nearest", intersect: false },
          scales: { x: { ...axisScale("seconds since the start"), type: "linear", min: 0, suggestedMax: xMax },
            y: { ...axisScale("accuracy %"), suggestedMax: 100 } },
          plugins: { legend: { display: true, labels: { color: COLORS.text, font: FONT } } } },
      });
    } else {
      charts.anytime.data.datasets[0].data = val;
      charts.anytime.data.datasets[1].data = test;
      charts.anytime.options.scales.x.suggestedMax = xMax;
      charts.anytime.update("none");
    }
  }

  function renderBestSoFar() {
    const canvas = $("best-so-far-chart");
    const points = (sweep.best_so_far || []).filter((p) => typeof p.value === "number");
    canvas.dataset.points = String(points.length);
    $("best-so-far-empty").hidden = points.length > 0;
    if (!hasChart) return;
    const labels = points.map((p) => p.trial_number);
    const values = points.map((p) => +(p.value * 100).toFixed(3));
    if (!charts.best) {
      charts.best = new window.Chart(canvas, {
        type: "line",
        data: { labels, datasets: [{ label: "best val acc %", data: values, borderColor: COLORS.green,
          backgroundColor: COLORS.green, stepped: true, borderWidth: 2, pointRadius: 3 }] },
        options: { responsive: true, maintainAspectRatio: false, animation: false,
          interaction: { mode: "index", intersect: false },
          scales: { x: axisScale("trial"), y: { ...axisScale("accuracy %"), suggestedMax: 100 } },
          plugins: { legend: { display: false } } },
      });
    } else {
      charts.best.data.labels = labels;
      charts.best.data.datasets[0].data = values;
      charts.best.update("none");
    }
  }

  // One axis per varied field: maps a raw value to 0..1 (log-aware), plus a label of its range.
  function makeAxis(field, spec, values) {
    spec = spec || {};
    const key = (v) => JSON.stringify(v);
    if (Array.isArray(spec.values) && spec.values.some((v) => typeof v !== "number")) {
      const order = spec.values.map(key);
      values.forEach((v) => { if (!order.includes(key(v))) order.push(key(v)); });
      const n = order.length;
      return { name: field, norm: (v) => (n <= 1 ? 0.5 : order.indexOf(key(v)) / (n - 1)),
        range: `${field}: ${order.map((k) => paramText(JSON.parse(k))).join(" | ")}` };
    }
    const nums = values.filter((v) => typeof v === "number" && isFinite(v));
    let lo = typeof spec.low === "number" ? spec.low : Math.min(...nums, ...(spec.values || []));
    let hi = typeof spec.high === "number" ? spec.high : Math.max(...nums, ...(spec.values || []));
    if (nums.length) { lo = Math.min(lo, ...nums); hi = Math.max(hi, ...nums); }
    const log = spec.scale === "log" || (Array.isArray(spec.values) && lo > 0 && hi / lo >= 20);
    const tf = (v) => (log ? Math.log10(v) : v);
    const a = tf(lo);
    const b = tf(hi);
    return { name: field,
      norm: (v) => (typeof v !== "number" || !isFinite(v) || (log && v <= 0) ? null : (b === a ? 0.5 : (tf(v) - a) / (b - a))),
      range: `${field}: ${fmt.value(lo)} … ${fmt.value(hi)}${log ? " (log)" : ""}` };
  }

  function objectiveColor(t) {
    // dim green (worst) -> bright yellow-green (best)
    const r = Math.round(20 + t * 210);
    const g = Math.round(110 + t * 145);
    const b = Math.round(60 - t * 30);
    return `rgba(${r}, ${g}, ${b}, ${0.35 + 0.65 * t})`;
  }

  function renderParallel() {
    const canvas = $("parallel-chart");
    const fields = Object.keys(sweep.space || {});
    const finished = (sweep.trials || []).filter((t) => !ACTIVE.has(t.status) && typeof t.best_val_accuracy === "number" &&
      !(hidePruned.checked && (t.pruned || t.status === "pruned")));
    canvas.dataset.lines = String(finished.length);
    $("parallel-empty").hidden = finished.length > 0;
    const axes = fields.map((f) => makeAxis(f, sweep.space[f], finished.map((t) => (t.params || {})[f])));
    const objs = finished.map((t) => t.best_val_accuracy);
    const oLo = Math.min(...objs);
    const oHi = Math.max(...objs);
    const objNorm = (v) => (oHi === oLo ? 0.5 : (v - oLo) / (oHi - oLo));
    $("parallel-ranges").textContent = finished.length
      ? [...axes.map((a) => a.range), `val acc: ${fmt.pct(oLo, 2)} … ${fmt.pct(oHi, 2)}`].join(" · ") : "";
    if (!hasChart) return;
    const labels = [...fields, "val acc"];
    const ordered = finished.slice().sort((a, b) => a.best_val_accuracy - b.best_val_accuracy); // best drawn last (on top)
    const datasets = ordered.map((t) => {
      const o = objNorm(t.best_val_accuracy);
      const color = objectiveColor(o);
      return {
        label: `trial ${t.trial_number}`,
        data: [...axes.map((a) => a.norm((t.params || {})[a.name])), o],
        raw: [...fields.map((f) => paramText((t.params || {})[f])), fmt.pct(t.best_val_accuracy, 2)],
        borderColor: color, backgroundColor: color, borderWidth: t.id === sweep.best_trial ? 3 : 1.5,
        borderDash: t.pruned || t.status === "pruned" ? [4, 3] : [],
        pointRadius: 2.5, pointHoverRadius: 5, tension: 0, spanGaps: true,
      };
    });
    if (!charts.parallel) {
      charts.parallel = new window.Chart(canvas, {
        type: "line",
        data: { labels, datasets },
        options: { responsive: true, maintainAspectRatio: false, animation: false,
          interaction: { mode: "nearest", intersect: true },
          scales: {
            x: { grid: { color: "rgba(92, 200, 255, 0.45)", lineWidth: 1.5 }, ticks: { color: COLORS.text, font: FONT } },
            y: { min: 0, max: 1, grid: { color: COLORS.grid }, ticks: { color: COLORS.tick, font: FONT, stepSize: 0.25, callback: (v) => Number(v).toFixed(2) },
              title: { display: true, text: "scaled 0–1", color: COLORS.tick, font: FONT } },
          },
          plugins: {
            legend: { display: false },
            tooltip: { callbacks: {
              title: (items) => (items.length ? items[0].dataset.label : ""),
              label: (item) => `${item.label}: ${item.dataset.raw[item.dataIndex]}`,
            } },
          } },
      });
    } else {
      charts.parallel.data.labels = labels;
      charts.parallel.data.datasets = datasets;
      charts.parallel.update("none");
    }
  }

  function renderImportance() {
    const canvas = $("importance-chart");
    const entries = Object.entries(sweep.importance || {}).filter(([, v]) => typeof v === "number")
      .sort((a, b) => b[1] - a[1]);
    canvas.dataset.bars = String(entries.length);
    $("importance-empty").hidden = entries.length > 0;
    if (!hasChart) return;
    const labels = entries.map(([k]) => k);
    const values = entries.map(([, v]) => +(v * 100).toFixed(2));
    if (!charts.importance) {
      charts.importance = new window.Chart(canvas, {
        type: "bar",
        data: { labels, datasets: [{ label: "importance %", data: values, backgroundColor: "rgba(0, 255, 65, 0.55)",
          borderColor: COLORS.green, borderWidth: 1 }] },
        options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
          scales: { x: { ...axisScale("share of variation %"), min: 0, suggestedMax: 100 }, y: axisScale("") },
          plugins: { legend: { display: false } } },
      });
    } else {
      charts.importance.data.labels = labels;
      charts.importance.data.datasets[0].data = values;
      charts.importance.update("none");
    }
  }

  // ------------------------------------------------------------------ actions

  async function action(button, fn) {
    if (busy) return;
    busy = true;
    actionMessage.textContent = "";
    const wasDisabled = button.disabled;
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      const extra = err.data && err.data.budget ? ` ${[].concat(err.data.budget).join(" ")}` : "";
      actionMessage.textContent = (err.data && err.data.budget ? "Could not extend:" : errorText(err)) + extra;
      button.disabled = wasDisabled;
    } finally {
      busy = false;
      if (sweep) render(sweep);
    }
  }

  cancelButton.addEventListener("click", () => action(cancelButton, async () => {
    if (!window.confirm("Cancel this sweep? Queued trials are dropped and running ones stop.")) return;
    apply({ type: "snapshot", sweep: await api.post(urls.to("api:sweep-cancel", sweepId)) });
  }));

  extendButton.addEventListener("click", () => action(extendButton, async () => {
    const by = parseInt(extendInput.value, 10);
    if (!(by > 0)) { actionMessage.textContent = "Enter how many trials to add (1 or more)."; return; }
    apply({ type: "snapshot", sweep: await api.post(urls.to("api:sweep-extend", sweepId), { budget: sweep.budget + by }) });
    actionMessage.textContent = "";
    if (!socket.open && timer === null) fallback();  // active again: the fallback polls again
  }));

  runBest.addEventListener("click", () => action(runBest, async () => {
    const config = await fetchBestConfig(sweep.best_trial);
    const full = Object.assign({}, config, { epochs: 30, train_size: null });
    const best = (sweep.trials || []).find((t) => t.id === sweep.best_trial);
    const run = await api.post(urls.to("api:experiment-list"), {
      name: `${sweep.name || `sweep #${sweep.id}`} best${best ? ` (trial ${best.trial_number})` : ""} · full`,
      config: full, parent: sweep.best_trial,
    });
    window.location.assign(`${urls.tuner()}?run=${run.id}`);
  }));

  useBest.addEventListener("click", (event) => {
    if (useBest.getAttribute("aria-disabled") === "true") event.preventDefault();
  });

  hidePruned.addEventListener("change", () => { if (sweep) { renderTrials(); renderParallel(); } });
})();
