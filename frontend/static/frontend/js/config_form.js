// The schema-driven hyperparameter form: one control per /api/config-schema/ field (range slider +
// exact number box, log scales, selects, hidden layers added/removed), presets, reset, per-field
// errors and the Quick-Apply highlight. Used by the tuner page (every field) and the sweep form
// (its base config). The rules (mappings, parsing, checks) are config_fields.js.
// Needs common.js (window.Tuner) and config_fields.js (window.TunerConfigFields).
//
// API (window.TunerConfigForm):
//   const form = TunerConfigForm.create(schema, options)
//     options.container  element whose children become the controls (grouped in fieldsets)
//     options.fields     the names to show (default: every schema field)
//     options.presets    element that gets one button[data-preset] per schema preset, before options.reset
//     options.reset      a button that sets the schema defaults
//     options.onChange(config)  after every change (typing, slider, preset, set())
//   form.names, form.has(name), form.values() -> config of the shown fields ("not a number" for junk),
//   form.set(config), form.applyPreset(name), form.reset(), form.focus(name),
//   form.setFieldError(name, text) -> shown?, form.showErrors(configErrors) -> leftover texts,
//   form.clearErrors(), form.markChanged(name), form.clearChanged().
// Markup: DOM_CONTRACT.md "Tuner page" (#param-F, #param-F-number, #field-error-F, .param[data-field],
// #hidden-layers, .hidden-layer-size, #add-layer, .remove-layer, button[data-preset]).
(function () {
  "use strict";
  const { el } = window.Tuner;
  const F = window.TunerConfigFields;
  const { fieldValue } = window.Tuner.fmt;
  const HIGHLIGHT_MS = 2000;

  function readBox(input) {
    return F.parseNumberText(input.value, Boolean(input.validity && input.validity.badInput));
  }

  function shell(spec, labelFor) {
    const helpId = `help-${spec.name}`;
    const errorId = `field-error-${spec.name}`;
    const container = el("div", { class: "param", dataset: { field: spec.name, type: spec.type } });
    const head = el("div", { class: "param-head" }, [
      el("label", { for: labelFor, id: `label-${spec.name}`, text: spec.label || spec.name, title: spec.help || null }),
    ]);
    // The field's API name leads the help text: recommendations name fields that way.
    const help = el("small", { class: "param-help", id: helpId }, [
      el("code", { class: "param-name", text: spec.name }), spec.help ? ` · ${spec.help}` : "",
    ]);
    const error = el("div", { class: "field-error", id: errorId, "aria-live": "polite" });
    container.append(head);
    return { container, head, help, error, describedBy: `${helpId} ${errorId}` };
  }

  // ------------------------------------------------------------------ one control per field type
  // Each returns {container, get, set(value), focus, validate -> message}; `edited(name)` is called
  // on every user edit, `committed(name)` when a value is committed (change event).

  function numericControl(spec, edited, committed) {
    const map = F.sliderMapping(spec);
    const s = shell(spec, `param-${spec.name}`);
    const slider = el("input", {
      type: "range", id: `param-${spec.name}`, min: map.min, max: map.max, step: map.step,
      "aria-describedby": s.describedBy, class: map.log ? "log-slider" : null,
    });
    const integer = spec.type === "int";
    const number = el("input", {
      type: "number", id: `param-${spec.name}-number`, name: spec.name, inputmode: integer ? "numeric" : "decimal",
      min: spec.minimum ?? null, max: spec.maximum ?? null, step: integer ? (spec.step || 1) : (spec.step || "any"),
      placeholder: spec.nullable ? "all" : null, "aria-describedby": s.describedBy,
    });
    s.head.append(
      el("label", { for: number.id, class: "visually-hidden", text: `${spec.label || spec.name} (exact value)` }), number);
    s.container.append(el("div", { class: "param-slider" }, [slider, el("span", {
      class: "scale-hint muted", "aria-hidden": "true",
      text: `${map.log ? "log " : ""}${fieldValue(spec.name, map.zeroNotch ? 0 : map.lo)} … ${fieldValue(spec.name, map.hi)}`,
    })]), s.help, s.error);

    const ariaText = (value) => (value === null ? "all" : fieldValue(spec.name, value));
    function syncSlider(value) {
      slider.value = String(map.toSlider(value));
      slider.setAttribute("aria-valuetext", ariaText(value));
      slider.classList.toggle("out-of-range", F.outsideSlider(spec, value));
    }
    slider.addEventListener("input", () => {
      const value = map.fromSlider(slider.value);
      number.value = String(value);
      slider.setAttribute("aria-valuetext", ariaText(value));
      slider.classList.remove("out-of-range");
      edited(spec.name);
    });
    number.addEventListener("input", () => {
      const value = readBox(number);
      if (value !== "invalid") syncSlider(value);
      edited(spec.name);
    });
    number.addEventListener("change", () => committed(spec.name));
    return {
      container: s.container,
      get: () => readBox(number),
      set(value) {
        number.value = value === null || value === undefined ? "" : String(value);
        syncSlider(value === undefined ? null : value);
      },
      focus: () => number.focus(),
      validate: () => F.checkNumber(spec, readBox(number) === "invalid" ? NaN : readBox(number)),
    };
  }

  function choiceControl(spec, edited) {
    const s = shell(spec, `param-${spec.name}`);
    const select = el("select", { id: `param-${spec.name}`, name: spec.name, "aria-describedby": s.describedBy },
      (spec.choices || []).map((choice) => el("option", { value: choice, text: choice })));
    s.head.append(select);
    s.container.append(s.help, s.error);
    select.addEventListener("change", () => edited(spec.name));
    return {
      container: s.container,
      get: () => select.value,
      set(value) { if (value !== undefined && value !== null) select.value = String(value); },
      focus: () => select.focus(),
      validate: () => "",
    };
  }

  function layersControl(spec, edited, committed) {
    const map = F.layerMapping(spec);
    const s = shell(spec, "param-hidden_layers-0");
    const rowsBox = el("div", { class: "layer-rows" });
    const addButton = el("button", { type: "button", id: "add-layer", class: "secondary-button small-button", text: "+ Add layer" });
    s.container.append(el("div", { id: "hidden-layers", class: "hidden-layers" }, [rowsBox, addButton]), s.help, s.error);
    const rows = [];

    function makeRow(size) {
      const number = el("input", {
        type: "number", class: "hidden-layer-size", min: spec.minimum ?? 1, max: spec.maximum ?? null, step: 1,
        inputmode: "numeric", "aria-describedby": s.describedBy,
      });
      const slider = el("input", { type: "range", class: "layer-slider", min: map.min, max: map.max, step: map.step });
      const row = {
        number, slider, label: el("label", { class: "layer-label" }), sliderLabel: el("label", { class: "visually-hidden" }),
        remove: el("button", { type: "button", class: "remove-layer icon-button", text: "×" }),
      };
      row.node = el("div", { class: "layer-row" }, [row.label, row.sliderLabel, slider, number, row.remove]);
      const syncSlider = (value) => {
        const position = map.toSlider(value);
        if (position !== null) slider.value = String(position);
        slider.setAttribute("aria-valuetext", typeof value === "number" ? `${value} units` : "");
      };
      row.set = (value) => { number.value = value === null || value === undefined ? "" : String(value); syncSlider(value); };
      slider.addEventListener("input", () => {
        const value = map.fromSlider(slider.value);
        number.value = String(value);
        slider.setAttribute("aria-valuetext", `${value} units`);
        edited(spec.name);
      });
      number.addEventListener("input", () => {
        const value = readBox(number);
        if (typeof value === "number") syncSlider(value);
        edited(spec.name);
      });
      number.addEventListener("change", () => committed(spec.name));
      row.remove.addEventListener("click", () => {
        const index = rows.indexOf(row);
        if (index === -1 || rows.length <= map.minItems) return;
        rows.splice(index, 1);
        row.node.remove();
        renumber();
        (rows[Math.max(0, index - 1)] || {}).number?.focus();
        edited(spec.name);
      });
      row.set(size);
      return row;
    }

    function addRow(size) {
      const row = makeRow(size);
      rows.push(row);
      rowsBox.append(row.node);
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
        row.remove.disabled = rows.length <= map.minItems;
      });
      addButton.disabled = rows.length >= map.maxItems;
      s.container.querySelector(`#label-${spec.name}`).setAttribute("for", rows.length ? rows[0].number.id : "");
    }

    addButton.addEventListener("click", () => {
      if (rows.length >= map.maxItems) return;
      const row = addRow(map.nextSize(rows.length ? readBox(rows[rows.length - 1].number) : 128));
      renumber();
      row.number.focus();
      edited(spec.name);
    });

    const sizes = () => rows.map((row) => readBox(row.number));
    return {
      container: s.container,
      get: sizes,
      set(list) {
        const wanted = Array.isArray(list) ? list.slice(0, map.maxItems) : [list];
        while (rows.length > wanted.length) rows.pop().node.remove();
        wanted.forEach((size, index) => (rows[index] ? rows[index].set(size) : addRow(size)));
        renumber();
      },
      focus: () => rows[0] && rows[0].number.focus(),
      validate: () => F.checkLayers(spec, sizes()),
    };
  }

  // ------------------------------------------------------------------ the form

  function create(schema, options) {
    const opts = options || {};
    const allSpecs = Array.isArray(schema.fields) ? schema.fields : [];
    const specs = opts.fields ? allSpecs.filter((spec) => opts.fields.includes(spec.name)) : allSpecs;
    const names = specs.map((spec) => spec.name);
    const controls = {};
    const highlightTimers = new Map();
    const presets = schema.presets || {};

    function values() {
      const config = {};
      for (const [name, control] of Object.entries(controls)) {
        const value = control.get();
        config[name] = Array.isArray(value) ? value.map((v) => (v === "invalid" ? "not a number" : v))
          : (value === "invalid" ? "not a number" : value);
      }
      return config;
    }

    function changed() {
      const config = values();
      if (opts.presets) {
        for (const button of opts.presets.querySelectorAll("button[data-preset]")) {
          const match = F.presetMatches(config, presets[button.dataset.preset], names);
          button.setAttribute("aria-pressed", match ? "true" : "false");
        }
      }
      if (opts.onChange) opts.onChange(config);
    }

    function setFieldError(name, message) {
      const node = document.getElementById(`field-error-${name}`);
      const control = controls[name];
      if (!node || !control) return false;
      if (node.textContent !== (message || "")) node.textContent = message || "";
      for (const input of control.container.querySelectorAll("input, select")) {
        if (message) input.setAttribute("aria-invalid", "true");
        else input.removeAttribute("aria-invalid");
      }
      control.container.classList.toggle("has-error", Boolean(message));
      return true;
    }

    function edited(name) {
      controls[name].container.classList.remove("changed");
      if (document.getElementById(`field-error-${name}`)?.textContent) setFieldError(name, "");
      changed();
    }

    function committed(name) {
      setFieldError(name, controls[name].validate());
    }

    function clearChanged() {
      for (const control of Object.values(controls)) control.container.classList.remove("changed", "highlight");
      for (const timer of highlightTimers.values()) window.clearTimeout(timer);
      highlightTimers.clear();
    }

    function clearErrors() {
      for (const name of names) setFieldError(name, "");
    }

    function set(config) {
      for (const [name, value] of Object.entries(config || {})) if (controls[name]) controls[name].set(value);
      changed();
    }

    const form = {
      names,
      has: (name) => Boolean(controls[name]),
      values,
      set,
      focus: (name) => controls[name] && controls[name].focus(),
      setFieldError,
      clearErrors,
      clearChanged,
      // Shows a 400 answer's config errors next to their fields (focusing the first): the rest as text.
      showErrors(errors) {
        const split = F.splitFieldErrors(errors, (name) => Boolean(controls[name]), names);
        for (const [name, text] of Object.entries(split.fields)) setFieldError(name, text);
        if (split.first) controls[split.first].focus();
        return split;
      },
      markChanged(name) {
        const control = controls[name];
        if (!control) return;
        const node = control.container;
        node.classList.remove("highlight");
        void node.offsetWidth;  // restart the flash animation
        node.classList.add("changed", "highlight");
        window.clearTimeout(highlightTimers.get(name));
        highlightTimers.set(name, window.setTimeout(() => {
          node.classList.remove("highlight");
          highlightTimers.delete(name);
        }, HIGHLIGHT_MS));
      },
      applyPreset(name) {
        if (!presets[name]) return;
        clearChanged();
        clearErrors();
        set(presets[name]);
      },
      reset() {
        clearChanged();
        clearErrors();
        set(schema.defaults || {});
      },
    };

    const groups = new Map();
    for (const spec of specs) {
      const group = spec.group || "other";
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(spec);
    }
    const fragment = document.createDocumentFragment();
    for (const [group, members] of groups) {
      const fieldset = el("fieldset", { class: "param-group", dataset: { group } }, [
        el("legend", { text: F.GROUP_TITLES[group] || group.replace(/_/g, " ") }),
      ]);
      for (const spec of members) {
        const make = spec.type === "choice" ? choiceControl : spec.type === "int_list" ? layersControl : numericControl;
        controls[spec.name] = make(spec, edited, committed);
        fieldset.append(controls[spec.name].container);
      }
      fragment.append(fieldset);
    }
    opts.container.replaceChildren(fragment);
    opts.container.removeAttribute("aria-busy");

    if (opts.presets) {
      for (const name of Object.keys(presets)) {
        const button = el("button", {
          type: "button", class: "secondary-button preset-button", dataset: { preset: name },
          "aria-pressed": "false", text: F.PRESET_TITLES[name] || name.replace(/_/g, " "),
        });
        button.addEventListener("click", () => form.applyPreset(name));
        opts.presets.insertBefore(button, opts.reset || null);
      }
    }
    if (opts.reset) {
      opts.reset.addEventListener("click", form.reset);
      opts.reset.disabled = false;
    }
    // Enter in a number box commits the value instead of submitting the surrounding form.
    opts.container.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target instanceof HTMLInputElement) {
        event.preventDefault();
        event.target.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });
    const defaults = schema.defaults || {};
    set(Object.fromEntries(specs.map((spec) => [spec.name, spec.name in defaults ? defaults[spec.name] : spec.default])));
    return form;
  }

  window.TunerConfigForm = { create };
})();
