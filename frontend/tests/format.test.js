// node --test frontend/tests/: formatting and API error text (frontend/static/frontend/js/format.js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { fmt, messageText, apiErrorText, errorText } = require("../static/frontend/js/format.js");

test("errorText: an API error's detail wins", () => {
  assert.equal(errorText({ status: 429, data: { detail: "Too many runs queued." } }), "Too many runs queued.");
  assert.equal(errorText({ status: 403, data: { detail: "Not yours." } }), "Not yours.");
});

test("errorText: no answer, an expired session, a bare status", () => {
  assert.equal(errorText({ status: 0, data: null }), "The server could not be reached. Check your connection and try again.");
  assert.equal(errorText({ status: 401, data: null }), "Your session has expired: reload the page and log in again.");
  assert.equal(errorText({ status: 403, data: {} }), "Your session has expired: reload the page and log in again.");
  assert.equal(errorText({ status: 500, data: null }), "Request failed (HTTP 500).");
  assert.equal(errorText({ status: 502, data: [] }), "Request failed (HTTP 502).");
});

test("errorText: validation errors name their fields (nested ones by the innermost name)", () => {
  assert.equal(errorText({ status: 400, data: { name: ["Too long."], budget: ["Must be at least 1.", "Really."] } }),
    "name: Too long.; budget: Must be at least 1. Really.");
  assert.equal(errorText({ status: 400, data: { config: { learning_rate: ["Too big."] } } }), "learning_rate: Too big.");
  assert.equal(errorText({ status: 400, data: { non_field_errors: "Nope." } }), "non_field_errors: Nope.");
});

test("errorText: plain errors and nothing", () => {
  assert.equal(errorText(new Error("socket closed")), "socket closed");
  assert.equal(errorText("weird"), "weird");
  assert.equal(errorText(null), "Something went wrong.");
  assert.equal(errorText(undefined), "Something went wrong.");
});

test("apiErrorText is what ApiError carries as its message", () => {
  assert.equal(apiErrorText(404, { detail: "Not found." }), "Not found.");
  assert.equal(apiErrorText(400, { config: ["Unknown field."] }), "config: Unknown field.");
});

test("messageText flattens DRF error values", () => {
  assert.equal(messageText(["a", "b"]), "a b");
  assert.equal(messageText("x"), "x");
  assert.equal(messageText(null), "");
  assert.equal(messageText({ low: ["Must be > 0."], high: "Too big." }), "low: Must be > 0.; high: Too big.");
  assert.equal(messageText([["nested"], "flat"]), "nested flat");
});

test("fmt: percentages, numbers, durations, values", () => {
  assert.equal(fmt.pct(0.8766), "87.7%");
  assert.equal(fmt.pct(0.87654, 2), "87.65%");
  assert.equal(fmt.pct(null), "–");
  assert.equal(fmt.num(Infinity), "–");
  assert.equal(fmt.num(0.000123456), "0.0001235");
  assert.equal(fmt.duration(12.34), "12.3 s");
  assert.equal(fmt.duration(125), "2 min 5 s");
  assert.equal(fmt.duration(7260), "2 h 1 min");
  assert.equal(fmt.duration(undefined), "–");
  assert.equal(fmt.value([256, 128]), "[256, 128]");
  assert.equal(fmt.value(0.00012345678), "0.0001235");
  assert.equal(fmt.value(3), "3");
  assert.equal(fmt.value(null), "–");
});

test("fmt.fieldValue: null train_size means all the data", () => {
  assert.equal(fmt.fieldValue("train_size", null), "all");
  assert.equal(fmt.fieldValue("l2", null), "–");
  assert.equal(fmt.fieldValue("learning_rate", undefined), "?");
  assert.equal(fmt.fieldValue("learning_rate", 1e-5), "0.00001");
  assert.equal(fmt.fieldValue("hidden_layers", [64]), "[64]");
});

test("fmt.shortTime: local date and minute", () => {
  const iso = new Date(2024, 0, 5, 9, 7).toISOString();
  assert.equal(fmt.shortTime(iso), "2024-01-05 09:07");
  assert.equal(fmt.shortTime(null), "–");
});
