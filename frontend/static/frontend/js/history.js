// History page: the user's runs in a sortable table, live status updates from the user's
// websocket stream (/ws/experiments/), and an overlay of the selected runs' validation accuracy.
// Needs common.js (window.Tuner) and, for the chart, Chart.js (window.Chart).
(function () {
  "use strict";
  const { api, urls, el, fmt, errorText, LiveSocket, runState: RS } = window.Tuner;

  const POLL_MS = 10000;
  // Fields sorted high-to-low on their first click (the rest low-to-high).
  const DESCENDING_FIRST = new Set(["id", "created_at", "best_val_accuracy", "test_accuracy", "epochs",
    "duration_seconds", "learning_rate", "batch_size", "hidden_layers", "parent"]);
  const PALETTE = ["#00ff41", "#5cc8ff", "#ffc247", "#ff6bd6", "#b18cff", "#ff8a5c", "#e6ff5c", "#4affea",
    "#ff5c5c", "#9dffb8"];
  const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];
  const POINTS = ["circle", "rect", "triangle", "rectRot", "star", "crossRot"];

  const table = document.getElementById("runs-table");
  const tbody = document.getElementById("runs-body");
  const message = document.getElementById("history-message");
  const countLabel = document.getElementById("runs-count");
  const filterInput = document.getElementById("runs-filter");
  const statusFilter = document.getElementById("runs-status-filter");
  const connectionLabel = document.getElementById("history-connection");
  const compareCanvas = document.getElementById("compare-chart");
  const compareEmpty = document.getElementById("compare-empty");
  const compareSummary = document.getElementById("compare-summary");
  const compareClear = document.getElementById("compare-clear");

  const runs = new Map();          // id -> run (list shape)
  const signatures = new Map();    // id -> JSON of the run as last drawn
  const metricsCache = new Map();  // id -> [epoch metrics]
  const colors = new Map();        // id -> palette index (stable while selected)
  let selected = [];               // ids in selection order
  let sort = { field: "id", dir: "desc" };
  let totalCount = 0;
  let chart = null;

  // ------------------------------------------------------------------ URL state

  function readUrlState() {
    const params = new URLSearchParams(window.location.search);
    const compare = (params.get("compare") || "").split(",").map((v) => parseInt(v, 10)).filter((v) => v > 0);
    selected = [...new Set(compare)].slice(0, 12);
    const sortParam = params.get("sort");
    if (sortParam) {
      const dir = sortParam.startsWith("-") ? "desc" : "asc";
      const field = sortParam.replace(/^-/, "");
      if (table.querySelector(`button[data-sort="${CSS.escape(field)}"]`)) sort = { field, dir };
    }
  }

  function writeUrlState() {
    const params = new URLSearchParams(window.location.search);
    if (selected.length) params.set("compare", selected.join(","));
    else params.delete("compare");
    const sortText = (sort.dir === "desc" ? "-" : "") + sort.field;
    if (sortText !== "-id") params.set("sort", sortText);
    else params.delete("sort");
    const query = params.toString().replace(/%2C/gi, ",");
    window.history.replaceState(null, "", window.location.pathname + (query ? `?${query}` : ""));
  }

  // ------------------------------------------------------------------ values

  function cfg(run) { return run.config || {}; }

  function sortValue(run, field) {
    const c = cfg(run);
    switch (field) {
      case "id": return run.id;
      case "name": return (run.name || "").toLowerCase();
      case "status": return run.status;
      case "hidden_layers": {
        const layers = Array.isArray(c.hidden_layers) ? c.hidden_layers : [];
        return layers.length ? layers.reduce((a, b) => a + b, 0) + layers.length / 10 : null;
      }
      case "optimizer": return c.optimizer || null;
      case "learning_rate": return typeof c.learning_rate === "number" ? c.learning_rate : null;
      case "batch_size": return typeof c.batch_size === "number" ? c.batch_size : null;
      case "epochs": return typeof c.epochs === "number" ? c.epochs * 10000 + (run.epochs_done || 0) : null;
      case "created_at": return run.created_at ? Date.parse(run.created_at) : null;
      default: return run[field] === undefined ? null : run[field];
    }
  }

  function compareRuns(a, b) {
    const va = sortValue(a, sort.field);
    const vb = sortValue(b, sort.field);
    if (va === null && vb === null) return b.id - a.id;
    if (va === null) return 1;   // blanks last in either direction
    if (vb === null) return -1;
    let result = typeof va === "string" ? va.localeCompare(vb) : va - vb;
    if (sort.dir === "desc") result = -result;
    return result || b.id - a.id;
  }

  function runLabel(run) {
    return `#${run.id}${run.name ? ` ${run.name}` : ""}`;
  }

  // ------------------------------------------------------------------ rows

  function cell(label, className, children) {
    return el("td", { class: className, dataset: { label } }, children);
  }

  function rowCells(run) {
    const c = cfg(run);
    const layers = Array.isArray(c.hidden_layers) ? c.hidden_layers.join("×") : "–";
    const epochs = typeof c.epochs === "number"
      ? (run.epochs_done && run.epochs_done !== c.epochs ? `${run.epochs_done}/${c.epochs}` : String(c.epochs)) : "–";
    const statusTitle = run.message || run.error_message || null;
    return [
      cell("Run", "col-run", [el("a", { class: "run-link", href: urls.runPage(run.id) }, [
        el("span", { class: "run-id", text: `#${run.id}` }),
        el("span", { class: "run-name", text: run.name || "untitled" }),
      ])]),
      cell("Status", "col-status", [el("span", {
        class: `status status-${run.status}`, text: run.status, title: statusTitle,
      })]),
      cell("Hidden", "col-hidden", [el("code", { text: layers })]),
      cell("Optimizer", "col-optimizer", c.optimizer || "–"),
      cell("LR", "col-num", fmt.value(c.learning_rate)),
      cell("Batch", "col-num", fmt.value(c.batch_size)),
      cell("Epochs", "col-num", epochs),
      cell("Best val", "col-num col-accuracy", fmt.pct(run.best_val_accuracy)),
      cell("Test", "col-num col-accuracy", fmt.pct(run.test_accuracy)),
      cell("Duration", "col-num", fmt.duration(run.duration_seconds)),
      cell("Lineage", "col-lineage", run.parent
        ? [el("a", { href: urls.runPage(run.parent), class: "lineage-link", title: `Derived from run #${run.parent}` },
          `← #${run.parent}`)]
        : [el("span", { class: "muted", text: "–" })]),
      cell("Created", "col-created", [el("time", { datetime: run.created_at || null, text: fmt.shortTime(run.created_at) })]),
    ];
  }

  function fillRow(tr, run) {
    while (tr.cells.length > 1) tr.deleteCell(1);
    tr.append(...rowCells(run));
    tr.dataset.status = run.status;
    signatures.set(run.id, JSON.stringify(run));
  }

  function buildRow(run) {
    const checkbox = el("input", {
      type: "checkbox", class: "compare-checkbox", value: String(run.id),
      "aria-label": `Compare run ${runLabel(run)}`,
    });
    checkbox.checked = selected.includes(run.id);
    checkbox.addEventListener("change", () => toggleSelected(run.id, checkbox.checked));
    const tr = el("tr", { dataset: { experimentId: String(run.id) } }, [
      el("td", { class: "col-select", dataset: { label: "Compare" } }, [checkbox]),
    ]);
    tr.classList.toggle("selected", checkbox.checked);
    fillRow(tr, run);
    return tr;
  }

  function rowOf(id) {
    return tbody.querySelector(`tr[data-experiment-id="${id}"]`);
  }

  function visible(run) {
    const wanted = statusFilter.value;
    if (wanted && run.status !== wanted) return false;
    const text = filterInput.value.trim().toLowerCase();
    if (!text) return true;
    return `#${run.id} ${run.name || ""}`.toLowerCase().includes(text);
  }

  function renderTable() {
    const list = [...runs.values()].filter(visible).sort(compareRuns);
    const focused = document.activeElement;
    const focusId = focused && tbody.contains(focused) ? focused.closest("tr").dataset.experimentId : null;
    const focusClass = focused && tbody.contains(focused) ? focused.className : null;
    const existing = new Map([...tbody.rows].map((tr) => [tr.dataset.experimentId, tr]));
    const rows = list.map((run) => {
      const tr = existing.get(String(run.id));
      if (tr && signatures.get(run.id) === JSON.stringify(run)) return tr;
      return tr ? (fillRow(tr, run), tr) : buildRow(run);
    });
    tbody.replaceChildren(...rows);
    if (focusId) {
      const again = rowOf(focusId);
      const target = again && focusClass ? again.querySelector(`.${focusClass.split(" ")[0]}`) : null;
      if (target) target.focus();
    }
    for (const th of table.querySelectorAll("th")) {
      const button = th.querySelector("button[data-sort]");
      if (!button) continue;
      const active = button.dataset.sort === sort.field;
      if (active) th.setAttribute("aria-sort", sort.dir === "desc" ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
      button.classList.toggle("sorted", active);
      button.dataset.dir = active ? sort.dir : "";
    }
    const shown = list.length;
    const all = runs.size;
    countLabel.textContent = shown === all ? `(${all})` : `(${shown} of ${all})`;
    if (!all) {
      message.replaceChildren("No runs yet. ", el("a", { href: urls.tuner(), text: "Start one in the tuner" }), ".");
    } else if (!shown) {
      message.textContent = "No run matches the filter.";
    } else if (totalCount > all) {
      message.textContent = `Showing your newest ${all} of ${totalCount} runs.`;
    } else {
      message.textContent = "";
    }
  }

  function flash(id) {
    const tr = rowOf(id);
    if (!tr) return;
    tr.classList.remove("highlight");
    void tr.offsetWidth; // restart the animation
    tr.classList.add("highlight");
  }

  // One changed run: redraw its row only (no re-sort under the user's pointer).
  function updateRun(run, { highlight = true } = {}) {
    const known = runs.has(run.id);
    const merged = { ...(runs.get(run.id) || {}), ...run };
    runs.set(run.id, merged);
    if (!known) { renderTable(); if (highlight) flash(run.id); return; }
    if (signatures.get(run.id) === JSON.stringify(merged)) return;
    const tr = rowOf(run.id);
    if (tr) {
      fillRow(tr, merged);
      if (!visible(merged)) renderTable();
      if (highlight) flash(run.id);
    } else if (visible(merged)) {
      renderTable();
    }
    const checkbox = tr && tr.querySelector(".compare-checkbox");
    if (checkbox) checkbox.setAttribute("aria-label", `Compare run ${runLabel(merged)}`);
  }

  // ------------------------------------------------------------------ loading

  async function loadAll() {
    try {
      const page = await api.get(`${urls.to("api:experiment-list")}?limit=200&ordering=-created_at`);
      const list = Array.isArray(page) ? page : page.results || [];
      totalCount = typeof page.count === "number" ? page.count : list.length;
      const ids = new Set(list.map((run) => run.id));
      const changed = [];
      for (const run of list) {
        const before = signatures.get(run.id);
        runs.set(run.id, run);
        if (before && before !== JSON.stringify(run)) changed.push(run.id);
      }
      for (const id of [...runs.keys()]) if (!ids.has(id)) runs.delete(id);
      renderTable();
      changed.forEach(flash);
      // Selected runs that are gone (deleted) leave the chart.
      const missing = selected.filter((id) => !runs.has(id));
      if (missing.length) { selected = selected.filter((id) => runs.has(id)); writeUrlState(); }
      for (const id of changed) if (selected.includes(id)) refreshMetrics(id);
      updateCompare();
      return true;
    } catch (err) {
      message.textContent = `Could not load your runs: ${errorText(err)}`;
      return false;
    }
  }

  // ------------------------------------------------------------------ live stream

  // Status events carry every run-summary field but the id: enough to draw (or add) the run's row.
  function onStatus(event) {
    const id = event.experiment;
    const known = runs.get(id);
    const before = known ? { seq: 0, ...known } : RS.emptyRun(id);
    const after = RS.applyRunEvent(before, event);
    if (after === before) return;
    const { metrics, recommendations, log, progress, ...row } = after;
    updateRun(row);
    if (selected.includes(id)) refreshMetrics(id);
  }

  let everConnected = false;
  function setConnection(state) {
    connectionLabel.textContent = state;
    connectionLabel.parentElement.dataset.state = state;
  }
  const socket = new LiveSocket("experiments/", {
    open() {
      setConnection("live");
      if (everConnected) loadAll(); // we may have missed events while away
      everConnected = true;
    },
    message(event) { if (event.type === "status" && typeof event.experiment === "number") onStatus(event); },
    down: () => setConnection("polling"),
    refused: () => setConnection("refused"),
  });
  let pollTimer = null;

  function schedulePoll() {
    window.clearInterval(pollTimer);
    pollTimer = window.setInterval(() => {
      if (document.hidden) return;
      const anyActive = [...runs.values()].some((run) => RS.isActive(run.status));
      if (anyActive || !socket.open) loadAll();
    }, POLL_MS);
  }

  // ------------------------------------------------------------------ compare chart

  function colorIndex(id) {
    if (!colors.has(id)) {
      const used = new Set([...colors.entries()].filter(([k]) => selected.includes(k)).map(([, v]) => v));
      let index = 0;
      while (used.has(index) && index < 1000) index += 1;
      colors.set(id, index);
    }
    return colors.get(id);
  }

  function toggleSelected(id, on) {
    if (on && !selected.includes(id)) selected.push(id);
    if (!on) { selected = selected.filter((s) => s !== id); colors.delete(id); }
    const tr = rowOf(id);
    if (tr) tr.classList.toggle("selected", on);
    writeUrlState();
    if (on && !metricsCache.has(id)) refreshMetrics(id);
    updateCompare();
  }

  async function refreshMetrics(id) {
    try {
      const list = await api.get(urls.to("api:experiment-metrics", id));
      metricsCache.set(id, Array.isArray(list) ? list : []);
    } catch (err) {
      metricsCache.set(id, []);
    }
    updateCompare();
  }

  function ensureChart() {
    if (chart || !window.Chart) return chart;
    const font = { family: '"Source Code Pro", ui-monospace, monospace', size: 11 };
    chart = new window.Chart(compareCanvas, {
      type: "line",
      data: { datasets: [] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        parsing: false,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: { type: "linear", min: 1, title: { display: true, text: "epoch", color: "#8fcf9f", font },
            ticks: { color: "#8fcf9f", font, precision: 0 }, grid: { color: "rgba(15, 90, 38, 0.55)" } },
          y: { title: { display: true, text: "val accuracy %", color: "#8fcf9f", font },
            ticks: { color: "#8fcf9f", font }, grid: { color: "rgba(15, 90, 38, 0.55)" } },
        },
        plugins: {
          legend: { labels: { color: "#c8ffd4", font, usePointStyle: true, pointStyleWidth: 10, boxWidth: 8, boxHeight: 8 } },
          tooltip: {
            titleFont: font, bodyFont: font,
            callbacks: {
              title: (items) => (items.length ? `epoch ${items[0].parsed.x}` : ""),
              label: (item) => `${item.dataset.label}: ${item.parsed.y.toFixed(2)}%`,
            },
          },
        },
      },
    });
    return chart;
  }

  function updateCompare() {
    const ids = selected.filter((id) => runs.has(id));
    ids.forEach(colorIndex); // colours follow the selection order, not the order metrics arrive in
    const ready = ids.filter((id) => metricsCache.has(id));
    const datasets = ready.map((id) => {
      const run = runs.get(id);
      const index = colorIndex(id);
      const color = PALETTE[index % PALETTE.length];
      const points = (metricsCache.get(id) || [])
        .filter((m) => typeof m.val_accuracy === "number" && isFinite(m.val_accuracy))
        .map((m) => ({ x: m.epoch, y: m.val_accuracy * 100 }));
      return {
        label: runLabel(run), data: points, borderColor: color, backgroundColor: color, borderWidth: 2,
        borderDash: DASHES[Math.floor(index / PALETTE.length) % DASHES.length] || [],
        pointStyle: POINTS[index % POINTS.length], pointRadius: 3, pointHoverRadius: 5, tension: 0.2,
      };
    });
    compareCanvas.dataset.series = String(datasets.length);
    const c = ensureChart();
    if (c) {
      c.data.datasets = datasets;
      c.update("none");
    }
    compareEmpty.hidden = ids.length > 0;
    compareClear.disabled = ids.length === 0;
    if (!ids.length) compareSummary.textContent = "No runs selected.";
    else if (ready.length < ids.length) compareSummary.textContent = `Loading ${ids.length - ready.length} of ${ids.length}…`;
    else compareSummary.textContent = `${ids.length} run${ids.length === 1 ? "" : "s"} selected.`;
    const label = ready.length
      ? `Validation accuracy per epoch of ${ready.map((id) => runLabel(runs.get(id))).join(", ")}`
      : "Validation accuracy per epoch of the selected runs (none selected)";
    compareCanvas.setAttribute("aria-label", label);
  }

  // ------------------------------------------------------------------ wiring

  table.querySelector("thead").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-sort]");
    if (!button) return;
    const field = button.dataset.sort;
    if (sort.field === field) sort = { field, dir: sort.dir === "desc" ? "asc" : "desc" };
    else sort = { field, dir: DESCENDING_FIRST.has(field) ? "desc" : "asc" };
    writeUrlState();
    renderTable();
  });
  filterInput.addEventListener("input", renderTable);
  statusFilter.addEventListener("change", renderTable);
  compareClear.addEventListener("click", () => {
    selected = [];
    colors.clear();
    for (const box of tbody.querySelectorAll(".compare-checkbox")) {
      box.checked = false;
      box.closest("tr").classList.remove("selected");
    }
    writeUrlState();
    updateCompare();
  });

  readUrlState();
  loadAll().then(() => {
    for (const id of selected) if (!metricsCache.has(id)) refreshMetrics(id);
    updateCompare();
  });
  schedulePoll();
})();
