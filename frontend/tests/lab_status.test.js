// node --test frontend/tests/: the staff lab status page's view logic (frontend/static/frontend/js/lab_status.js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const lab = require("../static/frontend/js/lab_status.js");

const STATUS = {
  workers_online: 1,
  workers: [
    { nodename: "tuner@a", hostname: "a", concurrency: 2, online: true, seconds_since_seen: 4.2,
      current_runs: [{ id: 7, name: "wide", owner: "alice", epochs_done: 4, epochs: 10, worker_host: "a:12", sweep: 3 }] },
    { nodename: "tuner@b", hostname: "b", concurrency: 1, online: false, seconds_since_seen: 400, current_runs: [] },
  ],
  unattributed_runs: [],
  queue: { broker_length: 2, queued_runs: 3 },
  runs_by_state: { running: 1, queued: 3, failed: 2, weird: 1 },
  recent_failures: [{ id: 9, name: "", owner: "bob", status: "failed", reason: "x".repeat(500), finished_at: "2026-01-01T00:00:00Z" }],
  storage: { limit_bytes: 1000, total_bytes: 1536, users: [{ user: "alice", storage_bytes: 1536, run_count: 4, fraction_of_limit: 1.536 },
                                                          { user: "bob", storage_bytes: 0, run_count: 1, fraction_of_limit: 0 }] },
  health: { database: true, redis: true, workers_responding: 1 },
};

test("ageText and bytesText", () => {
  assert.equal(lab.ageText(0.4), "just now");
  assert.equal(lab.ageText(12.4), "12 s ago");
  assert.equal(lab.ageText(400), "7 min ago");
  assert.equal(lab.ageText(7200), "2 h ago");
  assert.equal(lab.ageText(3 * 86400), "3 d ago");
  assert.equal(lab.ageText(null), "just now");
  assert.equal(lab.bytesText(0), "0 B");
  assert.equal(lab.bytesText(512), "512 B");
  assert.equal(lab.bytesText(1536), "1.50 KiB");
  assert.equal(lab.bytesText(20 * 1024 ** 2), "20.0 MiB");
  assert.equal(lab.bytesText(2 * 1024 ** 3), "2.00 GiB");
  assert.equal(lab.bytesText(-1), "–");
  assert.equal(lab.bytesText(undefined), "–");
});

test("runProgress: epochs done of the config's epochs, clamped; unknown epochs", () => {
  assert.deepEqual(lab.runProgress({ epochs_done: 4, epochs: 10 }), { percent: 40, text: "epoch 4/10 · 40%" });
  assert.deepEqual(lab.runProgress({ epochs_done: 12, epochs: 10 }).percent, 100);
  assert.deepEqual(lab.runProgress({ epochs_done: 0, epochs: null }), { percent: null, text: "epoch 0" });
});

test("workerRows: state, slots in use, last seen, runs with progress", () => {
  const [a, b] = lab.workerRows(STATUS);
  assert.equal(a.state, "online");
  assert.equal(a.busy, "1/2");
  assert.equal(a.seen, "4 s ago");
  assert.deepEqual(a.runs, [{ id: 7, label: "#7 wide", owner: "alice", sweep: 3, process: "a:12", percent: 40,
                              text: "epoch 4/10 · 40%" }]);
  assert.equal(b.state, "offline");
  assert.equal(b.busy, "0/1");
  assert.deepEqual(lab.workerRows(null), []);
});

test("stateCounts: every status in order, zeros included, unknown ones last", () => {
  const counts = lab.stateCounts(STATUS.runs_by_state);
  assert.deepEqual(counts.map((c) => c.status), [...lab.STATES, "weird"]);
  assert.equal(counts.find((c) => c.status === "queued").count, 3);
  assert.equal(counts.find((c) => c.status === "succeeded").count, 0);
});

test("failureRows clip long reasons; storageRows give sizes and a capped percentage", () => {
  const [failure] = lab.failureRows(STATUS);
  assert.equal(failure.label, "#9");
  assert.equal(failure.reason.length, 240);
  assert.ok(failure.reason.endsWith("…"));
  assert.equal(failure.fullReason.length, 500);
  assert.deepEqual(lab.storageRows(STATUS), [{ user: "alice", bytes: "1.50 KiB", runs: 4, percent: 100 },
                                            { user: "bob", bytes: "0 B", runs: 1, percent: 0 }]);
  assert.deepEqual(lab.storageRows({ storage: { users: [{ user: "c", storage_bytes: 5, run_count: 1, fraction_of_limit: null }] } })[0].percent, null);
});

test("summaryText and warnings", () => {
  assert.equal(lab.summaryText(STATUS), "1 of 2 workers online · 3 queued (broker 2) · 1 running");
  assert.deepEqual(lab.warnings(STATUS), []);
  const down = { ...STATUS, workers_online: 0, health: { redis: false }, queue: { queued_runs: 1, broker_length: null },
                 unattributed_runs: [{ id: 1 }] };
  assert.equal(lab.summaryText(down), "0 of 2 workers online · 1 queued (broker unknown) · 1 running");
  assert.deepEqual(lab.warnings(down), ["Redis does not answer: runs cannot be queued or trained.",
                                        "No worker is online: queued runs wait.", "1 running run on no known worker."]);
});

test("onLabEvent: a lab_changed nudge means re-read; anything else is ignored", () => {
  assert.equal(lab.onLabEvent({ type: "lab_changed", reason: "run_status", experiment: 3, status: "failed" }), "refresh");
  assert.equal(lab.onLabEvent({ type: "hello" }), "ignore");
  assert.equal(lab.onLabEvent({ type: "pong" }), "ignore");
  assert.equal(lab.onLabEvent(null), "ignore");
});
