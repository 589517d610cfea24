// node --test frontend/tests/: the pure sweep state of frontend/static/frontend/js/sweep_state.js.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const SS = require("../static/frontend/js/sweep_state.js");

const trial = (id, number, extra = {}) => ({
  id, trial_number: number, status: "queued", params: { learning_rate: 0.001 * number }, best_val_accuracy: null,
  test_accuracy: null, epochs_done: 0, seconds: 0, parameters: 12730, pruned: false, message: "", ...extra,
});

const detail = (extra = {}) => ({
  id: 4, name: "grid", status: "running", strategy: "grid", objective: "val_accuracy", second_objective: "none",
  pruner: "median", budget: 3, parallelism: 1, seed: 1, warm_start: false, warm_start_runs: [],
  space: { learning_rate: { values: [0.001, 0.002, 0.003] } }, base_config: { epochs: 2 }, message: "",
  created_at: "2024-01-01T00:00:00Z", finished_at: null, trials: [trial(11, 1, { status: "running" })],
  best_trial: null, best_value: null, pareto_front: [], best_so_far: [], importance: null, warnings: [],
  counts: { queued: 0, running: 1, succeeded: 0, total: 1, active: 1, remaining: 2 }, ...extra,
});

const started = () => SS.applySweepEvent(null, { type: "snapshot", seq: 5, sweep: detail() });

test("a snapshot replaces the state with the sweep detail and its seq", () => {
  const sweep = started();
  assert.equal(sweep.id, 4);
  assert.equal(sweep.seq, 5);
  assert.equal(sweep.status, "running");
  assert.deepEqual(sweep.trials.map((t) => t.id), [11]);
  assert.ok(SS.isActive(sweep));
});

test("trial events replace their row by id and keep the table in trial order", () => {
  let sweep = started();
  sweep = SS.applySweepEvent(sweep, { type: "trial_started", seq: 6, sweep: 4, trial: trial(13, 3) });
  sweep = SS.applySweepEvent(sweep, { type: "trial_started", seq: 7, sweep: 4, trial: trial(12, 2) });
  assert.deepEqual(sweep.trials.map((t) => t.trial_number), [1, 2, 3]);
  sweep = SS.applySweepEvent(sweep, { type: "trial_epoch", seq: 8, sweep: 4, epoch: 1, val_accuracy: 0.7,
    trial: trial(11, 1, { status: "running", epochs_done: 1, best_val_accuracy: 0.7 }) });
  assert.equal(sweep.trials[0].epochs_done, 1);
  assert.equal(sweep.trials[0].best_val_accuracy, 0.7);
  sweep = SS.applySweepEvent(sweep, { type: "trial_ended", seq: 9, sweep: 4, reason: "pruned at epoch 1: …",
    trial: trial(11, 1, { status: "pruned", pruned: true, message: "pruned at epoch 1: …" }) });
  assert.equal(sweep.trials.length, 3);
  assert.equal(sweep.trials[0].status, "pruned");
  assert.equal(sweep.seq, 9);
});

test("best_changed and sweep_status merge their fields; sweep_finished ends the sweep", () => {
  let sweep = started();
  sweep = SS.applySweepEvent(sweep, { type: "best_changed", seq: 6, sweep: 4, best_trial: 11, best_value: 0.8,
    best_so_far: [{ trial_number: 1, value: 0.8 }] });
  assert.equal(sweep.best_trial, 11);
  assert.deepEqual(sweep.best_so_far, [{ trial_number: 1, value: 0.8 }]);
  assert.equal(sweep.name, "grid");
  const fields = { ...detail({ status: "finished", message: "ran its budget of 3 trials", best_trial: 11 }) };
  delete fields.trials;
  sweep = SS.applySweepEvent(sweep, { type: "sweep_finished", seq: 7, sweep: 4, ...fields });
  assert.equal(sweep.status, "finished");
  assert.equal(sweep.message, "ran its budget of 3 trials");
  assert.deepEqual(sweep.trials.map((t) => t.id), [11]);  // the rows are the trial events' business
  assert.equal(sweep.id, 4);
  assert.equal(sweep.seq, 7);
  assert.ok(!SS.isActive(sweep));
});

test("old, foreign, unknown and malformed events change nothing", () => {
  const sweep = started();
  assert.equal(SS.applySweepEvent(sweep, { type: "trial_started", seq: 5, trial: trial(12, 2) }), sweep);
  assert.equal(SS.applySweepEvent(sweep, { type: "trial_started", seq: 9, sweep: 99, trial: trial(12, 2) }), sweep);
  assert.equal(SS.applySweepEvent(sweep, { type: "pong" }), sweep);
  assert.equal(SS.applySweepEvent(sweep, { type: "error", message: "x" }), sweep);
  assert.equal(SS.applySweepEvent(sweep, null), sweep);
  assert.equal(SS.applySweepEvent(sweep, { type: "snapshot", sweep: "nope" }), sweep);
  // A numbered event without a usable row still moves the seq (it was received).
  const next = SS.applySweepEvent(sweep, { type: "trial_epoch", seq: 6, trial: { id: "x" } });
  assert.deepEqual(next.trials, sweep.trials);
  assert.equal(next.seq, 6);
});

test("a REST detail applies as an unnumbered snapshot and keeps the seq", () => {
  const sweep = started();
  const next = SS.applySweepEvent(sweep, { type: "snapshot", sweep: detail({ budget: 8 }) });
  assert.equal(next.budget, 8);
  assert.equal(next.seq, 5);
});

test("a gap in seq asks for a resync; a refused resync is recognised", () => {
  const sweep = started();
  assert.equal(SS.seqGap(sweep, { type: "sweep_status", seq: 6 }), false);
  assert.equal(SS.seqGap(sweep, { type: "sweep_status", seq: 8 }), true);
  assert.equal(SS.seqGap(sweep, { type: "snapshot", seq: 9 }), false);
  assert.equal(SS.seqGap(SS.emptySweep(4), { type: "sweep_status", seq: 9 }), false);
  assert.equal(SS.resyncRefused({ type: "error", message: "too many resyncs; wait 3 s" }), true);
  assert.equal(SS.resyncRefused({ type: "error", message: "Invalid JSON." }), false);
});
