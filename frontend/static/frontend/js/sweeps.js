// Sweeps page (/sweeps/): the user's sweeps and the new-sweep form.
// The form builds {name, base_config, space, strategy, budget, parallelism, pruner, second_objective}
// for POST /api/sweeps/; a 400 is shown next to the matching field or "vary" row.
// The base config's controls are the tuner's (config_form.js), for the fields in BASE_FIELDS.
// Needs common.js (window.Tuner), config_fields.js and config_form.js.
(function () {
  "use strict";
  const { api, urls, el, fmt, errorText, runState } = window.Tuner;
  const { messageText, parseNumberList, parseLayerOptions, parseNumberText } = window.TunerConfigFields;
  const BASE_FIELDS = ["epochs", "train_size"];
  const BASE_VALUES = { epochs: 5, train_size: 10000 };  // short trials by default

  const tbody = document.getElementById("sweeps-body");
  const message = document.getElementById("sweeps-message");
  const countLabel = document.getElementById("sweeps-count");
  const form = document.getElementById("sweep-form");
  const rowsBox = document.getElementById("space-rows");
  const addSelect = document.getElementById("space-add-field");
  const addButton = document.getElementById("space-add");
  const formError = document.getElementById("sweep-form-error");
  const submitButton = document.getElementById("sweep-submit");

  let schema = [];            // config-schema fields
  const byName = new Map();
  let defaults = {};
  let baseForm = null;        // the base config's controls
  let rowSeq = 0;

  // ------------------------------------------------------------------ list

  async function loadList() {
    try {
      const data = await api.get(`${urls.to("api:sweep-list")}?limit=100`);
      const rows = Array.isArray(data) ? data : (data.results || []);
      tbody.replaceChildren(...rows.map((sw) => el("tr", { dataset: { sweepId: sw.id } }, [
        el("td", { dataset: { label: "Sweep" } }, [el("a", { href: urls.sweepPage(sw.id), class: "run-link" }, [
          el("span", { class: "run-id", text: `#${sw.id}` }),
          el("span", { class: "run-name", text: sw.name || "untitled" }),
        ])]),
        el("td", { dataset: { label: "Status" } }, [el("span", { class: `status status-${sw.status}`, text: sw.status })]),
        el("td", { dataset: { label: "Strategy" }, text: sw.strategy }),
        el("td", { class: "col-num", dataset: { label: "Trials" }, text: `${sw.trial_count ?? 0}/${sw.budget}` }),
        el("td", { class: "col-num col-accuracy", dataset: { label: "Best val" }, text: fmt.pct(sw.best_value, 2) }),
        el("td", { dataset: { label: "Created" } }, [el("time", { datetime: sw.created_at, text: fmt.shortTime(sw.created_at) })]),
      ])));
      const total = data && typeof data.count === "number" ? data.count : rows.length;
      countLabel.textContent = `(${total})`;
      message.textContent = rows.length ? "" : "No sweeps yet. Start one below.";
      message.hidden = !rows.length ? false : true;
      if (rows.some((sw) => runState.isActive(sw.status))) window.setTimeout(loadList, 5000);
    } catch (err) {
      message.hidden = false;
      message.textContent = `Could not load your sweeps: ${errorText(err)}`;
    }
  }

  // ------------------------------------------------------------------ space rows

  const isNumeric = (f) => f.type === "int" || f.type === "float";

  function fieldLabel(f) { return f.label || f.name; }

  function refreshAddSelect() {
    const used = new Set([...rowsBox.querySelectorAll(".space-row")].map((r) => r.dataset.field));
    const options = schema.filter((f) => !used.has(f.name) && !BASE_FIELDS.includes(f.name) &&
      (isNumeric(f) || f.type === "choice" || f.type === "int_list"));
    addSelect.replaceChildren(...options.map((f) => el("option", { value: f.name, text: fieldLabel(f) })));
    addButton.disabled = !options.length;
    addSelect.disabled = !options.length;
  }

  function uid(name) { rowSeq += 1; return `space-${name}-${rowSeq}`; }

  function numericRow(f, row) {
    const id = uid(f.name);
    const mode = el("select", { id: `${id}-mode`, class: "space-mode" }, [
      el("option", { value: "range", text: "range" }),
      el("option", { value: "values", text: "list of values" }),
    ]);
    const lowDefault = f.ui_minimum ?? f.minimum ?? 0;
    const highDefault = f.ui_maximum ?? f.maximum ?? (typeof f.default === "number" ? f.default * 10 : 1);
    const step = f.type === "int" ? "1" : "any";
    const low = el("input", { type: "number", id: `${id}-low`, class: "space-low", step, value: lowDefault });
    const high = el("input", { type: "number", id: `${id}-high`, class: "space-high", step, value: highDefault });
    const scale = el("select", { id: `${id}-scale`, class: "space-scale" }, [
      el("option", { value: "linear", text: "linear" }), el("option", { value: "log", text: "log" }),
    ]);
    scale.value = f.scale === "log" ? "log" : "linear";
    const values = el("input", { type: "text", id: `${id}-values`, class: "space-values", inputmode: "decimal",
      placeholder: "e.g. 0.001, 0.01, 0.1", value: f.default !== null && f.default !== undefined ? String(f.default) : "" });
    const rangeBox = el("div", { class: "space-range" }, [
      el("div", { class: "form-field" }, [el("label", { for: low.id, text: "Low" }), low]),
      el("div", { class: "form-field" }, [el("label", { for: high.id, text: "High" }), high]),
      el("div", { class: "form-field" }, [el("label", { for: scale.id, text: "Scale" }), scale]),
    ]);
    const valuesBox = el("div", { class: "form-field space-values-box", hidden: true }, [
      el("label", { for: values.id, text: "Values (comma separated)" }), values]);
    mode.addEventListener("change", () => {
      rangeBox.hidden = mode.value !== "range";
      valuesBox.hidden = mode.value === "range";
    });
    row.spec = () => {
      if (mode.value === "values") return { values: parseNumberList(values.value) };
      const number = (input) => { const v = parseNumberText(input.value); return v === "invalid" ? input.value : v; };
      return { low: number(low), high: number(high), scale: scale.value, type: f.type };
    };
    return [el("div", { class: "form-field" }, [el("label", { for: mode.id, text: "Vary as" }), mode]), rangeBox, valuesBox];
  }

  function choiceRow(f, row) {
    const boxes = (f.choices || []).map((choice) => {
      const input = el("input", { type: "checkbox", value: choice, checked: choice === f.default ? true : null,
        id: uid(`${f.name}-${choice}`) });
      return el("label", { class: "checkbox-label", for: input.id }, [input, choice]);
    });
    row.spec = () => ({ values: [...row.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value) });
    return [el("fieldset", { class: "space-choices" }, [el("legend", { class: "visually-hidden", text: `${fieldLabel(f)} values` }),
      ...boxes])];
  }

  function layersRow(f, row) {
    const id = uid(f.name);
    const def = Array.isArray(f.default) ? f.default.join(",") : "";
    const input = el("input", { type: "text", id, class: "space-layers", value: `64; 128; ${def}`,
      placeholder: "64; 128; 256,128", autocomplete: "off" });
    row.spec = () => ({ values: parseLayerOptions(input.value) });
    return [el("div", { class: "form-field space-layers-box" }, [
      el("label", { for: id, text: "Layer lists (';' between options, ',' between layers)" }), input])];
  }

  function addRow(name) {
    const f = byName.get(name);
    if (!f) return null;
    const row = el("div", { class: "space-row", dataset: { field: name }, role: "group",
      "aria-label": `Vary ${fieldLabel(f)}` });
    const body = f.type === "choice" ? choiceRow(f, row) : f.type === "int_list" ? layersRow(f, row) : numericRow(f, row);
    const remove = el("button", { type: "button", class: "secondary-button small-button space-remove",
      "aria-label": `Remove ${fieldLabel(f)}`, text: "Remove" });
    remove.addEventListener("click", () => {
      row.remove();
      refreshAddSelect();
      addSelect.focus();
    });
    row.append(
      el("div", { class: "space-row-head" }, [el("strong", { class: "space-field-name", text: fieldLabel(f) }),
        el("code", { class: "muted small", text: f.name }), remove]),
      el("div", { class: "space-row-body" }, body),
      el("p", { class: "field-error space-error", id: `space-error-${name}`, "aria-live": "polite" }),
    );
    rowsBox.append(row);
    refreshAddSelect();
    return row;
  }

  // ------------------------------------------------------------------ submit

  function clearErrors() {
    form.querySelectorAll(".field-error, .form-error").forEach((node) => { node.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
    if (baseForm) baseForm.clearErrors();
  }

  function setError(id, text) {
    const node = document.getElementById(id);
    if (node) { node.textContent = text; return true; }
    return false;
  }

  function showErrors(data) {
    const leftovers = [];
    for (const [key, value] of Object.entries(data || {})) {
      if (key === "space") {
        if (value && typeof value === "object" && !Array.isArray(value)) {
          for (const [field, msgs] of Object.entries(value)) {
            if (!setError(`space-error-${field}`, messageText(msgs))) {
              document.getElementById("space-error").textContent += `${field}: ${messageText(msgs)} `;
            }
          }
        } else {
          setError("space-error", messageText(value));
        }
      } else if (key === "base_config") {
        const { leftovers: rest } = baseForm ? baseForm.showErrors(value) : { leftovers: [messageText(value)] };
        setError("base-error", rest.join(" "));
      } else if (key === "detail" || key === "non_field_errors") {
        leftovers.push(messageText(value));
      } else if (!setError(`sweep-error-${key}`, messageText(value))) {
        leftovers.push(`${key}: ${messageText(value)}`);
      }
    }
    formError.textContent = leftovers.join(" ") || "Please fix the highlighted fields.";
    const first = form.querySelector(".field-error:not(:empty)");
    if (first) {
      const container = first.closest(".form-field, .space-row, fieldset");
      const input = container && container.querySelector("input, select");
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    }
  }

  function intOrNull(input) {
    const value = parseNumberText(input.value);
    return value === "invalid" ? input.value : value;
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    const space = {};
    rowsBox.querySelectorAll(".space-row").forEach((row) => { space[row.dataset.field] = row.spec(); });
    if (!Object.keys(space).length) {
      document.getElementById("space-error").textContent = "Add at least one field to vary.";
      addSelect.focus();
      return;
    }
    const baseConfig = { ...defaults, ...(baseForm ? baseForm.values() : BASE_VALUES) };
    const payload = {
      name: document.getElementById("sweep-name").value.trim(),
      strategy: document.getElementById("sweep-strategy").value,
      budget: intOrNull(document.getElementById("sweep-budget")),
      parallelism: intOrNull(document.getElementById("sweep-parallelism")) ?? 1,
      pruner: document.getElementById("sweep-pruner").value,
      diagnostic_pruning: document.getElementById("sweep-diagnostic-pruning").checked,
      second_objective: document.getElementById("sweep-second-objective").value,
      base_config: baseConfig,
      space,
    };
    submitButton.disabled = true;
    submitButton.textContent = "STARTING…";
    try {
      const sweep = await api.post(urls.to("api:sweep-list"), payload);
      window.location.assign(urls.sweepPage(sweep.id));
      return;
    } catch (err) {
      if (err.status === 400 && err.data) showErrors(err.data);
      else formError.textContent = errorText(err);
    }
    submitButton.disabled = false;
    submitButton.textContent = "START SWEEP";
  }

  // ------------------------------------------------------------------ init

  async function init() {
    loadList();
    addButton.disabled = true;
    try {
      const data = await api.get(urls.to("api:config-schema"));
      schema = data.fields || [];
      schema.forEach((f) => { byName.set(f.name, f); defaults[f.name] = f.default; });
      if (data.defaults && typeof data.defaults === "object") defaults = Object.assign({}, defaults, data.defaults);
      baseForm = window.TunerConfigForm.create(data, { container: document.getElementById("base-config"), fields: BASE_FIELDS });
      baseForm.set(BASE_VALUES);
      refreshAddSelect();
      if (byName.has("learning_rate")) addRow("learning_rate");
    } catch (err) {
      formError.textContent = `Could not load the config schema: ${errorText(err)}`;
    }
    addButton.addEventListener("click", () => {
      const row = addRow(addSelect.value);
      const first = row && row.querySelector("input, select");
      if (first) first.focus();
    });
    form.addEventListener("submit", submit);
  }

  init();
})();
