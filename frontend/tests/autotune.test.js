// node --test frontend/tests/: the pure part of frontend/static/frontend/js/autotune.js (Tune for me).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const AT = require("../static/frontend/js/autotune.js");

test("minutes: a number from 1 to 120", () => {
  assert.equal(AT.minutesProblem(1), "");
  assert.equal(AT.minutesProblem("120"), "");
  assert.equal(AT.minutesProblem(" 15 "), "");
  assert.match(AT.minutesProblem(0), /between 1 and 120/);
  assert.match(AT.minutesProblem(121), /between 1 and 120/);
  assert.match(AT.minutesProblem(""), /number/);
  assert.match(AT.minutesProblem("abc"), /number/);
  assert.match(AT.minutesProblem(NaN), /number/);
});

test("request: fixed = the form's values of the kept fields only", () => {
  const config = { activation: "tanh", learning_rate: 0.01, hidden_layers: [64, 32], epochs: 5 };
  assert.deepEqual(AT.request({ minutes: "2", keep: ["activation", "hidden_layers"], config }),
    { body: { minutes: 2, fixed: { activation: "tanh", hidden_layers: [64, 32] } } });
  assert.deepEqual(AT.request({ minutes: 15, keep: [], config }), { body: { minutes: 15, fixed: {} } });
  assert.deepEqual(AT.request({ minutes: 15, config, name: "  mine " }), { body: { minutes: 15, fixed: {}, name: "mine" } });
});

test("request: bad minutes, a field not in the form, junk values are errors, not a POST", () => {
  assert.match(AT.request({ minutes: 0, keep: [], config: {} }).error, /between/);
  assert.match(AT.request({ minutes: 5, keep: ["dropout"], config: {} }).error, /dropout: not in the tuner form/);
  assert.match(AT.request({ minutes: 5, keep: ["l2"], config: { l2: "not a number" } }).error, /l2: .*not a number/);
  assert.match(AT.request({ minutes: 5, keep: ["hidden_layers"], config: { hidden_layers: [8, "not a number"] } }).error,
    /hidden_layers/);
});

test("errorLines: one line per field of a 400, detail alone as is", () => {
  assert.deepEqual(AT.errorLines({ minutes: ["Must be between 1 and 1440 minutes."], fixed: ["Unknown field(s): colour."] }),
    ["minutes: Must be between 1 and 1440 minutes.", "fixed: Unknown field(s): colour."]);
  assert.deepEqual(AT.errorLines({ detail: "Storage full." }), ["Storage full."]);
  assert.deepEqual(AT.errorLines({ fixed: { dropout: ["too high"] } }), ["fixed: dropout: too high"]);
  assert.deepEqual(AT.errorLines(null), []);
});

test("anytimeSeries: percent points vs seconds, missing values skipped", () => {
  const points = [
    { seconds: 4.2, best_val_accuracy: 0.81, best_test_accuracy: null, trial_number: 1 },
    { seconds: 9, best_val_accuracy: 0.84, best_test_accuracy: null, trial_number: 3 },
    { seconds: 50.5, best_val_accuracy: 0.88, best_test_accuracy: 0.8712, trial_number: 9 },
    { seconds: "x", best_val_accuracy: 0.9 }, null,
  ];
  assert.deepEqual(AT.anytimeSeries(points), {
    val: [{ x: 4.2, y: 81 }, { x: 9, y: 84 }, { x: 50.5, y: 88 }],
    test: [{ x: 50.5, y: 87.12 }],
  });
  assert.deepEqual(AT.anytimeSeries(undefined), { val: [], test: [] });
});

test("the sweep state keeps `anytime` from sweep_status events (the page redraws it live)", () => {
  const SS = require("../static/frontend/js/sweep_state.js");
  let state = SS.applySweepEvent(SS.emptySweep(3), { type: "snapshot", seq: 1, sweep: { id: 3, status: "running", trials: [], anytime: [] } });
  state = SS.applySweepEvent(state, { type: "sweep_status", seq: 2, sweep: 3, status: "running",
    anytime: [{ seconds: 3, best_val_accuracy: 0.8, best_test_accuracy: null, trial_number: 1 }] });
  assert.equal(AT.anytimeSeries(state.anytime).val.length, 1);
});
