// Pure formatting shared by every page: numbers, durations, times, and the text shown for a failed
// API call. No DOM, no window access: loaded as a classic script (window.TunerFormat, re-exported
// by common.js as window.Tuner.fmt / errorText) and by node's test runner (module.exports).
(function (factory) {  // node: module.exports; browser: window.TunerFormat
  if (typeof module === "object" && module.exports) module.exports = factory(); else self.TunerFormat = factory();
})(function () {
  "use strict";

  const missing = (value) => value === null || value === undefined;

  const fmt = {
    pct: (value, digits = 1) => (missing(value) ? "–" : `${(value * 100).toFixed(digits)}%`),
    num: (value, digits = 4) => (missing(value) || !isFinite(value) ? "–" : Number(value).toPrecision(digits)),
    duration(seconds) {
      if (missing(seconds)) return "–";
      if (seconds < 60) return `${seconds.toFixed(1)} s`;
      const minutes = Math.floor(seconds / 60);
      return minutes < 60 ? `${minutes} min ${Math.round(seconds % 60)} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
    },
    value(value) {
      if (Array.isArray(value)) return `[${value.join(", ")}]`;
      if (missing(value)) return "–";
      if (typeof value === "number" && !Number.isInteger(value)) return Number(value.toPrecision(4)).toString();
      return String(value);
    },
    // A config value as the forms and recommendations show it (null train_size = all the data).
    fieldValue(field, value) {
      if (value === undefined) return "?";
      if (value === null) return field === "train_size" ? "all" : "–";
      return fmt.value(value);
    },
    time: (iso) => (iso ? new Date(iso).toLocaleString() : "–"),
    // "2024-05-01 14:03" in local time: the tables' compact timestamp.
    shortTime(iso) {
      if (!iso) return "–";
      const d = new Date(iso);
      const pad = (n) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
    },
  };

  // A DRF error value as one line: "msg", ["a", "b"] -> "a b", {field: [..]} -> "field: .." (nested
  // objects name their innermost field).
  function messageText(value) {
    if (missing(value)) return "";
    if (Array.isArray(value)) return value.map(messageText).filter(Boolean).join(" ");
    if (typeof value === "object") {
      return Object.entries(value).map(([key, inner]) => (
        inner && typeof inner === "object" && !Array.isArray(inner) ? messageText(inner) : `${key}: ${messageText(inner)}`
      )).join("; ");
    }
    return String(value);
  }

  // The message of a failed request, from its HTTP status and parsed body (0 = no answer).
  function apiErrorText(status, data) {
    if (data && typeof data.detail === "string") return data.detail;
    if (status === 0) return "The server could not be reached. Check your connection and try again.";
    if (status === 401 || status === 403) return "Your session has expired: reload the page and log in again.";
    if (data && typeof data === "object" && !Array.isArray(data)) {
      const text = messageText(data);
      if (text) return text;
    }
    return `Request failed (HTTP ${status}).`;
  }

  // What to show for anything a page caught: an ApiError (has .status), an Error, or nothing.
  function errorText(err) {
    if (!err) return "Something went wrong.";
    if (typeof err.status === "number") return apiErrorText(err.status, err.data);
    return err.message || String(err);
  }

  return { fmt, messageText, apiErrorText, errorText };
});
