// "Try the model" on the run page: draw on the pad (draw_pad.js) or load a test image, and show the
// class probabilities the server's copy of the network gives (POST api:experiment-predict).
// Needs common.js and draw_pad.js.
//
// API (window.TunerTryModel):
//   const panel = TunerTryModel.create({classNames() -> names, setClassNames(names),
//                                       enabled() -> has the run stored weights, unavailableText()})
//   panel.refresh()                          the run changed (enables the buttons once weights exist)
//   panel.predictTestImage(index, scroll?)   load test image #index and predict it
(function () {
  "use strict";
  const { api, el, errorText } = window.Tuner;
  const $ = (id) => document.getElementById(id);
  const PLACEHOLDER = "Class probabilities appear here.";

  function create(options) {
    const predictUrl = window.Tuner.urls.to("api:experiment-predict", Number($("run-detail").dataset.experimentId));
    const dom = {
      canvas: $("predict-canvas"), random: $("predict-random"), clear: $("predict-clear"), submit: $("predict-submit"),
      brush: $("predict-brush"), live: $("predict-live"), result: $("predict-result"), source: $("predict-source"),
      error: $("predict-error"), title: $("try-title"),
    };
    let source = null;    // {index, label} while the pad shows an unmodified test image
    let dirty = false;    // something drawn since the last prediction
    let predictSeq = 0;   // answers to older requests are dropped
    let liveTimer = null;
    let lastLive = 0;

    const pad = window.TunerDrawPad.create(dom.canvas, {
      brushRadius: () => parseFloat(dom.brush.value),
      onDraw() {
        source = null;
        dirty = true;
        dom.source.textContent = "Your drawing.";
        scheduleLive(false);
      },
      onStrokeEnd: () => scheduleLive(true),
      onClearKey: clearAll,
    });

    function refresh() {
      const on = options.enabled();
      for (const button of [dom.random, dom.submit]) {
        button.disabled = !on;
        button.title = on ? "" : options.unavailableText();
      }
      dom.live.disabled = !on;
      const placeholder = dom.result.querySelector(":scope > p.muted");
      if (placeholder && !dom.result.querySelector(".probability")) {
        placeholder.textContent = on ? PLACEHOLDER : options.unavailableText();
      }
    }

    function renderProbabilities(data) {
      const names = data.class_names || options.classNames();
      const probabilities = data.probabilities || [];
      const top = data.predicted;
      const label = data.label;
      const headline = el("p", { class: "predict-headline" }, [
        "Prediction: ", el("strong", { text: names[top] }), ` (${(probabilities[top] * 100).toFixed(1)}%)`,
        label === null || label === undefined ? null
          : el("span", { class: label === top ? "verdict correct" : "verdict wrong",
            text: label === top ? " ✓ correct" : ` ✗ true class: ${names[label]}` }),
      ]);
      const rows = probabilities.map((p, i) => el("div", {
        class: `probability${i === top ? " top" : ""}${i === label ? " truth" : ""}`, role: "listitem",
        dataset: { class: String(i), name: names[i], value: p.toFixed(6) },
      }, [
        el("span", { class: "probability-name", text: names[i] }),
        el("span", { class: "bar-track", "aria-hidden": "true" },
          [el("span", { class: "bar-fill", style: `width:${(p * 100).toFixed(1)}%` })]),
        el("span", { class: "probability-value", text: `${(p * 100).toFixed(1)}%` }),
      ]));
      dom.result.replaceChildren(headline, el("div", { class: "probability-list", role: "list" }, rows));
      dom.result.dataset.predicted = String(top);
    }

    async function request(body, fromTest) {
      const seq = ++predictSeq;
      dom.error.textContent = "";
      dom.result.setAttribute("aria-busy", "true");
      try {
        const data = await api.post(predictUrl, body);
        if (seq !== predictSeq) return;
        if (Array.isArray(data.class_names)) options.setClassNames(data.class_names);
        if (fromTest) {
          pad.show(data.pixels);
          source = { index: data.test_index, label: data.label };
          dom.source.textContent = `Test image #${data.test_index} · true class: ${options.classNames()[data.label]}`;
        }
        renderProbabilities(data);
      } catch (err) {
        if (seq === predictSeq) dom.error.textContent = `Prediction failed: ${errorText(err)}`;
      } finally {
        if (seq === predictSeq) dom.result.removeAttribute("aria-busy");
      }
    }

    function predictDrawing() {
      window.clearTimeout(liveTimer);
      dirty = false;
      lastLive = Date.now();
      return request(source ? { test_index: source.index } : { pixels: pad.pixels() }, false);
    }

    // While drawing: at most every 400 ms; at the end of a stroke: at once.
    function scheduleLive(now) {
      if (!dom.live.checked || !options.enabled()) return;
      window.clearTimeout(liveTimer);
      const wait = now ? 60 : Math.max(0, 400 - (Date.now() - lastLive));
      liveTimer = window.setTimeout(() => { if (dirty) predictDrawing(); }, wait);
    }

    function clearAll() {
      window.clearTimeout(liveTimer);
      predictSeq += 1;
      pad.clear();
      source = null;
      dirty = false;
      dom.source.textContent = "";
      dom.error.textContent = "";
      delete dom.result.dataset.predicted;
      dom.result.removeAttribute("aria-busy");
      dom.result.replaceChildren(el("p", { class: "muted", text: PLACEHOLDER }));
      refresh();
    }

    dom.clear.addEventListener("click", clearAll);
    dom.submit.addEventListener("click", () => predictDrawing());
    dom.random.addEventListener("click", () => request({ random: true }, true));
    dom.brush.addEventListener("change", pad.refreshCursor);
    refresh();

    return {
      refresh,
      predictTestImage(index, scroll) {
        if (scroll) {
          const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
          dom.title.scrollIntoView({ behavior: reduce ? "auto" : "smooth", block: "start" });
        }
        return request({ test_index: index }, true);
      },
    };
  }

  window.TunerTryModel = { create };
})();
