// node --test frontend/tests/: the live diagnosis panel's pure logic (diagnosis.js) and the
// `diagnosis` event in the run state (run_state.js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const D = require("../static/frontend/js/diagnosis.js");
const RS = require("../static/frontend/js/run_state.js");

const finding = (kind, epoch, severity = "warning", extra = {}) => ({
  epoch, kind, severity, title: kind, message: `${kind} message`, changes: {}, evidence: {}, ...extra,
});

test("mergeFinding adds a kind once and keeps the list ordered by epoch then severity", () => {
  let list = D.mergeFinding([], finding("plateau", 7));
  list = D.mergeFinding(list, finding("not_learning", 2, "critical"));
  list = D.mergeFinding(list, finding("dead_units", 2));
  list = D.mergeFinding(list, finding("plateau", 9));  // the same kind again: ignored
  assert.deepEqual(list.map((f) => f.kind), ["not_learning", "dead_units", "plateau"]);
  assert.equal(list.find((f) => f.kind === "plateau").epoch, 7);
  assert.deepEqual(D.mergeFinding(null, null), []);
  assert.deepEqual(D.mergeFinding([null, "x"], { nope: 1 }), []);
});

test("changesText shows each change as name → value", () => {
  assert.equal(D.changesText({ learning_rate: 0.0001, activation: "leaky_relu" }),
    "learning_rate → 0.0001, activation → leaky_relu");
  assert.equal(D.changesText({ hidden_layers: [128, 64], learning_rate: 1 / 3 }),
    "hidden_layers → [128, 64], learning_rate → 0.333");
  assert.equal(D.changesText(null), "");
});

test("panelView of an active run with nothing found says it is checking", () => {
  const view = D.panelView({ status: "running", diagnoses: [], stop_on_diagnosis: false, message: "" });
  assert.equal(view.state, "empty");
  assert.equal(view.summary, "checking every epoch…");
  assert.match(view.empty, /checked after every epoch/);
  assert.equal(view.stopText, "Findings are shown; the run goes on.");
  assert.deepEqual(view.items, []);
});

test("panelView counts critical findings and shows the stop reason of a stopped run", () => {
  const run = {
    status: "diverged", stop_on_diagnosis: true,
    message: "stopped at epoch 3: loss became NaN; lower the learning rate (0.1 → 0.01)",
    diagnoses: [finding("dead_units", 2), finding("divergence", 3, "critical", {
      title: "Loss became NaN", message: "loss became NaN; lower the learning rate (0.1 → 0.01)",
      changes: { learning_rate: 0.01 } })],
  };
  const view = D.panelView(run);
  assert.equal(view.state, "critical");
  assert.equal(view.summary, "2 findings, 1 critical");
  assert.equal(view.stopped, true);
  assert.equal(view.stopText, run.message);
  assert.deepEqual(view.items[1], {
    kind: "divergence", severity: "critical", epoch: 3, title: "Loss became NaN",
    message: "loss became NaN; lower the learning rate (0.1 → 0.01)", changes: "learning_rate → 0.01" });
  assert.equal(D.panelView({ status: "succeeded", diagnoses: [] }).summary, "nothing found");
  assert.equal(D.panelView({ status: "running", stop_on_diagnosis: true, diagnoses: [] }).stopText,
    "Stops the run at the first critical finding.");
  assert.equal(D.panelView(null).state, "empty");
});

test("the run state takes diagnoses from a snapshot and appends diagnosis events once per kind", () => {
  let run = RS.applyRunEvent(null, { type: "snapshot", seq: 4, experiment: {
    id: 9, status: "running", config: { epochs: 5 }, metrics: [], recommendations: [],
    diagnoses: [finding("dead_units", 1)], stop_on_diagnosis: true } });
  assert.equal(run.diagnoses.length, 1);
  run = RS.applyRunEvent(run, { type: "diagnosis", seq: 5, experiment: 9, finding: finding("not_learning", 2, "critical") });
  assert.equal(run.seq, 5);
  assert.deepEqual(run.diagnoses.map((f) => f.kind), ["dead_units", "not_learning"]);
  const same = RS.applyRunEvent(run, { type: "diagnosis", seq: 6, experiment: 9, finding: finding("not_learning", 3) });
  assert.equal(same.diagnoses.length, 2);
  assert.equal(same.seq, 6);  // the seq advances: no false gap
  const stale = RS.applyRunEvent(same, { type: "diagnosis", seq: 6, experiment: 9, finding: finding("plateau", 4) });
  assert.equal(stale, same);
  const other = RS.applyRunEvent(same, { type: "diagnosis", seq: 7, experiment: 10, finding: finding("plateau", 4) });
  assert.equal(other, same);
});
