// node --test frontend/tests/: the pure run state of frontend/static/frontend/js/run_state.js.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const RS = require("../static/frontend/js/run_state.js");

const metric = (epoch, extra = {}) => ({
  epoch, train_loss: 1 / epoch, train_accuracy: 0.5 + epoch / 100, val_loss: 1.1 / epoch, val_accuracy: 0.5 + epoch / 100,
  learning_rate: 0.001, seconds: 1.5, samples_per_second: 4000, gradient_norm: 1, gradient_norm_max: 2,
  dead_unit_fraction: 0, ...extra,
});

const detail = (extra = {}) => ({
  id: 7, name: "run", status: "running", config: { epochs: 4, hidden_layers: [32] }, epochs_done: 1,
  best_val_accuracy: 0.51, best_epoch: 1, test_accuracy: null, test_loss: null, parent: null,
  created_at: "2024-01-01T00:00:00Z", started_at: "2024-01-01T00:00:01Z", finished_at: null, duration_seconds: 2,
  message: "", error_message: "", attempts: 1, cancel_requested: false, performance_category: null,
  confusion_matrix: null, per_class_accuracy: null, class_names: [], children: [], worker_host: "w",
  analysis: null, source_recommendation: null, metrics: [metric(1)], recommendations: [],
  links: { ws: "ws://x/ws/experiments/7/", csv: "http://x/csv", weights: null }, ...extra,
});

const snapshot = (seq, extra) => ({ type: "snapshot", seq, experiment: detail(extra), metrics: [], recommendations: [] });
const started = () => RS.applyRunEvent(null, snapshot(3));

test("a snapshot replaces the state with the run detail and its seq", () => {
  const run = started();
  assert.equal(run.id, 7);
  assert.equal(run.status, "running");
  assert.equal(run.seq, 3);
  assert.deepEqual(run.metrics.map((m) => m.epoch), [1]);  // experiment.metrics, not the legacy top-level list
  assert.equal(run.progress, null);
  assert.deepEqual(run.log, []);

  const replaced = RS.applyRunEvent(run, snapshot(9, { epochs_done: 2, metrics: [metric(2), metric(1)], name: "renamed" }));
  assert.equal(replaced.seq, 9);
  assert.equal(replaced.name, "renamed");
  assert.deepEqual(replaced.metrics.map((m) => m.epoch), [1, 2]);  // sorted by epoch
});

test("a REST detail applies as a snapshot without seq and keeps the current seq", () => {
  const run = started();
  const polled = RS.applyRunEvent(run, { type: "snapshot", experiment: detail({ epochs_done: 2, metrics: [metric(1), metric(2)] }) });
  assert.equal(polled.seq, 3);
  assert.equal(polled.epochs_done, 2);
  assert.equal(polled.metrics.length, 2);
});

test("the legacy top-level lists of a snapshot are used when experiment has none", () => {
  const { metrics, recommendations, ...bare } = detail();
  const run = RS.applyRunEvent(null, { type: "snapshot", seq: 1, experiment: bare, metrics: [metric(1)], recommendations: [{ id: 1 }] });
  assert.equal(run.metrics.length, 1);
  assert.deepEqual(run.recommendations, [{ id: 1 }]);
});

test("a REST snapshot of a finished run never goes back to an active status", () => {
  const finished = RS.applyRunEvent(started(), { type: "finished", experiment: 7, seq: 4, status: "succeeded" });
  const stale = RS.applyRunEvent(finished, { type: "snapshot", experiment: detail({ status: "running" }) });
  assert.equal(stale, finished);
  assert.equal(RS.applyRunEvent(finished, snapshot(6, { status: "queued" })).status, "queued");  // the socket's own
});

test("an epoch event appends its metrics once and ignores a repeated epoch", () => {
  const run = started();
  const event = { type: "epoch", experiment: 7, seq: 4, epochs: 4, ...metric(2, { val_accuracy: 0.9 }) };
  const next = RS.applyRunEvent(run, event);
  assert.deepEqual(next.metrics.map((m) => m.epoch), [1, 2]);
  assert.equal(next.epochs_done, 2);
  assert.equal(next.seq, 4);
  assert.equal(next.best_val_accuracy, 0.9);
  assert.equal(next.best_epoch, 2);
  const added = next.metrics[1];
  for (const key of ["type", "seq", "experiment", "epochs"]) assert.equal(key in added, false, key);
  assert.equal(added.samples_per_second, 4000);

  const again = RS.applyRunEvent(next, { ...event, seq: 5 });
  assert.equal(again.metrics.length, 2);
  assert.equal(again.seq, 5);
  assert.equal(RS.applyRunEvent(again, { ...event, seq: undefined }), again);  // no seq, same epoch: nothing
});

test("an epoch or progress event moves a queued run to running", () => {
  const queued = RS.applyRunEvent(null, snapshot(0, { status: "queued", metrics: [], epochs_done: 0 }));
  assert.equal(RS.applyRunEvent(queued, { type: "epoch", seq: 1, ...metric(1) }).status, "running");
  const moving = RS.applyRunEvent(queued, { type: "progress", seq: 1, epoch: 1, epochs: 4, batch: 3, batches: 10 });
  assert.equal(moving.status, "running");
  assert.deepEqual(moving.progress, { epoch: 1, epochs: 4, batch: 3, batches: 10 });
});

test("status and finished events merge the run-summary fields", () => {
  const run = started();
  const status = RS.applyRunEvent(run, {
    type: "status", experiment: 7, seq: 4, status: "failed", name: "run", epochs_done: 1,
    error_message: "boom", message: "", finished_at: "2024-01-01T00:01:00Z", duration_seconds: 60,
  });
  assert.equal(status.status, "failed");
  assert.equal(status.error_message, "boom");
  assert.equal(status.duration_seconds, 60);
  assert.equal(status.id, 7);
  assert.equal(status.metrics, run.metrics);  // untouched
  assert.equal("type" in status || "experiment" in status, false);

  const finished = RS.applyRunEvent(status, { type: "finished", experiment: 7, seq: 5, status: "failed", test_loss: 2 });
  assert.equal(finished.test_loss, 2);
  assert.equal(finished.error_message, "boom");
  assert.equal(finished.seq, 5);
});

test("a finished run ignores a late active status from REST, not a newer numbered one", () => {
  const done = RS.applyRunEvent(started(), { type: "status", seq: 4, status: "cancelled" });
  const late = RS.applyRunEvent(done, { type: "status", status: "running" });  // e.g. the cancel request's answer
  assert.equal(late.status, "cancelled");
  assert.equal(RS.applyRunEvent(done, { type: "status", seq: 5, status: "queued" }).status, "queued");  // retried
  assert.equal(RS.applyRunEvent(done, { type: "progress", seq: 5, epoch: 2, epochs: 4, batch: 1, batches: 9 }).progress, null);
});

test("a recommendations event replaces the advice and the analysis", () => {
  const run = RS.applyRunEvent(started(), { type: "recommendations", seq: 4, recommendations: [{ id: 1 }] });
  const next = RS.applyRunEvent(run, {
    type: "recommendations", experiment: 7, seq: 5, performance_category: "good", analysis: { convergence: "fast" },
    recommendations: [{ id: 2, kind: "capacity", applied_at: null }],
  });
  assert.deepEqual(next.recommendations, [{ id: 2, kind: "capacity", applied_at: null }]);
  assert.equal(next.performance_category, "good");
  assert.deepEqual(next.analysis, { convergence: "fast" });
});

test("a log event is kept, the oldest dropped past MAX_LOG", () => {
  let run = started();
  for (let i = 0; i < RS.MAX_LOG + 5; i++) run = RS.applyRunEvent(run, { type: "log", level: "warning", message: `m${i}` });
  assert.equal(run.log.length, RS.MAX_LOG);
  assert.deepEqual(run.log[run.log.length - 1], { level: "warning", message: `m${RS.MAX_LOG + 4}` });
});

test("unknown types, replies and other runs' events leave the state as it is", () => {
  const run = started();
  for (const event of [{ type: "pong" }, { type: "error", message: "bad" }, { type: "mystery", seq: 99 }, null,
    { type: "status", experiment: 8, seq: 10, status: "failed" }]) {
    assert.equal(RS.applyRunEvent(run, event), run);
  }
});

test("events with a seq at or below the state's are ignored", () => {
  const run = started();  // seq 3
  assert.equal(RS.applyRunEvent(run, { type: "status", seq: 3, status: "failed" }), run);
  assert.equal(RS.applyRunEvent(run, { type: "epoch", seq: 2, ...metric(2) }), run);
  assert.equal(RS.applyRunEvent(run, { type: "status", seq: 4, status: "failed" }).status, "failed");
});

test("seqGap tells a skipped seq", () => {
  const run = started();  // seq 3
  assert.equal(RS.seqGap(run, { type: "epoch", seq: 4 }), false);
  assert.equal(RS.seqGap(run, { type: "epoch", seq: 6 }), true);
  assert.equal(RS.seqGap(run, { type: "snapshot", seq: 10 }), false);
  assert.equal(RS.seqGap(RS.emptyRun(7), { type: "epoch", seq: 6 }), false);  // nothing to compare with yet
  assert.equal(RS.seqGap(run, { type: "pong" }), false);
});

test("the status sets", () => {
  assert.deepEqual([...RS.ACTIVE], ["queued", "running"]);
  assert.deepEqual([...RS.TERMINAL].sort(), ["cancelled", "diverged", "failed", "pruned", "succeeded"]);
  assert.deepEqual([...RS.STATUSES].sort(), [...RS.ACTIVE, ...RS.TERMINAL].sort());
  assert.ok(RS.isActive("queued") && !RS.isActive("failed") && !RS.isActive(undefined));
  assert.ok(RS.isTerminal("pruned") && !RS.isTerminal("running"));
  for (const status of Object.keys(RS.STATUS_LEVEL)) assert.ok(RS.isTerminal(status), status);
});

test("progressOf describes each phase", () => {
  const running = started();
  assert.deepEqual(RS.progressOf(running), { fraction: 0.25, text: "epoch 1/4" });
  const inEpoch2 = RS.applyRunEvent(running, { type: "progress", seq: 4, epoch: 2, epochs: 4, batch: 5, batches: 10 });
  assert.deepEqual(RS.progressOf(inEpoch2), { fraction: 0.375, text: "epoch 2/4 · batch 5/10" });
  const queued = RS.applyRunEvent(null, snapshot(0, { status: "queued", metrics: [], epochs_done: 0 }));
  assert.equal(RS.progressOf(queued).text, "queued · waiting for a worker");
  const done = RS.applyRunEvent(running, { type: "finished", seq: 5, status: "succeeded", epochs_done: 4 });
  assert.deepEqual(RS.progressOf(done), { fraction: 1, text: "epoch 4/4 · done" });
  const early = RS.applyRunEvent(running, { type: "finished", seq: 5, status: "succeeded", epochs_done: 2 });
  assert.equal(RS.progressOf(early).text, "stopped early at epoch 2/4");
  const cancelled = RS.applyRunEvent(running, { type: "finished", seq: 5, status: "cancelled" });
  assert.deepEqual(RS.progressOf(cancelled), { fraction: 0.25, text: "cancelled at epoch 1/4" });
  assert.equal(RS.progressOf(RS.emptyRun(1)).text, "waiting for the run…");
});

test("derived values: epochsTotal, epochsDone, lastMetric", () => {
  const run = started();
  assert.equal(RS.epochsTotal(run), 4);
  assert.equal(RS.epochsTotal({ config: {}, progress: { epochs: 9 } }), 9);
  assert.equal(RS.epochsDone(RS.applyRunEvent(run, { type: "epoch", seq: 4, ...metric(2) })), 2);
  assert.equal(RS.lastMetric(run).epoch, 1);
  assert.equal(RS.lastMetric(RS.emptyRun(1)), null);
});

test("resyncRefused tells the server's refusal of a resync from other errors", () => {
  assert.equal(RS.resyncRefused({ type: "error", message: "too many resyncs; wait 3 s" }), true);
  assert.equal(RS.resyncRefused({ type: "error", message: "Invalid JSON." }), false);
  assert.equal(RS.resyncRefused({ type: "log", message: "too many resyncs" }), false);
  assert.equal(RS.resyncRefused(null), false);
});

test("recommendationsEmptyText tells 'not yet' from 'none'", () => {
  const text = RS.recommendationsEmptyText;
  assert.match(text({ status: "running" }), /appear when the run finishes/);
  assert.equal(text({ status: "succeeded", analysis_pending: true }), "Analysing the run…");
  assert.equal(text({ status: "succeeded", analysis_pending: false }), "No recommendations for this run.");
  assert.match(text({ status: "cancelled", epochs_done: 1 }), /cancelled before/);
  assert.match(text({ status: "failed" }), /failed/);
});

test("a recommendations event ends the pending analysis", () => {
  const run = RS.applyRunEvent(RS.emptyRun(3), { type: "finished", seq: 1, status: "succeeded", analysis_pending: true });
  assert.equal(run.analysis_pending, true);
  const done = RS.applyRunEvent(run, { type: "recommendations", seq: 2, recommendations: [], performance_category: "good" });
  assert.equal(done.analysis_pending, false);
  assert.equal(RS.recommendationsEmptyText(done), "No recommendations for this run.");
});
