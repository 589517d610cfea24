// Staff lab status page (/lab/): GET /api/lab/status/ rendered, re-read when ws/lab/ pushes a
// `lab_changed` nudge (a run changed status, a worker came or went; debounced) and every
// POLL_MS anyway (progress bars, heartbeat ages, a lost nudge). View logic: lab_status.js (pure).
// Needs common.js (window.Tuner) and lab_status.js (window.TunerLabStatus).
(function () {
  "use strict";
  const { api, urls, el, fmt, errorText, LiveSocket } = window.Tuner;
  const lab = window.TunerLabStatus;

  const $ = (id) => document.getElementById(id);
  const connection = $("lab-connection");
  let pending = null;
  let loading = false;
  let again = false;

  function progressBar(row) {
    return el("span", { class: "lab-progress" }, [
      el("span", { class: "bar-track", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
                   "aria-valuenow": row.percent === null ? null : String(row.percent), "aria-label": `${row.label} progress` },
         [el("span", { class: "bar-fill", style: `width: ${row.percent || 0}%` })]),
      el("span", { class: "lab-progress-text", text: row.text }),
    ]);
  }

  function runItem(row) {
    return el("li", { class: "lab-run", dataset: { runId: String(row.id) } }, [
      el("span", { class: "lab-run-name" }, [row.label]),
      el("span", { class: "muted small", text: ` ${row.owner}${row.sweep ? ` · sweep #${row.sweep}` : ""} · ${row.process}` }),
      progressBar(row),
    ]);
  }

  function renderWorkers(status) {
    const rows = lab.workerRows(status);
    $("lab-workers").replaceChildren(...rows.map((w) => el("article", {
      class: `lab-worker lab-worker-${w.state}`, dataset: { nodename: w.nodename } }, [
      el("header", { class: "lab-worker-head" }, [
        el("span", { class: `lab-dot lab-dot-${w.state}`, "aria-hidden": "true" }),
        el("strong", { class: "lab-worker-name", text: w.nodename }),
        el("span", { class: "badge lab-worker-state", text: w.state }),
      ]),
      el("p", { class: "muted small lab-worker-meta",
                text: `${w.hostname} · concurrency ${w.concurrency} · busy ${w.busy} · seen ${w.seen}` }),
      w.runs.length ? el("ul", { class: "lab-runs" }, w.runs.map(runItem))
        : el("p", { class: "muted small", text: "idle" }),
    ])));
    $("lab-workers-empty").hidden = rows.length > 0;
    const stray = (status.unattributed_runs || []).map(lab.runRow);
    $("lab-unattributed").hidden = stray.length === 0;
    $("lab-unattributed-list").replaceChildren(...stray.map(runItem));
  }

  function renderStates(status) {
    $("lab-states").replaceChildren(...lab.stateCounts(status.runs_by_state).map((c) => el("div", {
      class: "lab-state", dataset: { status: c.status } }, [
      el("dt", { class: `status-${c.status}`, text: c.status }), el("dd", { text: String(c.count) })])));
  }

  function renderFailures(status) {
    const rows = lab.failureRows(status);
    $("lab-failures-body").replaceChildren(...rows.map((f) => el("tr", { dataset: { runId: String(f.id) } }, [
      el("td", { dataset: { label: "Run" } }, [f.label]),
      el("td", { dataset: { label: "Owner" }, text: f.owner }),
      el("td", { dataset: { label: "Status" } }, [el("span", { class: `status-${f.status}`, text: f.status })]),
      el("td", { dataset: { label: "When" } }, [el("time", { datetime: f.finishedAt || "", text: fmt.time(f.finishedAt) })]),
      el("td", { class: "lab-reason", dataset: { label: "Reason" }, title: f.fullReason, text: f.reason }),
    ])));
    $("lab-failures-empty").hidden = rows.length > 0;
    $("lab-failures-empty").textContent = `No failed or diverged run in the last ${status.failure_hours} hours.`;
  }

  function renderStorage(status) {
    const rows = lab.storageRows(status);
    $("lab-storage-body").replaceChildren(...rows.map((u) => el("tr", {}, [
      el("td", { dataset: { label: "User" }, text: u.user }),
      el("td", { dataset: { label: "Stored" }, text: u.bytes }),
      el("td", { dataset: { label: "Runs" }, text: String(u.runs) }),
      el("td", { dataset: { label: "Of limit" }, text: u.percent === null ? "no limit" : `${u.percent}%` }),
    ])));
    const storage = status.storage || {};
    $("lab-storage-total").textContent = `total ${lab.bytesText(storage.total_bytes)}`
      + (storage.limit_bytes ? ` · limit ${lab.bytesText(storage.limit_bytes)} per user` : "");
  }

  function render(status) {
    $("lab-summary").textContent = lab.summaryText(status);
    const warnings = lab.warnings(status);
    $("lab-warnings").hidden = warnings.length === 0;
    $("lab-warnings").replaceChildren(...warnings.map((text) => el("li", { text })));
    renderWorkers(status);
    renderStates(status);
    renderFailures(status);
    renderStorage(status);
    $("lab-updated").textContent = `updated ${fmt.time(status.generated_at)}`;
    $("lab-error").textContent = "";
  }

  async function load() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      render(await api.get(urls.to("api:lab-status")));
    } catch (err) {
      $("lab-error").textContent = `Could not read the lab status: ${errorText(err)}`;
    } finally {
      loading = false;
      if (again) { again = false; load(); }
    }
  }

  function soon() {
    if (pending !== null) return;
    pending = window.setTimeout(() => { pending = null; load(); }, lab.PUSH_DEBOUNCE_MS);
  }

  function setConnection(state) {
    connection.dataset.state = state;
    $("lab-connection-text").textContent = state === "live" ? "live" : "polling";
  }

  load();
  window.setInterval(load, lab.POLL_MS);
  new LiveSocket("lab/", {
    open: () => { setConnection("live"); load(); },
    message: (event) => { if (lab.onLabEvent(event) === "refresh") soon(); },
    down: () => setConnection("polling"),
    refused: () => setConnection("refused"),
  });
})();
