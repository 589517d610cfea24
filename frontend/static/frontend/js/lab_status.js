// Pure logic of the staff lab status page (lab.js): what GET /api/lab/status/ becomes on the page,
// and when to re-read it. No DOM, no window access: loaded as a classic script
// (window.TunerLabStatus) and by node's test runner (module.exports).
(function (factory) {  // node: module.exports; browser: window.TunerLabStatus
  if (typeof module === "object" && module.exports) module.exports = factory(); else self.TunerLabStatus = factory();
})(function () {
  "use strict";

  const STATES = ["queued", "running", "succeeded", "failed", "diverged", "cancelled", "pruned"];
  const POLL_MS = 5000;  // the fallback re-read (also what moves progress bars between status changes)
  const PUSH_DEBOUNCE_MS = 300;  // several status changes at once: one re-read
  const REASON_CHARS = 240;

  const isNumber = (value) => typeof value === "number" && isFinite(value);

  // "just now", "12 s ago", "3 min ago", "5 h ago", "2 d ago"
  function ageText(seconds) {
    if (!isNumber(seconds) || seconds < 1) return "just now";
    if (seconds < 90) return `${Math.round(seconds)} s ago`;
    if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  // 0 B, 512 B, 1.5 KiB, 20.0 MiB, 2.00 GiB
  function bytesText(bytes) {
    if (!isNumber(bytes) || bytes < 0) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    if (unit === 0) return `${value} B`;
    return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
  }

  // {percent 0-100 or null, text "epoch 4/10 · 40%"}
  function runProgress(run) {
    const done = isNumber(run.epochs_done) ? run.epochs_done : 0;
    if (!isNumber(run.epochs) || run.epochs <= 0) return { percent: null, text: `epoch ${done}` };
    const percent = Math.max(0, Math.min(100, Math.round((done / run.epochs) * 100)));
    return { percent, text: `epoch ${done}/${run.epochs} · ${percent}%` };
  }

  function runRow(run) {
    return { id: run.id, label: run.name ? `#${run.id} ${run.name}` : `#${run.id}`, owner: run.owner || "",
             sweep: isNumber(run.sweep) ? run.sweep : null, process: run.worker_host || "",
             ...runProgress(run) };
  }

  // Online first (as the API orders them); busy = "1/2 slots".
  function workerRows(status) {
    return ((status && status.workers) || []).map((w) => ({
      nodename: w.nodename, hostname: w.hostname, online: Boolean(w.online),
      state: w.online ? "online" : "offline", concurrency: w.concurrency,
      busy: `${(w.current_runs || []).length}/${w.concurrency}`,
      seen: ageText(w.seconds_since_seen), runs: (w.current_runs || []).map(runRow),
    }));
  }

  // Every status in a fixed order, zeros included; unknown statuses after them.
  function stateCounts(runsByState) {
    const counts = runsByState || {};
    const known = STATES.map((status) => ({ status, count: counts[status] || 0 }));
    const extra = Object.keys(counts).filter((s) => !STATES.includes(s)).sort()
      .map((status) => ({ status, count: counts[status] }));
    return [...known, ...extra];
  }

  function clip(text, chars) {
    const value = String(text || "");
    return value.length > chars ? `${value.slice(0, chars - 1)}…` : value;
  }

  function failureRows(status) {
    return ((status && status.recent_failures) || []).map((f) => ({
      id: f.id, label: f.name ? `#${f.id} ${f.name}` : `#${f.id}`, owner: f.owner, status: f.status,
      reason: clip(f.reason, REASON_CHARS), fullReason: String(f.reason || ""), finishedAt: f.finished_at,
    }));
  }

  function storageRows(status) {
    const storage = (status && status.storage) || {};
    return (storage.users || []).map((u) => ({
      user: u.user, bytes: bytesText(u.storage_bytes), runs: u.run_count,
      percent: isNumber(u.fraction_of_limit) ? Math.min(100, Math.round(u.fraction_of_limit * 1000) / 10) : null,
    }));
  }

  // One line: "1 of 2 workers online · 3 queued (broker 3) · 2 running"
  function summaryText(status) {
    if (!status) return "";
    const workers = status.workers || [];
    const queue = status.queue || {};
    const states = status.runs_by_state || {};
    const broker = isNumber(queue.broker_length) ? `broker ${queue.broker_length}` : "broker unknown";
    return `${status.workers_online || 0} of ${workers.length} worker${workers.length === 1 ? "" : "s"} online · `
      + `${queue.queued_runs || 0} queued (${broker}) · ${states.running || 0} running`;
  }

  // Health warnings worth a banner (empty when all is well).
  function warnings(status) {
    if (!status) return [];
    const out = [];
    const health = status.health || {};
    if (health.redis === false) out.push("Redis does not answer: runs cannot be queued or trained.");
    if ((status.workers_online || 0) === 0) out.push("No worker is online: queued runs wait.");
    const unattributed = (status.unattributed_runs || []).length;
    if (unattributed) out.push(`${unattributed} running run${unattributed === 1 ? "" : "s"} on no known worker.`);
    return out;
  }

  // What to do with a message from ws/lab/: "refresh" (re-read the API soon) or "ignore".
  function onLabEvent(event) {
    return event && event.type === "lab_changed" ? "refresh" : "ignore";
  }

  return { STATES, POLL_MS, PUSH_DEBOUNCE_MS, ageText, bytesText, runProgress, runRow, workerRows, stateCounts,
           failureRows, storageRows, summaryText, warnings, onLabEvent };
});
