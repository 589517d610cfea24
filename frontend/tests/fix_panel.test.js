// node --test frontend/tests/: the "Find the fix" panel's state (frontend/static/frontend/js/fix_panel.js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { canFindFix, fixState, gainText, POLL_MS } = require("../static/frontend/js/fix_panel.js");

const ADVICE = [{ kind: "lr_too_low", changes: { learning_rate: 0.001 } }, { kind: "performance", changes: {} }];

test("canFindFix: a finished run that trained, with advice that changes something", () => {
  assert.equal(canFindFix({ status: "succeeded", epochs_done: 3, recommendations: ADVICE }), true);
  assert.equal(canFindFix({ status: "diverged", epochs_done: 1, recommendations: ADVICE }), true);
  assert.equal(canFindFix({ status: "running", epochs_done: 3, recommendations: ADVICE }), false);
  assert.equal(canFindFix({ status: "failed", epochs_done: 3, recommendations: ADVICE }), false);
  assert.equal(canFindFix({ status: "cancelled", epochs_done: 0, recommendations: ADVICE }), false);
  assert.equal(canFindFix({ status: "succeeded", epochs_done: 3, recommendations: [ADVICE[1],
    { kind: "verified_fix", changes: { epochs: 9 } }, { kind: "success", changes: { epochs: 9 } }] }), false);
  assert.equal(canFindFix(null), false);
});

test("gainText: signed points, one decimal, a dash when not measured", () => {
  assert.equal(gainText(4.23), "+4.2 pts");
  assert.equal(gainText(-1), "−1.0 pts");
  assert.equal(gainText(0.01), "±0.0 pts");
  assert.equal(gainText(null), "–");
  assert.equal(gainText(NaN), "–");
});

const candidate = (over) => ({ kind: "lr_too_low", title: "raise the rate", changes: { learning_rate: 0.001 },
  trial: null, status: "waiting", best_val_accuracy: null, epochs_done: 0, epochs: 3, gain_points: null, ...over });

test("fixState: an active sweep lists live statuses and polls", () => {
  const state = fixState([{ id: 7, status: "running", parent_best_val_accuracy: 0.5, winner: null, fix_result: null,
    candidates: [candidate({ number: 1, trial: 11, status: "running", epochs_done: 1 }),
      candidate({ number: 2, trial: 12, status: "succeeded", best_val_accuracy: 0.61, gain_points: 11 }),
      candidate({ number: 3 })] }]);
  assert.equal(state.active, true);
  assert.deepEqual(state.rows.map((r) => r.statusText), ["running 1/3", "succeeded", "waiting"]);
  assert.deepEqual(state.rows.map((r) => r.gainLevel), ["none", "up", "none"]);
  assert.equal(state.rows[1].valText, "61.0 %");
  assert.equal(state.verdict, null);
  assert.equal(state.summary, "1/3 candidates measured");
  assert.equal(state.winnerTrial, null);
  assert.ok(POLL_MS >= 1000 && POLL_MS <= 10000);
});

test("fixState: the newest sweep, its winner highlighted, the verified verdict", () => {
  const old = { id: 3, status: "finished", candidates: [], fix_result: { measured: 0 } };
  const state = fixState([old, { id: 8, status: "finished", parent_best_val_accuracy: 0.5, winner: 1, recommendation: 42,
    fix_result: { winner: 1, measured: 2 },
    candidates: [candidate({ number: 1, trial: 11, status: "diverged", gain_points: -50 }),
      candidate({ number: 2, trial: 12, status: "succeeded", best_val_accuracy: 0.542, gain_points: 4.2, title: "lower the rate" })] }]);
  assert.equal(state.sweep.id, 8);
  assert.equal(state.active, false);
  assert.deepEqual(state.rows.map((r) => r.winner), [false, true]);
  assert.deepEqual(state.rows.map((r) => r.gainLevel), ["down", "up"]);
  assert.equal(state.winnerTrial, 12);
  assert.equal(state.recommendation, 42);
  assert.equal(state.verdict.kind, "verified_fix");
  assert.match(state.verdict.text, /^Verified: lower the rate — \+4\.2 pts over this run's 50\.0 %/);
});

test("fixState: nothing helped, cancelled, and nothing at all", () => {
  const none = fixState([{ id: 2, status: "finished", parent_best_val_accuracy: 0.841, winner: null,
    fix_result: { winner: null, measured: 3 }, candidates: [candidate({ status: "succeeded", gain_points: -0.4 })] }]);
  assert.equal(none.verdict.kind, "verified_none");
  assert.equal(none.verdict.text, "Tried 3 changes; none beat this run's 84.1 %.");
  const cancelled = fixState([{ id: 2, status: "cancelled", winner: null, fix_result: { winner: null, measured: 0 }, candidates: [] }]);
  assert.equal(cancelled.verdict.kind, "cancelled");
  const empty = fixState([]);
  assert.equal(empty.sweep, null);
  assert.equal(empty.active, false);
  assert.deepEqual(fixState(null).rows, []);
});
