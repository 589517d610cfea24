// The tuner page `/`: hyperparameter controls generated from /api/config-schema/, queueing a run,
// following it live (progress, log console, charts) and acting on its recommendations.
// DOM ids/classes: frontend/DOM_CONTRACT.md. URLs come from data-* attributes of #tuner.
(function () {
  "use strict";
  const { api, RunStream, snapshotFromRest, fmt, el } = window.Tuner;
  const { createMetricCharts } = window.TunerCharts;
  const { renderRecommendations, renderPerformanceSummary, formatValue } = window.TunerRecommendations;

  const root = document.getElementById("tuner");
  if (!root) return;
  const withId = (template, id) => template.replace("/0/", `/${encodeURIComponent(id)}/`);
  const urls = {
    schema: root.dataset.schemaUrl,
    experiments: root.dataset.experimentsUrl,
    cancel: (id) => withId(root.dataset.cancelUrl, id),
    apply: (id) => withId(root.dataset.applyUrl, id),
    runPage: (id) => withId(root.dataset.runPageUrl, id),
  };

  const $ = (id) => document.getElementById(id);
  const dom = {
    form: $("config-form"),
    groups: $("param-groups"),
    schemaStatus: $("schema-status"),
    presets: $("presets"),
    reset: $("reset-config"),
    runName: $("run-name"),
    runButton: $("run-button"),
    formError: $("form-error"),
    networkSummary: $("network-summary"),
    currentRun: $("current-run"),
    runTitle: $("run-title"),
    runStatus: $("run-status"),
    connection: $("connection-state"),
    runLink: $("run-link"),
    cancel: $("cancel-button"),
    runError: $("run-error"),
    progressBar: $("progress-bar"),
    progressText: $("progress-text"),
    eta: $("eta"),
    throughput: $("throughput"),
    log: $("log-console"),
    summary: $("performance-summary"),
    recommendations: $("recommendations"),
    recError: $("recommendations-error"),
  };

  const ACTIVE = new Set(["queued", "running"]);
  const FINISHED = new Set(["succeeded", "failed", "diverged", "cancelled", "pruned"]);
  const STATUS_LEVEL = { failed: "error", diverged: "error", cancelled: "warning", pruned: "warning", succeeded: "success" };
  const GROUP_TITLES = {
    architecture: "Architecture", optimizer: "Optimizer", training: "Training",
    regularisation: "Regularisation", schedule: "Learning-rate schedule", data: "Data",
  };
  const PRESET_TITLES = { fast_check: "Fast check", default: "Default", strong: "Strong" };
  const HIGHLIGHT_MS = 2000;
  const MAX_LOG_LINES = 800;

  const charts = createMetricCharts($("loss-chart"), $("accuracy-chart"));

  // ------------------------------------------------------------------------------- small helpers

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function describeError(err) {
    if (!err) return "Something went wrong.";
    if (err instanceof api.ApiError) {
      const data = err.data;
      if (data && typeof data.detail === "string") return data.detail;
      if (err.status === 0) return "The server could not be reached. Check your connection and try again.";
      if (err.status === 401 || err.status === 403) return "Your session has expired: reload the page and log in again.";
      if (data && typeof data === "object") {
        const parts = [];
        for (const [key, value] of Object.entries(data)) {
          if (Array.isArray(value)) parts.push(`${key}: ${value.join(" ")}`);
          else if (value && typeof value === "object") {
            for (const [field, msgs] of Object.entries(value)) parts.push(`${field}: ${[].concat(msgs).join(" ")}`);
          }
        }
        if (parts.length) return parts.join("; ");
      }
      return err.message;
    }
    return err.message || String(err);
  }

  function decimalsOf(step) {
    const text = String(step);
    if (text.includes("e-")) return Number(text.split("e-")[1]);
    const dot = text.indexOf(".");
    return dot === -1 ? 0 : text.length - dot - 1;
  }

  function clamp(value, lo, hi) { return Math.min(hi, Math.max(lo, value)); }

  function describeRange(spec) {
    const min = spec.minimum, max = spec.maximum;
    if (min !== null && min !== undefined && max !== null && max !== undefined) {
      return spec.exclusive_minimum ? `greater than ${min} and at most ${max}` : `between ${min} and ${max}`;
    }
    if (min !== null && min !== undefined) return `${spec.exclusive_minimum ? "greater than" : "at least"} ${min}`;
    if (max !== null && max !== undefined) return `at most ${max}`;
    return "";
  }

  // A quick local check (the server has the last word); "" when the value looks fine.
  function checkNumber(spec, value, subject) {
    const what = subject || "Value";
    if (value === null) return spec.nullable ? "" : "This field may not be empty.";
    if (typeof value !== "number" || !isFinite(value)) return `${what} must be a number.`;
    if ((spec.type === "int" || spec.type === "int_list") && !Number.isInteger(value)) return `${what} must be a whole number.`;
    const min = spec.minimum, max = spec.maximum;
    const low = min !== null && min !== undefined && (spec.exclusive_minimum ? value <= min : value < min);
    const high = max !== null && max !== undefined && value > max;
    return low || high ? `${what} must be ${describeRange(spec)}.` : "";
  }

  function readNumberBox(input) {
    const raw = input.value.trim();
    if (raw === "") {
      // A type=number box reports "" for unparsable text too: tell the two apart.
      return input.validity && input.validity.badInput ? "invalid" : null;
    }
    const value = Number(raw);
    return isFinite(value) ? value : raw;
  }

  // ------------------------------------------------------------------------------- controls

  const state = {
    schema: null,
    specs: {},        // name -> schema field
    controls: {},     // name -> {get, set, focus, container}
    runId: null,
    stream: null,
    token: 0,
    experiment: null,
    status: null,
    metrics: new Map(),  // epoch -> metric
    progress: null,      // last "progress" event
    epochClock: null,    // {epoch, start, fraction} for the first-epoch ETA
    recommendations: [],
    cancelling: false,
    restoreConfig: false,
    pendingConfig: null,
    highlightTimers: new Map(),
    errorShownFor: null,
  };

  function sliderMapping(spec, { lo, hi, log, integer, step }) {
    if (!log) {
      const sliderStep = step || (integer ? 1 : (hi - lo) / 100);
      const decimals = Math.max(decimalsOf(sliderStep), integer ? 0 : 2);
      return {
        min: lo, max: hi, step: sliderStep,
        toSlider: (value) => (typeof value === "number" ? clamp(value, lo, hi) : hi),
        fromSlider: (pos) => (integer ? Math.round(pos) : Number(Number(pos).toFixed(decimals))),
      };
    }
    const llo = Math.log10(lo), lhi = Math.log10(hi);
    const positions = 120;
    const sliderStep = (lhi - llo) / positions;
    // A log slider cannot reach 0; when 0 is valid (e.g. l2 = off) the first notch means 0.
    const zeroNotch = spec.minimum === 0 && !spec.exclusive_minimum;
    const min = zeroNotch ? llo - sliderStep : llo;
    return {
      min, max: lhi, step: sliderStep,
      toSlider: (value) => {
        if (typeof value !== "number") return lhi;
        if (value <= 0) return min;
        return clamp(Math.log10(value), llo, lhi);
      },
      fromSlider: (pos) => {
        const x = Number(pos);
        if (zeroNotch && x < llo - sliderStep / 2) return 0;
        const value = 10 ** clamp(x, llo, lhi);
        return integer ? Math.round(value) : Number(value.toPrecision(3));
      },
    };
  }

  function paramShell(spec, labelFor) {
    const helpId = `help-${spec.name}`;
    const errorId = `field-error-${spec.name}`;
    const container = el("div", { class: "param", dataset: { field: spec.name, type: spec.type } });
    const head = el("div", { class: "param-head" }, [
      el("label", { for: labelFor, id: `label-${spec.name}`, text: spec.label || spec.name, title: spec.help || null }),
    ]);
    container.append(head);
    // The field's API name leads the help text: recommendations name fields that way.
    const help = el("small", { class: "param-help", id: helpId }, [
      el("code", { class: "param-name", text: spec.name }), spec.help ? ` · ${spec.help}` : "",
    ]);
    const error = el("div", { class: "field-error", id: errorId, "aria-live": "polite" });
    return { container, head, help, error, describedBy: `${helpId} ${errorId}` };
  }

  function numericControl(spec) {
    const integer = spec.type === "int";
    const log = spec.scale === "log";
    const lo = spec.ui_minimum ?? spec.minimum ?? 0;
    const hi = spec.ui_maximum ?? spec.maximum ?? lo + 100;
    const map = sliderMapping(spec, { lo, hi, log, integer, step: spec.step });
    const shell = paramShell(spec, `param-${spec.name}`);
    const slider = el("input", {
      type: "range", id: `param-${spec.name}`, min: map.min, max: map.max, step: map.step,
      "aria-describedby": shell.describedBy, class: log ? "log-slider" : null,
    });
    const numberLabel = el("label", {
      for: `param-${spec.name}-number`, class: "visually-hidden", text: `${spec.label || spec.name} (exact value)`,
    });
    const number = el("input", {
      type: "number", id: `param-${spec.name}-number`, name: spec.name, inputmode: integer ? "numeric" : "decimal",
      min: spec.minimum ?? null, max: spec.maximum ?? null,
      step: integer ? (spec.step || 1) : (spec.step || "any"),
      placeholder: spec.nullable ? "all" : null, "aria-describedby": shell.describedBy,
    });
    const scaleHint = el("span", {
      class: "scale-hint muted", "aria-hidden": "true",
      text: `${log ? "log " : ""}${formatValue(spec.name, log && map.min < Math.log10(lo) ? 0 : lo)} … ${formatValue(spec.name, hi)}`,
    });
    shell.head.append(numberLabel, number);
    shell.container.append(el("div", { class: "param-slider" }, [slider, scaleHint]), shell.help, shell.error);

    function ariaText(value) {
      return value === null ? "all" : formatValue(spec.name, value);
    }
    function syncSlider(value) {
      slider.value = String(map.toSlider(value));
      slider.setAttribute("aria-valuetext", ariaText(value));
      const outside = typeof value === "number" && (value < lo || value > hi) && !(log && value === 0);
      slider.classList.toggle("out-of-range", outside);
    }
    slider.addEventListener("input", () => {
      const value = map.fromSlider(slider.value);
      number.value = String(value);
      slider.setAttribute("aria-valuetext", ariaText(value));
      slider.classList.remove("out-of-range");
      userEdited(spec.name);
    });
    number.addEventListener("input", () => {
      const value = readNumberBox(number);
      if (typeof value === "number" || value === null) syncSlider(value);
      userEdited(spec.name);
    });
    number.addEventListener("change", () => localValidate(spec.name));
    return {
      container: shell.container,
      get: () => readNumberBox(number),
      set(value) {
        number.value = value === null || value === undefined ? "" : String(value);
        syncSlider(value === undefined ? null : value);
      },
      focus: () => number.focus(),
      validate() {
        const value = readNumberBox(number);
        if (value === "invalid") return "Must be a number.";
        return checkNumber(spec, typeof value === "string" ? NaN : value);
      },
    };
  }

  function choiceControl(spec) {
    const shell = paramShell(spec, `param-${spec.name}`);
    const select = el("select", { id: `param-${spec.name}`, name: spec.name, "aria-describedby": shell.describedBy },
      (spec.choices || []).map((choice) => el("option", { value: choice, text: choice })));
    shell.head.append(select);
    shell.container.append(shell.help, shell.error);
    select.addEventListener("change", () => userEdited(spec.name));
    return {
      container: shell.container,
      get: () => select.value,
      set(value) { if (value !== undefined && value !== null) select.value = String(value); },
      focus: () => select.focus(),
      validate: () => "",
    };
  }

  function layersControl(spec) {
    const shell = paramShell(spec, "param-hidden_layers-0");
    const maxItems = spec.max_items || 3;
    const minItems = spec.min_items || 1;
    const uiMax = spec.ui_maximum ?? spec.maximum ?? 1024;
    const uiMin = Math.max(1, spec.ui_minimum ?? spec.minimum ?? 1);
    // Layer widths slide on a log2 scale: 1, 2, 4 ... 1024 with 8 notches per doubling.
    const l2lo = Math.log2(uiMin), l2hi = Math.log2(uiMax);
    const holder = el("div", { id: "hidden-layers", class: "hidden-layers" });
    const rowsBox = el("div", { class: "layer-rows" });
    const addButton = el("button", { type: "button", id: "add-layer", class: "secondary-button small-button", text: "+ Add layer" });
    holder.append(rowsBox, addButton);
    shell.container.append(holder, shell.help, shell.error);
    const rows = [];

    function makeRow(size) {
      const number = el("input", {
        type: "number", class: "hidden-layer-size", min: spec.minimum ?? 1, max: spec.maximum ?? null, step: 1,
        inputmode: "numeric", "aria-describedby": shell.describedBy,
      });
      const slider = el("input", { type: "range", class: "layer-slider", min: l2lo, max: l2hi, step: 0.125 });
      const label = el("label", { class: "layer-label" });
      const sliderLabel = el("label", { class: "visually-hidden" });
      const remove = el("button", { type: "button", class: "remove-layer icon-button", text: "×" });
      const row = { node: null, number, slider, label, sliderLabel, remove };
      row.node = el("div", { class: "layer-row" }, [label, sliderLabel, slider, number, remove]);
      const syncSlider = (value) => {
        if (typeof value === "number" && value > 0) slider.value = String(clamp(Math.log2(value), l2lo, l2hi));
        slider.setAttribute("aria-valuetext", typeof value === "number" ? `${value} units` : "");
      };
      row.set = (value) => { number.value = value === null || value === undefined ? "" : String(value); syncSlider(value); };
      slider.addEventListener("input", () => {
        const value = Math.round(2 ** Number(slider.value));
        number.value = String(value);
        slider.setAttribute("aria-valuetext", `${value} units`);
        userEdited(spec.name);
      });
      number.addEventListener("input", () => {
        const value = readNumberBox(number);
        if (typeof value === "number") syncSlider(value);
        userEdited(spec.name);
      });
      number.addEventListener("change", () => localValidate(spec.name));
      remove.addEventListener("click", () => {
        const index = rows.indexOf(row);
        if (index === -1 || rows.length <= minItems) return;
        rows.splice(index, 1);
        row.node.remove();
        renumber();
        (rows[Math.max(0, index - 1)] || {}).number?.focus();
        userEdited(spec.name);
      });
      row.set(size);
      return row;
    }

    function renumber() {
      rows.forEach((row, index) => {
        const n = index + 1;
        row.number.id = `param-hidden_layers-${index}`;
        row.slider.id = `param-hidden_layers-${index}-range`;
        row.label.setAttribute("for", row.number.id);
        row.label.textContent = `Layer ${n}`;
        row.sliderLabel.setAttribute("for", row.slider.id);
        row.sliderLabel.textContent = `Layer ${n} units (slider)`;
        row.remove.setAttribute("aria-label", `Remove layer ${n}`);
        row.remove.title = `Remove layer ${n}`;
        row.remove.disabled = rows.length <= minItems;
      });
      addButton.disabled = rows.length >= maxItems;
      shell.container.querySelector(`#label-${spec.name}`).setAttribute("for", rows.length ? rows[0].number.id : "");
    }

    function setList(list) {
      const sizes = Array.isArray(list) ? list.slice(0, maxItems) : [list];
      while (rows.length > sizes.length) rows.pop().node.remove();
      sizes.forEach((size, index) => {
        if (rows[index]) rows[index].set(size);
        else {
          const row = makeRow(size);
          rows.push(row);
          rowsBox.append(row.node);
        }
      });
      renumber();
    }

    addButton.addEventListener("click", () => {
      if (rows.length >= maxItems) return;
      const last = rows.length ? readNumberBox(rows[rows.length - 1].number) : 128;
      const size = typeof last === "number" ? Math.max(uiMin, Math.round(last / 2)) : 64;
      const row = makeRow(size);
      rows.push(row);
      rowsBox.append(row.node);
      renumber();
      row.number.focus();
      userEdited(spec.name);
    });

    return {
      container: shell.container,
      get: () => rows.map((row) => readNumberBox(row.number)),
      set: setList,
      focus: () => rows[0] && rows[0].number.focus(),
      validate() {
        for (let i = 0; i < rows.length; i++) {
          const value = readNumberBox(rows[i].number);
          const message = value === "invalid" ? `Layer ${i + 1} size must be a number.`
            : checkNumber(spec, value === null ? null : (typeof value === "number" ? value : NaN), `Layer ${i + 1} size`);
          if (message) return message === "This field may not be empty." ? `Layer ${i + 1} size may not be empty.` : message;
        }
        return "";
      },
    };
  }

  function buildControls(schema) {
    state.schema = schema;
    const fields = Array.isArray(schema.fields) ? schema.fields : [];
    const groups = new Map();
    for (const spec of fields) {
      state.specs[spec.name] = spec;
      const group = spec.group || "other";
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(spec);
    }
    const fragment = document.createDocumentFragment();
    for (const [group, specs] of groups) {
      const fieldset = el("fieldset", { class: "param-group", dataset: { group } }, [
        el("legend", { text: GROUP_TITLES[group] || group.replace(/_/g, " ") }),
      ]);
      for (const spec of specs) {
        let control;
        if (spec.type === "choice") control = choiceControl(spec);
        else if (spec.type === "int_list") control = layersControl(spec);
        else control = numericControl(spec);
        state.controls[spec.name] = control;
        fieldset.append(control.container);
      }
      fragment.append(fieldset);
    }
    dom.groups.replaceChildren(fragment);
    dom.groups.removeAttribute("aria-busy");

    for (const name of Object.keys(schema.presets || {})) {
      const button = el("button", {
        type: "button", class: "secondary-button preset-button", dataset: { preset: name },
        "aria-pressed": "false", text: PRESET_TITLES[name] || name.replace(/_/g, " "),
      });
      button.addEventListener("click", () => applyPreset(name));
      dom.presets.insertBefore(button, dom.reset);
    }
    dom.reset.disabled = false;
    dom.runButton.disabled = false;
    setControls(schema.defaults || {});
    if (state.pendingConfig) {
      setControls(state.pendingConfig);
      state.pendingConfig = null;
    }
    afterChange();
  }

  function setControls(config) {
    for (const [name, value] of Object.entries(config || {})) {
      if (state.controls[name]) state.controls[name].set(value);
    }
  }

  function readConfig() {
    const config = {};
    for (const [name, control] of Object.entries(state.controls)) {
      const value = control.get();
      config[name] = value === "invalid" ? "not a number" : value;
    }
    return config;
  }

  function sameValue(a, b) {
    if (Array.isArray(a) || Array.isArray(b)) {
      return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
    }
    if (typeof a === "number" && typeof b === "number") return Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a));
    return a === b;
  }

  function afterChange() {
    if (!state.schema) return;
    const config = readConfig();
    for (const button of dom.presets.querySelectorAll("button[data-preset]")) {
      const preset = state.schema.presets[button.dataset.preset] || {};
      const matches = Object.keys(state.controls).every((name) => sameValue(config[name], preset[name]));
      button.setAttribute("aria-pressed", matches ? "true" : "false");
    }
    const layers = Array.isArray(config.hidden_layers) ? config.hidden_layers : [];
    if (layers.length && layers.every((n) => Number.isInteger(n) && n > 0)) {
      const sizes = [784, ...layers, 10];
      let params = 0;
      for (let i = 0; i + 1 < sizes.length; i++) params += (sizes[i] + 1) * sizes[i + 1];
      setText(dom.networkSummary, `network ${sizes.join(" → ")} · ${params.toLocaleString("en-US")} parameters`);
    } else {
      setText(dom.networkSummary, "");
    }
  }

  function setFieldError(name, message) {
    const node = $(`field-error-${name}`);
    if (!node) return false;
    setText(node, message || "");
    const control = state.controls[name];
    if (control) {
      for (const input of control.container.querySelectorAll("input, select")) {
        if (message) input.setAttribute("aria-invalid", "true");
        else input.removeAttribute("aria-invalid");
      }
      control.container.classList.toggle("has-error", Boolean(message));
    }
    return true;
  }

  function localValidate(name) {
    const control = state.controls[name];
    if (control) setFieldError(name, control.validate());
  }

  function clearErrors() {
    for (const name of Object.keys(state.controls)) setFieldError(name, "");
    setText(dom.formError, "");
  }

  function userEdited(name) {
    const control = state.controls[name];
    if (control) {
      control.container.classList.remove("changed");
      if ($(`field-error-${name}`)?.textContent) setFieldError(name, "");
    }
    afterChange();
  }

  function clearChanged() {
    for (const control of Object.values(state.controls)) control.container.classList.remove("changed", "highlight");
    for (const timer of state.highlightTimers.values()) window.clearTimeout(timer);
    state.highlightTimers.clear();
  }

  function markChanged(name) {
    const control = state.controls[name];
    if (!control) return;
    const node = control.container;
    node.classList.remove("highlight");
    void node.offsetWidth;  // restart the flash animation
    node.classList.add("changed", "highlight");
    window.clearTimeout(state.highlightTimers.get(name));
    state.highlightTimers.set(name, window.setTimeout(() => {
      node.classList.remove("highlight");
      state.highlightTimers.delete(name);
    }, HIGHLIGHT_MS));
  }

  function applyPreset(name) {
    const preset = state.schema && state.schema.presets[name];
    if (!preset) return;
    clearChanged();
    clearErrors();
    setControls(preset);
    afterChange();
  }

  // ------------------------------------------------------------------------------- schema

  async function loadSchema() {
    setText(dom.schemaStatus, "Loading hyperparameters…");
    try {
      const schema = await api.get(urls.schema);
      buildControls(schema);
      loadConfigParam();
    } catch (err) {
      const retry = el("button", { type: "button", class: "secondary-button", text: "Retry" });
      retry.addEventListener("click", () => {
        dom.groups.replaceChildren(dom.schemaStatus);
        loadSchema();
      });
      dom.schemaStatus.textContent = `Could not load the hyperparameters: ${describeError(err)} `;
      dom.schemaStatus.classList.add("form-error");
      dom.schemaStatus.append(retry);
      setText(dom.formError, "The hyperparameter schema could not be loaded, so runs cannot be started yet.");
    }
  }

  // ------------------------------------------------------------------------------- run submission

  function showSubmitError(err) {
    const data = err && err.data;
    if (err instanceof api.ApiError && err.status === 400 && data && typeof data === "object") {
      const leftovers = [];
      let first = null;
      const config = data.config;
      if (config && typeof config === "object" && !Array.isArray(config)) {
        for (const [field, messages] of Object.entries(config)) {
          const text = [].concat(messages).join(" ");
          if (setFieldError(field, text)) {
            if (!first || orderOf(field) < orderOf(first)) first = field;
          } else {
            leftovers.push(`${field}: ${text}`);
          }
        }
      } else if (config) {
        leftovers.push(`config: ${[].concat(config).join(" ")}`);
      }
      for (const [key, value] of Object.entries(data)) {
        if (key === "config") continue;
        if (key === "name") leftovers.push(`Run name: ${[].concat(value).join(" ")}`);
        else leftovers.push(`${key}: ${typeof value === "string" ? value : [].concat(value).join(" ")}`);
      }
      setText(dom.formError, leftovers.length ? leftovers.join(" ")
        : first ? "Some hyperparameters are invalid: see the highlighted fields." : "");
      if (first) state.controls[first].focus();
      return;
    }
    setText(dom.formError, describeError(err));
  }

  function orderOf(field) {
    const fields = (state.schema && state.schema.fields) || [];
    const index = fields.findIndex((spec) => spec.name === field);
    return index === -1 ? 1e9 : index;
  }

  async function submitRun(event) {
    event.preventDefault();
    if (!state.schema || dom.runButton.getAttribute("aria-busy") === "true") return;
    clearErrors();
    const body = { name: dom.runName.value.trim(), config: readConfig() };
    dom.runButton.disabled = true;
    dom.runButton.setAttribute("aria-busy", "true");
    try {
      const run = await api.post(urls.experiments, body);
      follow(run.id, { push: true, initial: run });
      revealLive();
    } catch (err) {
      showSubmitError(err);
    } finally {
      dom.runButton.disabled = false;
      dom.runButton.removeAttribute("aria-busy");
    }
  }

  // ------------------------------------------------------------------------------- live run view

  function resetLive() {
    state.experiment = null;
    state.status = null;
    state.metrics = new Map();
    state.progress = null;
    state.epochClock = null;
    state.recommendations = [];
    state.cancelling = false;
    state.errorShownFor = null;
    charts.reset();
    dom.log.replaceChildren();
    setText(dom.runStatus, "–");
    dom.runStatus.className = "status";
    setText(dom.runError, "");
    setText(dom.recError, "");
    setText(dom.runTitle, "");
    setProgress(0, "waiting for the run…", "–", "– samples/s");
    dom.cancel.disabled = true;
    dom.summary.dataset.category = "";
    dom.summary.replaceChildren(el("p", { class: "muted", text: "The analysis appears when the run finishes." }));
    renderRecommendations(dom.recommendations, [], { emptyText: "Recommendations appear when the run finishes." });
  }

  // In the single-column layout the live view is below the controls: bring it into view.
  const narrow = window.matchMedia("(max-width: 999px)");
  function revealLive() {
    if (!narrow.matches) return;
    const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    dom.currentRun.scrollIntoView({ behavior: reduce ? "auto" : "smooth", block: "start" });
  }

  function runUrl(id) {
    const url = new URL(window.location.href);
    if (id === null) url.searchParams.delete("run");
    else url.searchParams.set("run", String(id));
    return url.pathname + url.search + url.hash;
  }

  function follow(id, options) {
    const opts = options || {};
    if (state.stream) state.stream.close();
    state.stream = null;
    const token = ++state.token;
    state.runId = id;
    resetLive();
    dom.currentRun.dataset.experimentId = String(id);
    dom.runLink.href = urls.runPage(id);
    dom.runLink.hidden = false;
    setText(dom.runTitle, `#${id}`);
    state.restoreConfig = Boolean(opts.restore);
    if (opts.push) window.history.pushState({ run: id }, "", runUrl(id));
    else if (opts.replace) window.history.replaceState({ run: id }, "", runUrl(id));
    if (opts.initial) onSnapshot(snapshotFromRest(opts.initial));
    const guard = (fn) => (arg) => { if (token === state.token) fn(arg); };
    state.stream = new RunStream(id, {
      snapshot: guard(onSnapshot), event: guard(onEvent), connection: guard(onConnection),
    });
  }

  function unfollow() {
    if (state.stream) state.stream.close();
    state.stream = null;
    state.token += 1;
    state.runId = null;
    resetLive();
    dom.currentRun.dataset.experimentId = "";
    dom.runLink.hidden = true;
    setText(dom.runStatus, "idle");
    setText(dom.connection, "idle");
    dom.connection.className = "connection-state";
    setProgress(0, "no run yet", "–", "– samples/s");
  }

  function onConnection(connection) {
    setText(dom.connection, connection);
    dom.connection.className = `connection-state connection-${connection}`;
    if (connection === "refused") {
      setText(dom.runError, `Run #${state.runId} cannot be shown: it does not exist, is not yours, or your session expired.`);
      dom.cancel.disabled = true;
      if (!state.status) setProgress(0, "run unavailable", "–", "– samples/s");
    }
  }

  function appendLog(text, kind) {
    const stick = dom.log.scrollHeight - dom.log.scrollTop - dom.log.clientHeight < 24;
    const line = el("div", { class: `log-line line-${kind || "info"}` }, [
      el("span", { class: "log-prompt", "aria-hidden": "true", text: "> " }), text,
    ]);
    dom.log.append(line);
    while (dom.log.childElementCount > MAX_LOG_LINES) dom.log.firstElementChild.remove();
    if (stick) dom.log.scrollTop = dom.log.scrollHeight;
  }

  function epochsTotal() {
    const exp = state.experiment || {};
    return exp.epochs || (exp.config && exp.config.epochs) || (state.progress && state.progress.epochs) || null;
  }

  function epochLine(metric, total) {
    const n = (v, d = 4) => (typeof v === "number" && isFinite(v) ? v.toFixed(d) : "nan");
    const lr = typeof metric.learning_rate === "number" && isFinite(metric.learning_rate)
      ? (metric.learning_rate !== 0 && Math.abs(metric.learning_rate) < 0.01
        ? metric.learning_rate.toExponential(2) : String(Number(metric.learning_rate.toPrecision(3))))
      : "–";
    const parts = [
      `epoch ${metric.epoch}/${total || "?"}`,
      `loss ${n(metric.train_loss)}`,
      `acc ${fmt.pct(metric.train_accuracy)}`,
      `val_loss ${n(metric.val_loss)}`,
      `val_acc ${fmt.pct(metric.val_accuracy)}`,
      `lr ${lr}`,
    ];
    if (typeof metric.seconds === "number") parts.push(`${metric.seconds.toFixed(1)}s`);
    return parts.join("  ");
  }

  function recordEpoch(metric) {
    const isNew = !state.metrics.has(metric.epoch);
    state.metrics.set(metric.epoch, metric);
    if (isNew) appendLog(epochLine(metric, epochsTotal()), "epoch");
    return isNew;
  }

  function statusLine(status, info) {
    let text = `status → ${status}`;
    const extra = [];
    if (FINISHED.has(status)) {
      if (typeof info.best_val_accuracy === "number") {
        extra.push(`best val ${fmt.pct(info.best_val_accuracy)}${info.best_epoch ? ` @ epoch ${info.best_epoch}` : ""}`);
      }
      if (typeof info.test_accuracy === "number") extra.push(`test ${fmt.pct(info.test_accuracy)}`);
    }
    if (info.message) extra.push(info.message);
    if (info.error) extra.push(info.error);
    if (extra.length) text += ` · ${extra.join(" · ")}`;
    return text;
  }

  function setStatus(status, info) {
    if (!status) return;
    // A finished run never becomes active again: a late answer (the cancel request's, a stale
    // poll) must not move the view backwards.
    if (FINISHED.has(state.status) && ACTIVE.has(status)) status = state.status;
    if (status !== state.status) {
      state.status = status;
      appendLog(statusLine(status, info || {}), STATUS_LEVEL[status] || "status");
      if (info && info.error) state.errorShownFor = status;
      setText(dom.runStatus, status);
      dom.runStatus.className = `status status-${status}`;
      if (!ACTIVE.has(status)) state.cancelling = false;
    }
    dom.cancel.disabled = !ACTIVE.has(status) || state.cancelling;
    setText(dom.cancel, state.cancelling ? "Cancelling…" : "Cancel");
  }

  function setProgress(percent, text, eta, throughput) {
    const value = clamp(Math.round(percent * 10) / 10, 0, 100);
    const width = `${value}%`;
    if (dom.progressBar.style.width !== width) dom.progressBar.style.width = width;
    const now = String(Math.round(value));
    if (dom.progressBar.getAttribute("aria-valuenow") !== now) dom.progressBar.setAttribute("aria-valuenow", now);
    if (dom.progressBar.getAttribute("aria-valuetext") !== text) dom.progressBar.setAttribute("aria-valuetext", text);
    setText(dom.progressText, text);
    setText(dom.eta, eta);
    setText(dom.throughput, throughput);
  }

  function secondsPerEpoch() {
    const list = [...state.metrics.values()].sort((a, b) => a.epoch - b.epoch).slice(-3)
      .map((m) => m.seconds).filter((s) => typeof s === "number" && s > 0);
    if (list.length) return list.reduce((a, b) => a + b, 0) / list.length;
    const clock = state.epochClock, p = state.progress;
    if (clock && p && p.epoch === clock.epoch) {
      const fraction = p.batch / p.batches - clock.fraction;
      const elapsed = (performance.now() - clock.start) / 1000;
      if (fraction > 0.05 && elapsed > 0.2) return elapsed / fraction;
    }
    return null;
  }

  function renderProgress() {
    const total = epochsTotal();
    const status = state.status;
    const done = state.metrics.size ? Math.max(...state.metrics.keys()) : (state.experiment && state.experiment.epochs_done) || 0;
    const last = state.metrics.get(done);
    const throughput = last && typeof last.samples_per_second === "number"
      ? `${Math.round(last.samples_per_second).toLocaleString("en-US")} samples/s` : "– samples/s";
    const p = state.progress;
    if (!status) return;
    if (status === "queued") {
      setProgress(0, "queued · waiting for a worker", "–", throughput);
      return;
    }
    if (FINISHED.has(status)) {
      const fraction = status === "succeeded" ? 1 : (total ? done / total : 0);
      const tail = status === "succeeded"
        ? (total && done < total ? `stopped early at epoch ${done}/${total}` : `epoch ${done}/${total || done} · done`)
        : `${status} at epoch ${done}/${total || "?"}`;
      setProgress(fraction * 100, tail, status === "succeeded" ? "done" : "–", throughput);
      return;
    }
    let fraction = total ? done / total : 0;
    let text = `epoch ${done}/${total || "?"}`;
    if (p && total) {
      if (p.epoch > done) {
        fraction = (p.epoch - 1 + p.batch / Math.max(1, p.batches)) / total;
        text = `epoch ${p.epoch}/${total} · batch ${p.batch}/${p.batches}`;
      } else if (p.epoch === done) {
        text = `epoch ${done}/${total} · batch ${p.batch}/${p.batches}`;
      }
    } else if (status === "running" && !done) {
      text = `epoch 1/${total || "?"} · starting`;
    }
    const perEpoch = secondsPerEpoch();
    const eta = perEpoch && total ? fmt.duration(Math.max(0, (1 - fraction) * total * perEpoch)) : "estimating…";
    setProgress(fraction * 100, text, eta, throughput);
  }

  function renderRecs(recommendations, config) {
    state.recommendations = recommendations || [];
    const labels = {};
    for (const [name, spec] of Object.entries(state.specs)) labels[name] = spec.label || name;
    renderRecommendations(dom.recommendations, state.recommendations, {
      baseConfig: config || (state.experiment && state.experiment.config) || null,
      labels,
      emptyText: emptyRecommendationsText(),
      onQuickApply: quickApply,
      onApplyRun: applyAndRun,
    });
  }

  function emptyRecommendationsText() {
    const exp = state.experiment || {};
    if (!FINISHED.has(state.status)) return "Recommendations appear when the run finishes.";
    if (exp.performance_category) return "No recommendations for this run.";
    if (state.status === "cancelled" && (exp.epochs_done || 0) < 2) {
      return "No recommendations: the run was cancelled before it had enough epochs to analyse.";
    }
    return "Analysing the run…";
  }

  function renderSummary(category, summary) {
    if (!category && !summary) return;
    renderPerformanceSummary(dom.summary, category || null, summary || {});
  }

  function mergeExperiment(fields) {
    state.experiment = { ...(state.experiment || {}), ...fields };
  }

  function onSnapshot(snap) {
    const exp = snap.experiment || {};
    mergeExperiment(exp);
    setText(dom.runTitle, `#${exp.id ?? state.runId}${exp.name ? ` · ${exp.name}` : ""}`);
    if (state.restoreConfig && exp.config) {
      state.restoreConfig = false;
      if (state.schema) { setControls(exp.config); afterChange(); } else state.pendingConfig = exp.config;
    }
    // Epoch lines before the status line of a finished run read in order.
    const metrics = (snap.metrics || []).slice().sort((a, b) => a.epoch - b.epoch);
    const finishedNow = FINISHED.has(exp.status) && exp.status !== state.status;
    if (!finishedNow) setStatus(exp.status, exp);
    metrics.forEach(recordEpoch);
    charts.setMetrics(metrics);
    if (finishedNow) setStatus(exp.status, exp);
    renderProgress();
    const recs = snap.recommendations || [];
    if (recs.length || exp.performance_category || FINISHED.has(exp.status)) renderRecs(recs, exp.config);
    if (exp.performance_category || exp.analysis) renderSummary(exp.performance_category, exp.analysis);
  }

  function onEvent(event) {
    switch (event.type) {
      case "status":
        mergeExperiment({
          status: event.status, epochs_done: event.epochs_done, best_val_accuracy: event.best_val_accuracy,
          test_accuracy: event.test_accuracy, message: event.message, error: event.error,
          ...(event.name !== undefined ? { name: event.name } : {}),
        });
        setStatus(event.status, event);
        renderProgress();
        if (FINISHED.has(event.status)) renderRecs(state.recommendations, null);
        break;
      case "progress": {
        if (!state.epochClock || state.epochClock.epoch !== event.epoch) {
          state.epochClock = { epoch: event.epoch, start: performance.now(), fraction: event.batch / Math.max(1, event.batches) };
        }
        state.progress = event;
        if (state.experiment && !state.experiment.epochs) mergeExperiment({ epochs: event.epochs });
        if (state.status === "queued") setStatus("running", {});
        renderProgress();
        break;
      }
      case "epoch": {
        const { type, seq, experiment, epochs, ...metric } = event;
        if (epochs && state.experiment && !state.experiment.epochs) mergeExperiment({ epochs });
        if (state.status === "queued") setStatus("running", {});
        recordEpoch(metric);
        charts.addEpoch(metric);
        mergeExperiment({ epochs_done: Math.max(state.experiment?.epochs_done || 0, metric.epoch) });
        renderProgress();
        break;
      }
      case "log":
        appendLog(String(event.message || ""), ["warning", "error"].includes(event.level) ? event.level : "info");
        break;
      case "finished":
        mergeExperiment({
          best_val_accuracy: event.best_val_accuracy, best_epoch: event.best_epoch,
          test_accuracy: event.test_accuracy, test_loss: event.test_loss, epochs_done: event.epochs_done,
          message: event.message, error: event.error,
        });
        if (event.error && state.errorShownFor !== event.status && state.status === event.status) {
          appendLog(`error: ${event.error}`, "error");
          state.errorShownFor = event.status;
        }
        setStatus(event.status, event);
        renderProgress();
        renderRecs(state.recommendations, null);
        break;
      case "recommendations":
        mergeExperiment({ performance_category: event.category, analysis: event.summary });
        renderRecs(event.recommendations || [], null);
        renderSummary(event.category, event.summary);
        break;
      default:
        break;
    }
  }

  async function cancelRun() {
    const id = state.runId;
    if (id === null || state.cancelling) return;
    state.cancelling = true;
    setText(dom.runError, "");
    setStatus(state.status, {});
    try {
      const run = await api.post(urls.cancel(id));
      if (id !== state.runId) return;
      if (!ACTIVE.has(run.status)) state.cancelling = false;
      mergeExperiment({ status: run.status });
      setStatus(run.status, { message: run.message });
      renderProgress();
    } catch (err) {
      if (id !== state.runId) return;
      state.cancelling = false;
      setText(dom.runError, `Could not cancel run #${id}: ${describeError(err)}`);
      setStatus(state.status, {});
    }
  }

  // ------------------------------------------------------------------------------- recommendations

  function quickApply(changes, rec) {
    if (!state.schema) return;
    clearChanged();
    const applied = [];
    for (const [name, value] of Object.entries(changes || {})) {
      const control = state.controls[name];
      if (!control) continue;
      control.set(value);
      setFieldError(name, "");
      markChanged(name);
      applied.push(name);
    }
    afterChange();
    setText(dom.formError, "");
    setText(dom.recError, "");
    if (applied.length) {
      const title = rec && rec.title ? `"${rec.title}"` : "the recommendation";
      announce(`Applied ${title} to ${applied.join(", ")}. Press INITIALIZE TRAINING SEQUENCE to run it.`);
    }
  }

  const announcer = el("p", { class: "apply-status", id: "apply-status", role: "status", "aria-live": "polite" });
  dom.networkSummary.after(announcer);
  let announceTimer = null;
  function announce(text) {
    setText(announcer, text);
    window.clearTimeout(announceTimer);
    announceTimer = window.setTimeout(() => setText(announcer, ""), 8000);
  }

  async function applyAndRun(rec) {
    setText(dom.recError, "");
    try {
      const child = await api.post(urls.apply(rec.id));
      if (state.schema && child.config) {
        clearChanged();
        setControls(child.config);
        for (const name of Object.keys(rec.changes || {})) markChanged(name);
        afterChange();
      }
      announce(`Queued run #${child.id} with ${Object.keys(rec.changes || {}).join(", ")} changed.`);
      follow(child.id, { push: true, initial: child });
      revealLive();
    } catch (err) {
      setText(dom.recError, `Apply & Run failed: ${describeError(err)}`);
    }
  }

  // ------------------------------------------------------------------------------- wiring

  dom.form.addEventListener("submit", submitRun);
  dom.form.addEventListener("keydown", (event) => {
    // Enter in a hyperparameter box commits the value; only the run name / button start a run.
    const target = event.target;
    if (event.key === "Enter" && target instanceof HTMLInputElement && target.id !== "run-name") {
      event.preventDefault();
      target.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });
  dom.reset.addEventListener("click", () => {
    if (!state.schema) return;
    clearChanged();
    clearErrors();
    setControls(state.schema.defaults || {});
    afterChange();
  });
  dom.cancel.addEventListener("click", cancelRun);
  window.addEventListener("popstate", () => {
    const id = runParam();
    if (id === null) { if (state.runId !== null) unfollow(); }
    else if (id !== state.runId) follow(id, { restore: true });
  });

  // "Open in tuner" links from a run page carry ?config=<JSON>: load it into the controls.
  function loadConfigParam() {
    const url = new URL(window.location.href);
    const raw = url.searchParams.get("config");
    if (!raw) return;
    url.searchParams.delete("config");
    window.history.replaceState(window.history.state, "", url);
    let config = null;
    try { config = JSON.parse(raw); } catch (err) { config = null; }
    if (!config || typeof config !== "object" || Array.isArray(config)) {
      setText(dom.formError, "The configuration in the link could not be read.");
      return;
    }
    const known = Object.fromEntries(Object.entries(config).filter(([name]) => state.controls[name]));
    setControls({ ...(state.schema.defaults || {}), ...known });
    afterChange();
    announce("Loaded the configuration from the run page. Press INITIALIZE TRAINING SEQUENCE to run it.");
  }

  function runParam() {
    const raw = new URLSearchParams(window.location.search).get("run");
    return raw && /^\d+$/.test(raw) ? Number(raw) : null;
  }

  loadSchema();
  const initialRun = runParam();
  if (initialRun !== null) follow(initialRun, { restore: true });
})();
