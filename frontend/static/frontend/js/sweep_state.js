// One sweep's state, kept current from the REST API and the sweep's websocket (ws/sweeps/<id>/). Pure:
// no DOM, no window access; loaded as a classic script (window.TunerSweepState) and by node's test
// runner. Needs run_state.js (seqGap, resyncRefused: the same seq protocol as runs).
//
// The state is the REST sweep detail (GET /api/sweeps/<id>/: settings, trials, best, best_so_far,
// pareto_front, importance, warnings, counts) plus `seq`, the seq of the last event applied.
//
// applySweepEvent(sweep, event) -> the new state (the same object when the event changes nothing), for
// every message of the sweep websocket (README "Live events"):
//   snapshot                 {sweep: <detail>} replaces the state; a REST detail applies as
//                            {type: "snapshot", sweep: detail} (no seq: the current seq is kept)
//   trial_started/_epoch/_ended  {trial: <a `trials` row>}: replaces the row with its id (or adds it)
//   best_changed             {best_trial, best_value, best_so_far}: merged
//   sweep_status/_finished   every field of the detail but `trials`: merged
// Anything else (pong, error, unknown types), an event of another sweep, and any event with
// seq <= sweep.seq leave the state as it is.
(function (factory) {  // node: module.exports; browser: window.TunerSweepState
  if (typeof module === "object" && module.exports) module.exports = factory(require("./run_state.js"));
  else self.TunerSweepState = factory(self.TunerRunState);
})(function (RS) {
  "use strict";

  const ENVELOPE = ["type", "seq", "sweep"];
  const TRIAL_EVENTS = new Set(["trial_started", "trial_epoch", "trial_ended"]);
  const BEST_FIELDS = ["best_trial", "best_value", "best_so_far"];

  function emptySweep(id) {
    return { id: id === undefined ? null : id, status: null, trials: [], best_so_far: [], counts: {}, seq: 0 };
  }

  const byNumber = (a, b) => a.trial_number - b.trial_number || a.id - b.id;

  function applySnapshot(sweep, event) {
    const detail = event.sweep;
    if (!detail || typeof detail !== "object") return sweep;
    const same = sweep.id === null || detail.id === undefined || detail.id === sweep.id;
    return {
      ...detail,
      id: detail.id === undefined ? sweep.id : detail.id,
      trials: (Array.isArray(detail.trials) ? detail.trials : []).slice().sort(byNumber),
      seq: typeof event.seq === "number" ? event.seq : (same ? sweep.seq : 0),
    };
  }

  function applyTrial(sweep, event) {
    const row = event.trial;
    if (!row || typeof row !== "object" || typeof row.id !== "number") return sweep;
    const others = sweep.trials.filter((t) => t.id !== row.id);
    return { ...sweep, trials: [...others, row].sort(byNumber) };
  }

  function applyBest(sweep, event) {
    const next = { ...sweep };
    for (const name of BEST_FIELDS) if (event[name] !== undefined) next[name] = event[name];
    return next;
  }

  function applyFields(sweep, event) {
    const fields = { ...event };
    for (const key of [...ENVELOPE, "trials", "id"]) delete fields[key];
    return { ...sweep, ...fields };
  }

  const HANDLERS = {
    trial_started: applyTrial,
    trial_epoch: applyTrial,
    trial_ended: applyTrial,
    best_changed: applyBest,
    sweep_status: applyFields,
    sweep_finished: applyFields,
  };

  function applySweepEvent(sweep, event) {
    const current = sweep || emptySweep();
    if (!event || typeof event !== "object") return current;
    if (event.type === "snapshot") return applySnapshot(current, event);
    const handler = HANDLERS[event.type];
    if (!handler) return current;
    if (typeof event.sweep === "number" && current.id !== null && event.sweep !== current.id) return current;
    const hasSeq = typeof event.seq === "number";
    if (hasSeq && event.seq <= current.seq) return current;
    const next = handler(current, event);
    if (!hasSeq) return next;
    return next === current ? { ...current, seq: event.seq } : { ...next, seq: event.seq };
  }

  const isActive = (sweep) => Boolean(sweep && RS.isActive(sweep.status));

  return {
    TRIAL_EVENTS, emptySweep, applySweepEvent, isActive,
    seqGap: RS.seqGap, resyncRefused: RS.resyncRefused,
  };
});
