// Live diagnosis panel of the run page (partials/run_diagnosis.html): the findings the worker's
// per-epoch checks stored (the snapshot's `diagnoses`) and those arriving as `diagnosis` events
// (run_state.js keeps them in `run.diagnoses`).
//
// Pure (node --test frontend/tests/diagnosis.test.js):
//   mergeFinding(list, finding) -> list with the finding added (one per kind, ordered by epoch)
//   panelView(run)              -> { state, summary, stopText, items: [{kind, severity, epoch, title,
//                                    message, changes}] } for the panel
//   changesText(changes)        -> "learning_rate → 0.0001, activation → leaky_relu"
// Browser: TunerDiagnosis.render(run) fills #diagnosis-panel.
(function (factory) {  // node: module.exports; browser: window.TunerDiagnosis
  if (typeof module === "object" && module.exports) module.exports = factory(); else self.TunerDiagnosis = factory();
})(function () {
  "use strict";
  const SEVERITY_ORDER = { critical: 0, warning: 1 };

  const isFinding = (f) => Boolean(f && typeof f === "object" && typeof f.kind === "string");

  function sortFindings(list) {
    return list.slice().sort((a, b) => (Number(a.epoch) || 0) - (Number(b.epoch) || 0)
      || (SEVERITY_ORDER[a.severity] ?? 9) - (SEVERITY_ORDER[b.severity] ?? 9));
  }

  function mergeFinding(list, finding) {
    const current = Array.isArray(list) ? list.filter(isFinding) : [];
    if (!isFinding(finding) || current.some((f) => f.kind === finding.kind)) return current;
    return sortFindings([...current, finding]);
  }

  function showValue(value) {
    if (Array.isArray(value)) return `[${value.join(", ")}]`;
    if (typeof value === "number") return String(Number(value.toPrecision(3)));
    return String(value);
  }

  function changesText(changes) {
    if (!changes || typeof changes !== "object") return "";
    return Object.entries(changes).map(([name, value]) => `${name} → ${showValue(value)}`).join(", ");
  }

  const ACTIVE = new Set(["queued", "running"]);

  function panelView(run) {
    const findings = sortFindings((run && Array.isArray(run.diagnoses) ? run.diagnoses : []).filter(isFinding));
    const critical = findings.filter((f) => f.severity === "critical").length;
    const active = Boolean(run && ACTIVE.has(run.status));
    const stops = Boolean(run && run.stop_on_diagnosis);
    const stopped = Boolean(run && typeof run.message === "string" && run.message.startsWith("stopped at epoch "));
    let summary;
    if (!findings.length) summary = active ? "checking every epoch…" : "nothing found";
    else summary = `${findings.length} finding${findings.length === 1 ? "" : "s"}`
      + (critical ? `, ${critical} critical` : "");
    let stopText = stops ? "Stops the run at the first critical finding." : "Findings are shown; the run goes on.";
    if (stopped) stopText = run.message;
    return {
      state: findings.length ? (critical ? "critical" : "warning") : "empty",
      summary,
      stopText,
      stopped,
      empty: findings.length ? "" : (active ? "No problem found so far: divergence, exploding gradients, dead units, "
        + "plateaus and runs that do not learn are checked after every epoch." : "No problem was found while it trained."),
      items: findings.map((f) => ({
        kind: f.kind, severity: f.severity === "critical" ? "critical" : "warning", epoch: Number(f.epoch) || null,
        title: String(f.title || f.kind), message: String(f.message || ""), changes: changesText(f.changes),
      })),
    };
  }

  function render(run) {
    const panel = typeof document === "object" ? document.getElementById("diagnosis-panel") : null;
    if (!panel) return;
    const view = panelView(run);
    const $ = (id) => document.getElementById(id);
    panel.dataset.state = view.state;
    $("diagnosis-summary").textContent = view.summary;
    const stop = $("diagnosis-stop");
    stop.textContent = view.stopText;
    stop.classList.toggle("diagnosis-stopped", view.stopped);
    $("diagnosis-empty").textContent = view.empty;
    $("diagnosis-empty").hidden = !view.empty;
    const items = view.items.map((item) => {
      const li = document.createElement("li");
      li.className = `diagnosis diagnosis-${item.severity}`;
      li.dataset.kind = item.kind;
      li.dataset.severity = item.severity;
      const head = document.createElement("div");
      head.className = "diagnosis-head";
      const badge = document.createElement("span");
      badge.className = `badge badge-${item.severity === "critical" ? "critical" : "high"}`;
      badge.textContent = item.severity;
      const epoch = document.createElement("span");
      epoch.className = "diagnosis-epoch muted";
      epoch.textContent = item.epoch ? `epoch ${item.epoch}` : "";
      const title = document.createElement("strong");
      title.className = "diagnosis-title";
      title.textContent = item.title;
      head.append(badge, " ", epoch, " ", title);
      const message = document.createElement("p");
      message.className = "diagnosis-message";
      message.textContent = item.message;
      li.append(head, message);
      if (item.changes) {
        const changes = document.createElement("p");
        changes.className = "diagnosis-changes muted small";
        changes.textContent = `suggested: ${item.changes}`;
        li.append(changes);
      }
      return li;
    });
    $("diagnosis-list").replaceChildren(...items);
  }

  return { mergeFinding, panelView, changesText, render };
});
