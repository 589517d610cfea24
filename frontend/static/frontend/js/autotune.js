// Tune for me (autotune): the tuner page's "Tune for me" panel and the sweep page's anytime curve.
//
// Pure part (no DOM; node's test runner loads it: frontend/tests/autotune.test.js):
//   MIN_MINUTES, MAX_MINUTES (1–120 on the page; the API takes up to 1440)
//   minutesProblem(value) -> "" or why the minutes cannot be sent
//   request({minutes, keep, config, name}) -> {body} (the POST /api/autotune/ body: `fixed` = the tuner
//     form's value of each kept field) or {error}
//   errorLines(data) -> one line per problem of a 400 body ({minutes: [...], fixed: [...], ...})
//   anytimeSeries(points) -> {val: [{x: seconds, y: %}], test: [...]} from a sweep detail's `anytime`
//     (best val/test accuracy so far vs seconds since the start; points without a value are skipped)
// Browser part (window.TunerAutotune.mount(form, schema), called by tuner.js once its form exists):
// fills #autotune-keep with one checkbox per field, POSTs on #autotune-button and opens the sweep page.
// DOM ids: frontend/DOM_CONTRACT.md.
(function (factory) {  // node: module.exports; browser: window.TunerAutotune
  if (typeof module === "object" && module.exports) module.exports = factory();
  else self.TunerAutotune = factory();
})(function () {
  "use strict";

  const MIN_MINUTES = 1;
  const MAX_MINUTES = 120;

  function minutesProblem(value) {
    const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    if (typeof n !== "number" || !Number.isFinite(n)) return "Minutes must be a number.";
    if (n < MIN_MINUTES || n > MAX_MINUTES) return `Minutes must be between ${MIN_MINUTES} and ${MAX_MINUTES}.`;
    return "";
  }

  function request({ minutes, keep, config, name }) {
    const problem = minutesProblem(minutes);
    if (problem) return { error: problem };
    const fixed = {};
    for (const field of keep || []) {
      if (!config || !(field in config)) return { error: `${field}: not in the tuner form.` };
      const value = config[field];
      if (value === "not a number" || (Array.isArray(value) && value.includes("not a number"))) {
        return { error: `${field}: the tuner form's value is not a number.` };
      }
      fixed[field] = value;
    }
    const body = { minutes: Number(minutes), fixed };
    if (name && String(name).trim()) body.name = String(name).trim();
    return { body };
  }

  function errorLines(data) {
    if (!data || typeof data !== "object") return [];
    if (typeof data.detail === "string") return [data.detail];
    const lines = [];
    for (const [key, value] of Object.entries(data)) {
      const messages = Array.isArray(value) ? value
        : (value && typeof value === "object" ? Object.entries(value).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`)
          : [String(value)]);
      lines.push(`${key}: ${messages.join(" ")}`);
    }
    return lines;
  }

  function anytimeSeries(points) {
    const val = [];
    const test = [];
    for (const p of Array.isArray(points) ? points : []) {
      if (!p || typeof p.seconds !== "number" || !Number.isFinite(p.seconds)) continue;
      if (typeof p.best_val_accuracy === "number") val.push({ x: p.seconds, y: +(100 * p.best_val_accuracy).toFixed(3) });
      if (typeof p.best_test_accuracy === "number") test.push({ x: p.seconds, y: +(100 * p.best_test_accuracy).toFixed(3) });
    }
    return { val, test };
  }

  // ------------------------------------------------------------------ browser: the tuner page's panel

  function mount(form, schema) {
    const $ = (id) => document.getElementById(id);
    const { api, urls, el, errorText } = window.Tuner;
    const panel = $("autotune-panel");
    if (!panel) return;
    const minutes = $("autotune-minutes");
    const minutesNumber = $("autotune-minutes-number");
    const keepBox = $("autotune-keep");
    const button = $("autotune-button");
    const errorBox = $("autotune-error");

    minutes.addEventListener("input", () => { minutesNumber.value = minutes.value; });
    minutesNumber.addEventListener("input", () => {
      if (!minutesProblem(minutesNumber.value)) minutes.value = minutesNumber.value;
    });
    minutesNumber.addEventListener("keydown", (event) => {  // Enter here must not submit the run form
      if (event.key === "Enter") { event.preventDefault(); button.click(); }
    });
    keepBox.replaceChildren(...(schema.fields || []).filter((spec) => form.has(spec.name)).map((spec) => {
      const box = el("input", { type: "checkbox", value: spec.name, id: `autotune-keep-${spec.name}` });
      return el("label", { class: "checkbox-label autotune-keep-field", for: box.id }, [box, ` ${spec.label || spec.name}`]);
    }));
    button.disabled = false;

    button.addEventListener("click", async () => {
      if (button.getAttribute("aria-busy") === "true") return;
      errorBox.textContent = "";
      const keep = [...keepBox.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
      const built = request({ minutes: minutesNumber.value, keep, config: form.values() });
      if (built.error) { errorBox.textContent = built.error; return; }
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        const sweep = await api.post(urls.to("api:autotune"), built.body);
        window.location.assign(urls.sweepPage(sweep.id));
      } catch (err) {
        const lines = err instanceof api.ApiError && err.status === 400 ? errorLines(err.data) : [];
        errorBox.textContent = lines.length ? lines.join(" ") : errorText(err);
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    });
  }

  return { MIN_MINUTES, MAX_MINUTES, minutesProblem, request, errorLines, anytimeSeries, mount };
});
