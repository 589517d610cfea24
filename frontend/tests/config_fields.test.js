// node --test frontend/tests/: the pure rules of the config form (frontend/static/frontend/js/config_fields.js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const F = require("../static/frontend/js/config_fields.js");

const rate = { name: "learning_rate", type: "float", minimum: 0, exclusive_minimum: true, maximum: 10,
  ui_minimum: 0.00001, ui_maximum: 1, scale: "log" };
const l2 = { name: "l2", type: "float", minimum: 0, maximum: 1, ui_minimum: 0.000001, ui_maximum: 0.1, scale: "log" };
const epochs = { name: "epochs", type: "int", minimum: 1, maximum: 200, ui_maximum: 100 };
const dropout = { name: "dropout", type: "float", minimum: 0, maximum: 0.9, step: 0.05 };
const trainSize = { name: "train_size", type: "int", minimum: 100, maximum: 60000, nullable: true };
const layers = { name: "hidden_layers", type: "int_list", minimum: 1, maximum: 4096, ui_maximum: 1024, min_items: 1, max_items: 3 };

test("a log slider maps log10 positions to values and back", () => {
  const map = F.sliderMapping(rate);
  assert.equal(map.min, -5);
  assert.equal(map.max, 0);
  assert.ok(Math.abs(map.step - 5 / 120) < 1e-12);
  assert.equal(map.toSlider(0.001), -3);
  assert.equal(map.fromSlider(-3), 0.001);
  assert.equal(map.fromSlider(-3 + map.step), 0.00110);  // three significant digits
  assert.equal(map.toSlider(8), 0);          // beyond the slider: pinned at the end
  assert.equal(map.toSlider(null), 0);
  assert.equal(map.fromSlider(-99), 0.00001); // clamped
});

test("a log slider whose field may be 0 has a first notch meaning 0", () => {
  const map = F.sliderMapping(l2);
  assert.equal(map.zeroNotch, true);
  assert.ok(map.min < -6);
  assert.equal(map.toSlider(0), map.min);
  assert.equal(map.fromSlider(map.min), 0);
  assert.equal(map.fromSlider(-6), 0.000001);
  assert.equal(F.sliderMapping(rate).zeroNotch, false);  // exclusive minimum: 0 is not allowed
});

test("a linear slider rounds integers and keeps a step's decimals", () => {
  const map = F.sliderMapping(epochs);
  assert.deepEqual([map.min, map.max, map.step], [1, 100, 1]);  // the minimum when no ui_minimum
  assert.equal(map.fromSlider("12.4"), 12);
  assert.equal(map.toSlider(150), 100);
  const drop = F.sliderMapping(dropout);
  assert.equal(drop.step, 0.05);
  assert.equal(drop.fromSlider("0.35000000000000003"), 0.35);
});

test("outsideSlider: values the slider cannot show", () => {
  assert.equal(F.outsideSlider(epochs, 150), true);
  assert.equal(F.outsideSlider(epochs, 50), false);
  assert.equal(F.outsideSlider(rate, 8), true);
  assert.equal(F.outsideSlider(l2, 0), false);   // the zero notch
  assert.equal(F.outsideSlider(trainSize, null), false);
});

test("layer widths slide on a log2 scale", () => {
  const map = F.layerMapping(layers);
  assert.deepEqual([map.min, map.max, map.step, map.minItems, map.maxItems], [0, 10, 0.125, 1, 3]);
  assert.equal(map.toSlider(256), 8);
  assert.equal(map.toSlider(4096), 10);
  assert.equal(map.toSlider(null), null);
  assert.equal(map.fromSlider(7), 128);
  assert.equal(map.fromSlider(7.125), 140);
  assert.equal(map.nextSize(128), 64);
  assert.equal(map.nextSize(1), 1);
  assert.equal(map.nextSize("invalid"), 64);
});

test("parseNumberText: numbers, empty and junk", () => {
  assert.equal(F.parseNumberText("0.001"), 0.001);
  assert.equal(F.parseNumberText(" 12 "), 12);
  assert.equal(F.parseNumberText("1e-4"), 0.0001);
  assert.equal(F.parseNumberText(""), null);
  assert.equal(F.parseNumberText("", true), "invalid");  // a number box's unparsable text reads as ""
  assert.equal(F.parseNumberText("abc"), "invalid");
  assert.equal(F.parseNumberText(null), null);
});

test("checkNumber: the quick local check", () => {
  assert.equal(F.checkNumber(epochs, 5), "");
  assert.equal(F.checkNumber(epochs, 0), "Value must be between 1 and 200.");
  assert.equal(F.checkNumber(epochs, 2.5), "Value must be a whole number.");
  assert.equal(F.checkNumber(epochs, null), "This field may not be empty.");
  assert.equal(F.checkNumber(trainSize, null), "");
  assert.equal(F.checkNumber(rate, 0), "Value must be greater than 0 and at most 10.");
  assert.equal(F.checkNumber(rate, NaN), "Value must be a number.");
  assert.equal(F.checkNumber({ type: "float", minimum: 1 }, 0), "Value must be at least 1.");
  assert.equal(F.checkNumber({ type: "float", maximum: 1 }, 2), "Value must be at most 1.");
});

test("checkLayers names the first bad layer", () => {
  assert.equal(F.checkLayers(layers, [64, 32]), "");
  assert.equal(F.checkLayers(layers, [64, 0]), "Layer 2 size must be between 1 and 4096.");
  assert.equal(F.checkLayers(layers, [null]), "Layer 1 size may not be empty.");
  assert.equal(F.checkLayers(layers, ["invalid"]), "Layer 1 size must be a number.");
});

test("presets match when every shown field has the preset's value", () => {
  const preset = { epochs: 3, learning_rate: 0.001, hidden_layers: [64], train_size: null };
  const names = Object.keys(preset);
  assert.equal(F.presetMatches({ ...preset, hidden_layers: [64] }, preset, names), true);
  assert.equal(F.presetMatches({ ...preset, learning_rate: 0.001 + 1e-16 }, preset, names), true);
  assert.equal(F.presetMatches({ ...preset, hidden_layers: [64, 32] }, preset, names), false);
  assert.equal(F.presetMatches({ ...preset, train_size: 0 }, preset, names), false);
  assert.equal(F.presetMatches(preset, undefined, names), false);
});

test("networkSummary counts weights and biases", () => {
  assert.equal(F.networkSummary([32]), "network 784 → 32 → 10 · 25,450 parameters");
  assert.equal(F.networkSummary([256, 128]), "network 784 → 256 → 128 → 10 · 235,146 parameters");
  assert.equal(F.networkSummary([32, "invalid"]), "");
  assert.equal(F.networkSummary([]), "");
});

test("the sweep form's lists", () => {
  assert.deepEqual(F.parseNumberList("0.001, 0.01 ,0.1,"), [0.001, 0.01, 0.1]);
  assert.ok(Number.isNaN(F.parseNumberList("1, x")[1]));
  assert.deepEqual(F.parseLayerOptions("64; 128; 256,128"), [[64], [128], [256, 128]]);
  assert.deepEqual(F.parseLayerOptions(" ; "), []);
});

test("splitFieldErrors: shown fields, the first in schema order, the rest as text", () => {
  const order = ["hidden_layers", "learning_rate", "epochs", "warmup_epochs"];
  const shown = (name) => order.includes(name);
  const split = F.splitFieldErrors({ warmup_epochs: ["Too long."], epochs: ["Too many.", "Really."], bogus: "Unknown." },
    shown, order);
  assert.deepEqual(split.fields, { warmup_epochs: "Too long.", epochs: "Too many. Really." });
  assert.equal(split.first, "epochs");
  assert.deepEqual(split.leftovers, ["bogus: Unknown."]);
  assert.deepEqual(F.splitFieldErrors(["Not an object."], shown, order), { fields: {}, first: null, leftovers: ["Not an object."] });
  assert.deepEqual(F.splitFieldErrors(undefined, shown, order), { fields: {}, first: null, leftovers: [] });
});
