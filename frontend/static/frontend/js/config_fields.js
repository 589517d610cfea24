// Pure rules of the hyperparameter fields of /api/config-schema/: slider <-> value mappings (linear,
// log10, log2 for layer widths), parsing what was typed, quick local checks, preset matching, the
// network summary and the server's 400 answers split per field. No DOM: used by config_form.js and
// sweeps.js (window.TunerConfigFields) and by node's test runner (module.exports).
//
// A schema field ("spec"): {name, label, help, group, type: int|float|choice|int_list, default,
// minimum, maximum, exclusive_minimum, ui_minimum, ui_maximum, step, scale: linear|log, nullable,
// choices, min_items, max_items}.
(function (factory) {  // node: module.exports; browser: window.TunerConfigFields
  if (typeof module === "object" && module.exports) module.exports = factory(); else self.TunerConfigFields = factory();
})(function () {
  "use strict";

  const GROUP_TITLES = Object.freeze({
    architecture: "Architecture", optimizer: "Optimizer", training: "Training",
    regularisation: "Regularisation", schedule: "Learning-rate schedule", data: "Data",
  });
  const PRESET_TITLES = Object.freeze({ fast_check: "Fast check", default: "Default", strong: "Strong" });
  const INPUTS = 784;
  const CLASSES = 10;
  const LOG_POSITIONS = 120;      // notches of a log10 slider
  const LAYER_NOTCH = 0.125;      // a layer-width slider has 8 notches per doubling

  const known = (value) => value !== null && value !== undefined;
  const clamp = (value, lo, hi) => Math.min(hi, Math.max(lo, value));

  function decimalsOf(step) {
    const text = String(step);
    if (text.includes("e-")) return Number(text.split("e-")[1]);
    const dot = text.indexOf(".");
    return dot === -1 ? 0 : text.length - dot - 1;
  }

  function describeRange(spec) {
    const min = spec.minimum, max = spec.maximum;
    if (known(min) && known(max)) {
      return spec.exclusive_minimum ? `greater than ${min} and at most ${max}` : `between ${min} and ${max}`;
    }
    if (known(min)) return `${spec.exclusive_minimum ? "greater than" : "at least"} ${min}`;
    if (known(max)) return `at most ${max}`;
    return "";
  }

  // What a number box holds: a number, null (empty) or "invalid" (text that is not a number; a
  // type=number box reports "" with validity.badInput for it).
  function parseNumberText(raw, badInput) {
    const text = String(raw ?? "").trim();
    if (text === "") return badInput ? "invalid" : null;
    const value = Number(text);
    return isFinite(value) ? value : "invalid";
  }

  // A quick local check (the server has the last word): "" when `value` looks fine for `spec`.
  function checkNumber(spec, value, subject) {
    const what = subject || "Value";
    if (value === null) return spec.nullable ? "" : `${subject ? `${subject} may` : "This field may"} not be empty.`;
    if (typeof value !== "number" || !isFinite(value)) return `${what} must be a number.`;
    if ((spec.type === "int" || spec.type === "int_list") && !Number.isInteger(value)) return `${what} must be a whole number.`;
    const min = spec.minimum, max = spec.maximum;
    const low = known(min) && (spec.exclusive_minimum ? value <= min : value < min);
    const high = known(max) && value > max;
    return low || high ? `${what} must be ${describeRange(spec)}.` : "";
  }

  // The slider's range for a numeric field: the UI range when the schema narrows it.
  function numericRange(spec) {
    const lo = spec.ui_minimum ?? spec.minimum ?? 0;
    return { lo, hi: spec.ui_maximum ?? spec.maximum ?? lo + 100, log: spec.scale === "log", integer: spec.type === "int" };
  }

  // {min, max, step} of the range input and the two directions value <-> slider position. A log
  // slider moves in log10 steps; when 0 is valid (e.g. l2 = off) its first notch means 0.
  function sliderMapping(spec) {
    const { lo, hi, log, integer } = numericRange(spec);
    if (!log) {
      const step = spec.step || (integer ? 1 : (hi - lo) / 100);
      const decimals = Math.max(decimalsOf(step), integer ? 0 : 2);
      return {
        min: lo, max: hi, step, lo, hi, log,
        toSlider: (value) => (typeof value === "number" ? clamp(value, lo, hi) : hi),
        fromSlider: (pos) => (integer ? Math.round(pos) : Number(Number(pos).toFixed(decimals))),
      };
    }
    const llo = Math.log10(lo), lhi = Math.log10(hi);
    const step = (lhi - llo) / LOG_POSITIONS;
    const zeroNotch = spec.minimum === 0 && !spec.exclusive_minimum;
    const min = zeroNotch ? llo - step : llo;
    return {
      min, max: lhi, step, lo, hi, log, zeroNotch,
      toSlider(value) {
        if (typeof value !== "number") return lhi;
        if (value <= 0) return min;
        return clamp(Math.log10(value), llo, lhi);
      },
      fromSlider(pos) {
        const x = Number(pos);
        if (zeroNotch && x < llo - step / 2) return 0;
        const value = 10 ** clamp(x, llo, lhi);
        return integer ? Math.round(value) : Number(value.toPrecision(3));
      },
    };
  }

  // True when a number lies outside the slider's range (the slider is then pinned at an end).
  function outsideSlider(spec, value) {
    const { lo, hi, log } = numericRange(spec);
    return typeof value === "number" && (value < lo || value > hi) && !(log && value === 0);
  }

  // Hidden-layer widths slide on a log2 scale: 1, 2, 4 ... 1024.
  function layerMapping(spec) {
    const uiMin = Math.max(1, spec.ui_minimum ?? spec.minimum ?? 1);
    const uiMax = spec.ui_maximum ?? spec.maximum ?? 1024;
    const min = Math.log2(uiMin), max = Math.log2(uiMax);
    return {
      min, max, step: LAYER_NOTCH, uiMin,
      minItems: spec.min_items || 1,
      maxItems: spec.max_items || 3,
      toSlider: (size) => (typeof size === "number" && size > 0 ? clamp(Math.log2(size), min, max) : null),
      fromSlider: (pos) => Math.round(2 ** Number(pos)),
      // The width of a layer added after one of `last` units: half as wide.
      nextSize: (last) => (typeof last === "number" ? Math.max(uiMin, Math.round(last / 2)) : 64),
    };
  }

  function checkLayers(spec, sizes) {
    for (let i = 0; i < sizes.length; i++) {
      const value = sizes[i];
      const message = checkNumber(spec, value === "invalid" ? NaN : value, `Layer ${i + 1} size`);
      if (message) return message;
    }
    return "";
  }

  function sameValue(a, b) {
    if (Array.isArray(a) || Array.isArray(b)) {
      return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
    }
    if (typeof a === "number" && typeof b === "number") return Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a));
    return a === b;
  }

  // True when every one of `names` has the preset's value in `config`.
  function presetMatches(config, preset, names) {
    return names.every((name) => sameValue(config[name], (preset || {})[name]));
  }

  // "network 784 → 32 → 10 · 25,450 parameters", or "" while a width is not a positive integer.
  function networkSummary(layers) {
    const widths = Array.isArray(layers) ? layers : [];
    if (!widths.length || !widths.every((n) => Number.isInteger(n) && n > 0)) return "";
    const sizes = [INPUTS, ...widths, CLASSES];
    let params = 0;
    for (let i = 0; i + 1 < sizes.length; i++) params += (sizes[i] + 1) * sizes[i + 1];
    return `network ${sizes.join(" → ")} · ${params.toLocaleString("en-US")} parameters`;
  }

  // "0.001, 0.01 ,0.1" -> [0.001, 0.01, 0.1]; unparsable items stay as NaN (the server says so).
  function parseNumberList(text) {
    return String(text ?? "").split(",").map((part) => part.trim()).filter(Boolean).map(Number);
  }

  // "64; 128; 256,128" -> [[64], [128], [256, 128]]: options between ";", layers between ",".
  function parseLayerOptions(text) {
    return String(text ?? "").split(";").map((part) => part.trim()).filter(Boolean).map(parseNumberList);
  }

  // A 400 answer's `config` errors split into the fields `isField(name)` shows and the rest as text.
  // -> {fields: {name: "message"}, first: the first field in `order`, leftovers: ["name: message"]}.
  function splitFieldErrors(errors, isField, order) {
    const fields = {};
    const leftovers = [];
    if (errors && typeof errors === "object" && !Array.isArray(errors)) {
      for (const [name, messages] of Object.entries(errors)) {
        const text = [].concat(messages).join(" ");
        if (isField(name)) fields[name] = text;
        else leftovers.push(`${name}: ${text}`);
      }
    } else if (known(errors)) {
      leftovers.push([].concat(errors).join(" "));
    }
    const rank = (name) => { const i = (order || []).indexOf(name); return i === -1 ? Infinity : i; };
    const first = Object.keys(fields).sort((a, b) => rank(a) - rank(b))[0] || null;
    return { fields, first, leftovers };
  }

  return {
    GROUP_TITLES, PRESET_TITLES,
    clamp, decimalsOf, describeRange, parseNumberText, checkNumber, numericRange, sliderMapping, outsideSlider,
    layerMapping, checkLayers, sameValue, presetMatches, networkSummary, parseNumberList, parseLayerOptions,
    splitFieldErrors,
  };
});
