// Shared renderer of the recommendations panel and the performance summary (tuner and run pages).
// Needs common.js (window.Tuner) first.
//
// API (window.TunerRecommendations):
//   renderRecommendations(container, recommendations, options?)
//     recommendations: [{id, kind, priority, title, rationale, changes: {field: new value},
//                        confidence, applied_at?, outcome_delta?, improved?}, ...] in display order
//                       (the API / snapshot / "recommendations" event shape).
//     options.onQuickApply(changes, rec)  "Quick Apply" clicked (set the controls; no request).
//     options.onApplyRun(rec, button)     "Apply & Run" clicked; may return a Promise: the button
//                                         stays disabled (aria-busy) until it settles.
//     options.baseConfig   the run's config: the "old" side of "field: old → new".
//     options.labels       {field: human label} for the title attribute of each change.
//     options.emptyText    text shown when the list is empty.
//   Markup per item: article.recommendation[data-kind][data-id] with .badge.badge-<priority>,
//   .recommendation-title, .recommendation-rationale, ul.recommendation-changes (one
//   li.recommendation-change[data-field] "field: old → new" each), button.quick-apply and
//   button.apply-run (both disabled when the advice changes nothing), span.recommendation-lab (the
//   lab's measured help rate of this kind, from evidence.lab, when anyone applied it).
//   Re-rendering identical data is a no-op (nothing is rebuilt, focus is kept).
//
//   renderPerformanceSummary(container, category, summary)
//     category: "excellent" | "good" | "fair" | "poor" | "failed" | null;
//     summary: experiments.recommender analysis summary ({best_val_accuracy, best_epoch,
//     test_accuracy, epochs_run, epochs_to_95pct_best, convergence, generalization_gap (points),
//     final_train_accuracy, final_val_accuracy}); missing keys show "–". Sets
//     container.dataset.category.
//
//   formatValue(field, value) (= Tuner.fmt.fieldValue) / formatChange(field, old, new): the text used for changes.
(function () {
  "use strict";
  const { el, fmt } = window.Tuner;

  const formatValue = fmt.fieldValue;

  function formatChange(field, oldValue, newValue) {
    return `${field}: ${formatValue(field, oldValue)} → ${formatValue(field, newValue)}`;
  }

  function signature(recommendations, options) {
    try {
      return JSON.stringify([recommendations, options.baseConfig || null, options.emptyText || ""]);
    } catch (err) {
      return String(Math.random());
    }
  }

  function outcomeText(rec) {
    if (rec.improved === true || rec.improved === false) {
      const delta = typeof rec.outcome_delta === "number"
        ? ` (${rec.outcome_delta >= 0 ? "+" : ""}${(rec.outcome_delta * 100).toFixed(1)} pts)` : "";
      return rec.improved ? `applied · helped${delta}` : `applied · did not help${delta}`;
    }
    if (rec.applied_at) return "applied";
    return null;
  }

  // The lab's record of this kind of advice (evidence.lab: applied in this lab and measured).
  function labText(rec) {
    const lab = rec.evidence && typeof rec.evidence === "object" ? rec.evidence.lab : null;
    if (!lab || typeof lab.evaluated !== "number" || lab.evaluated < 1) return null;
    const rate = typeof lab.help_rate === "number" ? ` (${Math.round(lab.help_rate * 100)}%)` : "";
    return `in this lab: helped ${lab.helped} of ${lab.evaluated} applied${rate}${lab.used_for_ranking ? " · ranks it" : ""}`;
  }

  function renderOne(rec, options) {
    const changes = rec.changes && typeof rec.changes === "object" ? rec.changes : {};
    const fields = Object.keys(changes);
    const base = options.baseConfig || null;
    const labels = options.labels || {};
    const priority = String(rec.priority || "low");
    const titleId = `recommendation-${rec.id}-title`;

    const changeList = el("ul", { class: "recommendation-changes", "aria-label": "Changes" },
      fields.length
        ? fields.map((field) => el("li", {
          class: "recommendation-change", dataset: { field }, title: labels[field] || null,
        }, [el("code", { text: formatChange(field, base ? base[field] : undefined, changes[field]) })]))
        : [el("li", { class: "recommendation-change none muted", text: "no changes: information only" })]);

    const quick = el("button", {
      type: "button", class: "quick-apply secondary-button", disabled: !fields.length,
      "aria-describedby": titleId, text: "Quick Apply",
      title: fields.length ? "Set the controls to these values (no run is started)" : "Nothing to change",
    });
    const applyRun = el("button", {
      type: "button", class: "apply-run primary-button", disabled: !fields.length,
      "aria-describedby": titleId, text: "Apply & Run",
      title: fields.length ? "Queue a new run with these changes and follow it" : "Nothing to change",
    });
    quick.addEventListener("click", () => {
      if (options.onQuickApply) options.onQuickApply({ ...changes }, rec);
    });
    applyRun.addEventListener("click", () => {
      if (!options.onApplyRun || applyRun.disabled) return;
      const result = options.onApplyRun(rec, applyRun);
      if (result && typeof result.then === "function") {
        applyRun.disabled = true;
        applyRun.setAttribute("aria-busy", "true");
        const done = () => { applyRun.disabled = false; applyRun.removeAttribute("aria-busy"); };
        result.then(done, done);
      }
    });

    const confidence = typeof rec.confidence === "number"
      ? el("span", { class: "recommendation-confidence muted", text: `confidence ${Math.round(rec.confidence * 100)}%` })
      : null;
    const outcome = outcomeText(rec);
    const lab = labText(rec);
    return el("article", {
      class: `recommendation priority-${priority}`, dataset: { kind: rec.kind || "", id: String(rec.id) },
      "aria-labelledby": titleId,
    }, [
      el("header", { class: "recommendation-head" }, [
        el("span", { class: `badge badge-${priority}`, text: priority, title: `priority: ${priority}` }),
        el("h3", { class: "recommendation-title", id: titleId, text: rec.title || rec.kind || "Recommendation" }),
      ]),
      el("p", { class: "recommendation-rationale", text: rec.rationale || "" }),
      changeList,
      el("div", { class: "recommendation-actions" }, [
        quick, applyRun, confidence,
        outcome ? el("span", { class: "recommendation-outcome", text: outcome }) : null,
        lab ? el("span", { class: "recommendation-lab muted", text: lab,
          title: "Applied advice of this kind whose run finished, and how often it beat its parent (all users)" }) : null,
      ]),
    ]);
  }

  function renderRecommendations(container, recommendations, options) {
    if (!container) return;
    const opts = options || {};
    const list = Array.isArray(recommendations) ? recommendations : [];
    const sig = signature(list, opts);
    if (container.__tunerRecSignature === sig) return;
    container.__tunerRecSignature = sig;
    container.replaceChildren();
    if (!list.length) {
      container.append(el("p", { class: "muted recommendations-empty", text: opts.emptyText || "No recommendations." }));
      return;
    }
    container.append(...list.map((rec) => renderOne(rec, opts)));
  }

  const CATEGORY_TEXT = {
    excellent: "excellent", good: "good", fair: "fair", poor: "poor", failed: "failed",
  };

  function renderPerformanceSummary(container, category, summary) {
    if (!container) return;
    const s = summary && typeof summary === "object" ? summary : {};
    const num = (value) => (typeof value === "number" && isFinite(value) ? value : null);
    const best = num(s.best_val_accuracy);
    const bestEpoch = num(s.best_epoch);
    const test = num(s.test_accuracy);
    const to95 = num(s.epochs_to_95pct_best);
    const run = num(s.epochs_run);
    const gap = num(s.generalization_gap);
    const trainAcc = num(s.final_train_accuracy);
    const valAcc = num(s.final_val_accuracy);
    const rows = [
      ["Category", el("span", {
        class: `category category-${category || "unknown"}`,
        text: category ? (CATEGORY_TEXT[category] || category) : "–",
      })],
      ["Best val accuracy", `${fmt.pct(best)}${bestEpoch !== null ? ` (epoch ${bestEpoch})` : ""}`],
      ["Test accuracy", fmt.pct(test)],
      ["Epochs to 95% of best", to95 === null ? "–"
        : `${to95}${run !== null ? ` of ${run}` : ""}${s.convergence ? ` · ${s.convergence}` : ""}`],
      ["Generalisation gap", gap === null ? "–"
        : `${gap >= 0 ? "+" : ""}${gap.toFixed(1)} pts${trainAcc !== null && valAcc !== null
          ? ` (train ${fmt.pct(trainAcc)} / val ${fmt.pct(valAcc)})` : ""}`],
    ];
    container.dataset.category = category || "";
    const dl = el("dl", { class: "summary-list" });
    for (const [term, value] of rows) {
      dl.append(el("div", { class: "summary-item" }, [el("dt", { text: term }), el("dd", {}, [value])]));
    }
    container.replaceChildren(dl);
  }

  window.TunerRecommendations = { renderRecommendations, renderPerformanceSummary, formatValue, formatChange };
})();
