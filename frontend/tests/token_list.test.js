// node --test frontend/tests/: the API tokens page's rows (frontend/static/frontend/js/token_list.js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { expiryText, tokenRows, withToken, countText } = require("../static/frontend/js/token_list.js");

const NOW = Date.parse("2026-01-10T12:00:00Z");
const at = (hours) => new Date(NOW + hours * 3600 * 1000).toISOString();

test("expiryText: days, hours, minutes, expired, never", () => {
  assert.equal(expiryText(at(720), NOW), "in 30 days");
  assert.equal(expiryText(at(719.99), NOW), "in 30 days");  // just created: not "in 29 days"
  assert.equal(expiryText(at(49), NOW), "in 2 days");
  assert.equal(expiryText(at(47), NOW), "in 47 hours");
  assert.equal(expiryText(at(1.5), NOW), "in 90 minutes");
  assert.equal(expiryText(at(1 / 120), NOW), "in 1 minute");
  assert.equal(expiryText(at(-1), NOW), "expired");
  assert.equal(expiryText(at(0), NOW), "expired");
  assert.equal(expiryText(null, NOW), "never");
  assert.equal(expiryText("not a date", NOW), "expired");
});

test("tokenRows: newest first, expired and malformed entries left out, a short label", () => {
  const rows = tokenRows([
    { id: "aaaaaaaaaaaaaaaa", created: at(-48), expiry: at(672), current: false },
    { id: "bbbbbbbbbbbbbbbb", created: at(-1), expiry: at(719), current: true },
    { id: "cccccccccccccccc", created: at(-800), expiry: at(-80) },
    { created: at(-2) }, null,
  ], NOW);
  assert.deepEqual(rows.map((r) => r.id), ["bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa"]);
  assert.equal(rows[0].label, "bbbbbbbb…");
  assert.equal(rows[0].current, true);
  assert.equal(rows[1].current, false);
  assert.equal(rows[1].expires, "in 28 days");
  assert.deepEqual(tokenRows(null, NOW), []);
  assert.equal(countText(rows), "(2)");
});

test("withToken: a created token joins the list once, without its secret", () => {
  const created = { id: "dddddddddddddddd", created: at(0), expiry: at(720), current: false, token: "s3cret" };
  const list = withToken([{ id: "aaaaaaaaaaaaaaaa", created: at(-1), expiry: at(10) }], created);
  assert.deepEqual(list.map((t) => t.id), ["dddddddddddddddd", "aaaaaaaaaaaaaaaa"]);
  assert.equal("token" in list[0], false);
  assert.equal(withToken(list, created).length, 2);
});
