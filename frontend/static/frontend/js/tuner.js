// The tuner page `/`: the hyperparameter form (config_form.js), queueing a run, following it live
// (live_run.js draws it) and acting on its recommendations. The run followed is in the URL (?run=id);
// "Open in tuner" links bring a config as ?config=<JSON>.
// DOM ids/classes: frontend/DOM_CONTRACT.md.
(function () {
  "use strict";
  const { api, urls: pages, RunStream, errorText, el, runState: RS } = window.Tuner;
  const { networkSummary } = window.TunerConfigFields;

  const root = document.getElementById("tuner");
  if (!root) return;
  const urls = {
    schema: pages.to("api:config-schema"),
    experiments: pages.to("api:experiment-list"),
    cancel: (id) => pages.to("api:experiment-cancel", id),
    apply: (id) => pages.to("api:recommendation-apply", id),
  };

  const $ = (id) => document.getElementById(id);
  const dom = {
    form: $("config-form"), groups: $("param-groups"), schemaStatus: $("schema-status"), presets: $("presets"),
    reset: $("reset-config"), runName: $("run-name"), runButton: $("run-button"), formError: $("form-error"),
    networkSummary: $("network-summary"), currentRun: $("current-run"),
  };

  let form = null;         // the config form, once the schema is loaded
  let schema = null;
  let pendingConfig = null; // a followed run's config that arrived before the schema
  let stream = null;       // the RunStream of the run followed
  let restoreConfig = false;
  let followed = 0;        // counts follow() calls: events of a stream left behind are dropped

  const live = window.TunerLiveRun.create({
    onQuickApply: quickApply,
    onApplyRun: applyAndRun,
    labels: () => Object.fromEntries(((schema && schema.fields) || []).map((spec) => [spec.name, spec.label || spec.name])),
  });

  const announcer = el("p", { class: "apply-status", id: "apply-status", role: "status", "aria-live": "polite" });
  dom.networkSummary.after(announcer);
  let announceTimer = null;
  function announce(text) {
    announcer.textContent = text;
    window.clearTimeout(announceTimer);
    announceTimer = window.setTimeout(() => { announcer.textContent = ""; }, 8000);
  }

  // ------------------------------------------------------------------ the form

  function setConfig(config) {
    if (form) form.set(config);
    else pendingConfig = config;
  }

  async function loadSchema() {
    dom.schemaStatus.textContent = "Loading hyperparameters…";
    try {
      schema = await api.get(urls.schema);
    } catch (err) {
      const retry = el("button", { type: "button", class: "secondary-button", text: "Retry" });
      retry.addEventListener("click", () => {
        dom.groups.replaceChildren(dom.schemaStatus);
        loadSchema();
      });
      dom.schemaStatus.textContent = `Could not load the hyperparameters: ${errorText(err)} `;
      dom.schemaStatus.classList.add("form-error");
      dom.schemaStatus.append(retry);
      dom.formError.textContent = "The hyperparameter schema could not be loaded, so runs cannot be started yet.";
      return;
    }
    form = window.TunerConfigForm.create(schema, {
      container: dom.groups, presets: dom.presets, reset: dom.reset,
      onChange: (config) => { dom.networkSummary.textContent = networkSummary(config.hidden_layers); },
    });
    dom.reset.addEventListener("click", () => { dom.formError.textContent = ""; });
    dom.runButton.disabled = false;
    if (window.TunerAutotune) window.TunerAutotune.mount(form, schema);  // "Tune for me" (autotune.js)
    if (pendingConfig) form.set(pendingConfig);
    pendingConfig = null;
    loadConfigParam();
  }

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
      dom.formError.textContent = "The configuration in the link could not be read.";
      return;
    }
    form.set({ ...(schema.defaults || {}), ...config });
    announce("Loaded the configuration from the run page. Press INITIALIZE TRAINING SEQUENCE to run it.");
  }

  function showSubmitError(err) {
    const data = err && err.data;
    if (!(err instanceof api.ApiError && err.status === 400 && data && typeof data === "object")) {
      dom.formError.textContent = errorText(err);
      return;
    }
    const { first, leftovers } = form.showErrors(data.config);
    for (const [key, value] of Object.entries(data)) {
      if (key === "config") continue;
      leftovers.push(`${key === "name" ? "Run name" : key}: ${[].concat(value).join(" ")}`);
    }
    dom.formError.textContent = leftovers.length ? leftovers.join(" ")
      : first ? "Some hyperparameters are invalid: see the highlighted fields." : "";
  }

  async function submitRun(event) {
    event.preventDefault();
    if (!form || dom.runButton.getAttribute("aria-busy") === "true") return;
    form.clearErrors();
    dom.formError.textContent = "";
    dom.runButton.disabled = true;
    dom.runButton.setAttribute("aria-busy", "true");
    try {
      const stopOnDiagnosis = Boolean($("stop-on-diagnosis") && $("stop-on-diagnosis").checked);
      const run = await api.post(urls.experiments, { name: dom.runName.value.trim(), config: form.values(),
                                                     stop_on_diagnosis: stopOnDiagnosis });
      follow(run.id, { push: true, initial: run });
      revealLive();
    } catch (err) {
      showSubmitError(err);
    } finally {
      dom.runButton.disabled = false;
      dom.runButton.removeAttribute("aria-busy");
    }
  }

  // ------------------------------------------------------------------ recommendations

  function quickApply(changes, rec) {
    if (!form) return;
    form.clearChanged();
    const applied = Object.keys(changes || {}).filter((name) => form.has(name));
    form.set(Object.fromEntries(applied.map((name) => [name, changes[name]])));
    for (const name of applied) {
      form.setFieldError(name, "");
      form.markChanged(name);
    }
    dom.formError.textContent = "";
    live.recommendationsError("");
    if (applied.length) {
      const title = rec && rec.title ? `"${rec.title}"` : "the recommendation";
      announce(`Applied ${title} to ${applied.join(", ")}. Press INITIALIZE TRAINING SEQUENCE to run it.`);
    }
  }

  async function applyAndRun(rec) {
    live.recommendationsError("");
    try {
      const child = await api.post(urls.apply(rec.id));
      if (form && child.config) {
        form.clearChanged();
        form.set(child.config);
        for (const name of Object.keys(rec.changes || {})) form.markChanged(name);
      }
      announce(`Queued run #${child.id} with ${Object.keys(rec.changes || {}).join(", ")} changed.`);
      follow(child.id, { push: true, initial: child });
      revealLive();
    } catch (err) {
      live.recommendationsError(`Apply & Run failed: ${errorText(err)}`);
    }
  }

  // ------------------------------------------------------------------ the run followed

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
    if (stream) stream.close();
    live.show(id);
    live.setLink(pages.runPage(id));
    restoreConfig = Boolean(opts.restore);
    if (opts.push) window.history.pushState({ run: id }, "", runUrl(id));
    const token = ++followed;
    const mine = (fn) => (...args) => { if (token === followed) fn(...args); };
    stream = new RunStream(id, {
      initial: opts.initial,
      change: mine((run, prev) => {
        if (restoreConfig && run.config) {
          restoreConfig = false;
          setConfig(run.config);
        }
        live.render(run, prev);
      }),
      connection: mine(live.connection),
    });
  }

  function unfollow() {
    if (stream) stream.close();
    stream = null;
    followed += 1;
    live.show(null);
  }

  async function cancelRun() {
    if (!stream) return;
    const target = stream;
    live.setCancelling(true);
    live.error("");
    try {
      const run = await api.post(urls.cancel(target.id));
      if (target !== stream) return;
      const { metrics, recommendations, ...summary } = run;  // the stream has newer lists
      target.apply({ type: "status", ...summary });
      if (!RS.isActive(run.status)) live.setCancelling(false);
    } catch (err) {
      if (target !== stream) return;
      live.setCancelling(false);
      live.error(`Could not cancel run #${target.id}: ${errorText(err)}`);
    }
  }

  function runParam() {
    const raw = new URLSearchParams(window.location.search).get("run");
    return raw && /^\d+$/.test(raw) ? Number(raw) : null;
  }

  // ------------------------------------------------------------------ wiring

  dom.form.addEventListener("submit", submitRun);
  $("cancel-button").addEventListener("click", cancelRun);
  window.addEventListener("popstate", () => {
    const id = runParam();
    if (id === null) { if (stream) unfollow(); }
    else if (!stream || id !== stream.id) follow(id, { restore: true });
  });

  loadSchema();
  const initialRun = runParam();
  if (initialRun !== null) follow(initialRun, { restore: true });
})();
