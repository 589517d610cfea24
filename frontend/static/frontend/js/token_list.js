// Pure logic of the API tokens page (tokens.js): the rows it shows and their texts. No DOM, no window
// access: loaded as a classic script (window.TunerTokenList) and by node's test runner (module.exports).
(function (factory) {  // node: module.exports; browser: window.TunerTokenList
  if (typeof module === "object" && module.exports) module.exports = factory(); else self.TunerTokenList = factory();
})(function () {
  "use strict";

  const MINUTE = 60 * 1000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  // "in 29 days", "in 5 hours", "in 3 minutes", "expired", "never" (no expiry).
  function expiryText(expiry, now) {
    if (!expiry) return "never";
    const left = Date.parse(expiry) - now;
    if (!(left > 0)) return "expired";
    if (left >= 2 * DAY) return `in ${plural(Math.round(left / DAY), "day")}`;
    if (left >= 2 * HOUR) return `in ${plural(Math.round(left / HOUR), "hour")}`;
    return `in ${plural(Math.max(1, Math.floor(left / MINUTE)), "minute")}`;
  }

  // The API's list (GET /api/auth/tokens/) as table rows, newest first, expired ones left out.
  function tokenRows(tokens, now) {
    return (Array.isArray(tokens) ? tokens : [])
      .filter((t) => t && typeof t.id === "string" && expiryText(t.expiry, now) !== "expired")
      .sort((a, b) => Date.parse(b.created) - Date.parse(a.created))
      .map((t) => ({
        id: t.id, created: t.created, expiry: t.expiry, current: Boolean(t.current),
        label: `${t.id.slice(0, 8)}…`, expires: expiryText(t.expiry, now),
      }));
  }

  // The list with `token` (a POST /api/auth/tokens/ answer) in it, once.
  function withToken(tokens, token) {
    const rest = (Array.isArray(tokens) ? tokens : []).filter((t) => t.id !== token.id);
    const { token: secret, ...row } = token;  // the secret never goes into the list
    return [row, ...rest];
  }

  const countText = (rows) => `(${rows.length})`;

  return { expiryText, tokenRows, withToken, countText };
});
