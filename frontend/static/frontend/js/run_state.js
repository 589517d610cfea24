// One run's state, kept current from the REST API and the run's websocket events. Pure: no DOM,
// no window access; loaded as a classic script (window.TunerRunState) and by node's test runner.
//
// The state is the REST run detail (GET /api/experiments/<id>/: run summary + metrics,
// recommendations, analysis, links...) plus three client-side fields:
//   seq       the seq of the last event applied (events with seq <= it are already in the state)
//   progress  the last "progress" event {epoch, epochs, batch, batches}, null when none
//   log       the last MAX_LOG "log" events [{level, message}]
//
// applyRunEvent(run, event) -> the new state (the same object when the event changes nothing), for
// every websocket message type (README "Live events"):
//   snapshot         {experiment: <run detail>} replaces the state; a REST detail applies as
//                    {type: "snapshot", experiment: detail} (no seq: the current seq is kept)
//   status/finished  every run-summary field but id: merged
//   epoch            {epoch, ...metric fields, epochs}: appended once per epoch (a repeat is ignored)
//   progress, log    kept in `progress` / `log`
//   recommendations  {performance_category, analysis, recommendations}: replaced (analysis_pending
//                    becomes false: the advice is what it was waiting for)
//   diagnosis        {finding}: added to `diagnoses` once per kind (the live diagnosis, diagnosis.js)
// Anything else (pong, error, unknown types) and any event with seq <= run.seq leaves the state as it
// is. Without a seq (a REST answer) a finished run never becomes active again: a stale poll or cancel
// answer arriving late must not move it backwards; a numbered event may (a sweep trial retried).
(function (factory) {  // node: module.exports; browser: window.TunerRunState
  if (typeof module === "object" && module.exports) module.exports = factory(); else self.TunerRunState = factory();
})(function () {
  "use strict";

  const STATUSES = Object.freeze(["queued", "running", "succeeded", "failed", "diverged", "cancelled", "pruned"]);
  const ACTIVE = new Set(["queued", "running"]);
  const TERMINAL = new Set(["succeeded", "failed", "diverged", "cancelled", "pruned"]);
  // The log level of the line announcing each status (the rest are plain "status" lines).
  const STATUS_LEVEL = Object.freeze({
    failed: "error", diverged: "error", cancelled: "warning", pruned: "warning", succeeded: "success",
  });
  const MAX_LOG = 200;
  const ENVELOPE = ["type", "seq", "experiment"];

  const isActive = (status) => ACTIVE.has(status);
  const isTerminal = (status) => TERMINAL.has(status);

  function emptyRun(id) {
    return { id: id === undefined ? null : id, status: null, config: null, metrics: [], recommendations: [],
      seq: 0, progress: null, log: [] };
  }

  // An event's fields without its envelope (type, seq, experiment).
  function fieldsOf(event) {
    const fields = { ...event };
    for (const key of ENVELOPE) delete fields[key];
    return fields;
  }

  const byEpoch = (a, b) => a.epoch - b.epoch;

  // An unnumbered (REST) answer that would take a finished run back to an active status.
  const backwards = (run, event, status) => typeof event.seq !== "number" && isTerminal(run.status) && isActive(status);

  function applySnapshot(run, event) {
    const detail = event.experiment;
    if (!detail || typeof detail !== "object") return run;
    const same = run.id === null || detail.id === undefined || detail.id === run.id;
    if (same && backwards(run, event, detail.status)) return run;
    const keep = (name) => (same ? run[name] : []);
    const metrics = detail.metrics || event.metrics || keep("metrics");
    return {
      ...detail,
      id: detail.id === undefined ? run.id : detail.id,
      metrics: metrics.slice().sort(byEpoch),
      recommendations: detail.recommendations || event.recommendations || keep("recommendations"),
      seq: typeof event.seq === "number" ? event.seq : (same ? run.seq : 0),
      progress: same && isActive(detail.status) ? run.progress : null,
      log: keep("log"),
    };
  }

  function applyStatus(run, event) {
    const fields = fieldsOf(event);
    delete fields.id;
    if (backwards(run, event, fields.status)) return run;
    return { ...run, ...fields };
  }

  function applyEpoch(run, event) {
    const { epochs, ...metric } = fieldsOf(event);
    if (typeof metric.epoch !== "number" || run.metrics.some((m) => m.epoch === metric.epoch)) return run;
    const next = {
      ...run,
      metrics: [...run.metrics, metric].sort(byEpoch),
      epochs_done: Math.max(run.epochs_done || 0, metric.epoch),
    };
    if (run.status === "queued") next.status = "running";
    const best = run.best_val_accuracy;
    if (typeof metric.val_accuracy === "number" && (typeof best !== "number" || metric.val_accuracy > best)) {
      next.best_val_accuracy = metric.val_accuracy;
      next.best_epoch = metric.epoch;
    }
    return next;
  }

  function applyProgress(run, event) {
    if (isTerminal(run.status)) return run;
    const { epoch, epochs, batch, batches } = event;
    return { ...run, progress: { epoch, epochs, batch, batches }, status: run.status === "queued" ? "running" : run.status };
  }

  function applyLog(run, event) {
    return { ...run, log: [...run.log, { level: event.level || "info", message: String(event.message ?? "") }].slice(-MAX_LOG) };
  }

  function applyRecommendations(run, event) {
    return {
      ...run,
      recommendations: Array.isArray(event.recommendations) ? event.recommendations : [],
      performance_category: event.performance_category === undefined ? run.performance_category : event.performance_category,
      analysis: event.analysis === undefined ? run.analysis : event.analysis,
      analysis_pending: false,  // the advice is what the pending analysis was writing
    };
  }

  function applyDiagnosis(run, event) {
    const finding = event.finding;
    const list = Array.isArray(run.diagnoses) ? run.diagnoses : [];
    if (!finding || typeof finding !== "object" || list.some((f) => f && f.kind === finding.kind)) return run;
    return { ...run, diagnoses: [...list, finding] };
  }

  // What an empty recommendations list means for this run, in words.
  function recommendationsEmptyText(run) {
    if (!isTerminal(run.status)) return "Recommendations appear when the run finishes.";
    if (run.analysis_pending) return "Analysing the run…";
    if (run.status === "cancelled" && (run.epochs_done || 0) < 2) {
      return "No recommendations: the run was cancelled before it had enough epochs to analyse.";
    }
    if (run.status === "failed") return "No recommendations: the run failed (its error says why).";
    if (run.status === "pruned") return "No recommendations: its sweep's pruner stopped this trial early.";
    return "No recommendations for this run.";
  }

  const HANDLERS = {
    status: applyStatus,
    finished: applyStatus,
    epoch: applyEpoch,
    progress: applyProgress,
    log: applyLog,
    recommendations: applyRecommendations,
    diagnosis: applyDiagnosis,
  };

  function applyRunEvent(run, event) {
    const current = run || emptyRun();
    if (!event || typeof event !== "object") return current;
    if (event.type === "snapshot") return applySnapshot(current, event);
    const handler = HANDLERS[event.type];
    if (!handler) return current;
    if (typeof event.experiment === "number" && current.id !== null && event.experiment !== current.id) return current;
    const hasSeq = typeof event.seq === "number";
    if (hasSeq && event.seq <= current.seq) return current;
    const next = handler(current, event);
    if (!hasSeq) return next;
    return next === current ? { ...current, seq: event.seq } : { ...next, seq: event.seq };
  }

  // True when `event` skips seqs after the state's: the channel layer dropped something, ask for a
  // fresh snapshot. (Before the first numbered snapshot or event nothing can be told.)
  function seqGap(run, event) {
    return Boolean(run && event && typeof event.seq === "number" && event.type !== "snapshot"
      && run.seq > 0 && event.seq > run.seq + 1);
  }

  // True for the server's answer to a resync it refused (per-connection rate limit, see
  // experiments/consumers.py): the page then reads the run once over REST instead.
  function resyncRefused(event) {
    return Boolean(event && event.type === "error" && typeof event.message === "string"
      && event.message.startsWith("too many resyncs"));
  }

  // ------------------------------------------------------------------ derived values

  function epochsTotal(run) {
    const config = (run && run.config) || {};
    if (typeof config.epochs === "number") return config.epochs;
    return (run && run.progress && run.progress.epochs) || null;
  }

  function epochsDone(run) {
    const metrics = (run && run.metrics) || [];
    const last = metrics.length ? metrics[metrics.length - 1].epoch : 0;
    return Math.max(last, (run && run.epochs_done) || 0);
  }

  function lastMetric(run) {
    const metrics = (run && run.metrics) || [];
    return metrics.length ? metrics[metrics.length - 1] : null;
  }

  // How far the run is: {fraction 0..1, text} as the progress bars show it.
  function progressOf(run) {
    const status = run && run.status;
    const total = epochsTotal(run);
    const done = epochsDone(run);
    const p = run && run.progress;
    if (!status) return { fraction: 0, text: "waiting for the run…" };
    if (status === "queued") return { fraction: 0, text: "queued · waiting for a worker" };
    if (isTerminal(status)) {
      if (status === "succeeded") {
        return { fraction: 1, text: total && done < total ? `stopped early at epoch ${done}/${total}` : `epoch ${done}/${total || done} · done` };
      }
      return { fraction: total ? done / total : 0, text: `${status} at epoch ${done}/${total || "?"}` };
    }
    let fraction = total ? done / total : 0;
    let text = `epoch ${done}/${total || "?"}`;
    if (p && total) {
      if (p.epoch > done) {
        fraction = (p.epoch - 1 + p.batch / Math.max(1, p.batches)) / total;
        text = `epoch ${p.epoch}/${total} · batch ${p.batch}/${p.batches}`;
      } else if (p.epoch === done) {
        text = `epoch ${done}/${total} · batch ${p.batch}/${p.batches}`;
      }
    } else if (!done) {
      text = `epoch 1/${total || "?"} · starting`;
    }
    return { fraction: Math.min(1, Math.max(0, fraction)), text };
  }

  return {
    STATUSES, ACTIVE, TERMINAL, STATUS_LEVEL, MAX_LOG,
    isActive, isTerminal, emptyRun, applyRunEvent, seqGap, resyncRefused,
    epochsTotal, epochsDone, lastMetric, progressOf, recommendationsEmptyText,
  };
});
