// "Find the fix" on the run page (frontend/templates/frontend/partials/run_fix.html): the button,
// then the candidates of the run's fix sweep with their live status and measured gain, the winner
// highlighted, "Open winner" and Apply & Run of the verified card.
//
// Pure part (window.TunerFixPanel, and module.exports for node --test):
//   canFindFix(run)            a finished run that trained, with advice that changes something
//   fixState(fixes)            the newest fix sweep of GET .../fixes/ as what the panel shows:
//                              {sweep, active, rows: [{number, title, changes, status, trial,
//                              valText, gainText, gainLevel, winner}], verdict, winnerTrial,
//                              recommendation, summary}
//   gainText(points)           "+4.2 pts", "−1.0 pts", "–"
//   POLL_MS                    how often the fixes are re-read while the sweep is active
// The page part (below) reads the data-* URLs of #fix-panel; it listens to the run's websocket for
// its `recommendations` event (the verdict arrives) and polls the fixes while the sweep runs.
(function (root) {
  "use strict";

  const POLL_MS = 3000;
  const INFO_KINDS = new Set(["performance", "history", "success", "verified_none", "verified_fix"]);
  const FINISHED = new Set(["succeeded", "diverged", "cancelled"]);
  const ACTIVE_SWEEP = new Set(["queued", "running"]);

  function canFindFix(run) {
    if (!run || !FINISHED.has(run.status) || !(run.epochs_done >= 1)) return false;
    return (run.recommendations || []).some((rec) => rec && !INFO_KINDS.has(rec.kind)
      && rec.changes && Object.keys(rec.changes).length > 0);
  }

  function gainText(points) {
    if (typeof points !== "number" || !isFinite(points)) return "–";
    const shown = Math.abs(points) < 0.05 ? 0 : points;
    return `${shown > 0 ? "+" : shown < 0 ? "−" : "±"}${Math.abs(shown).toFixed(1)} pts`;
  }

  function pct(value) {
    return typeof value === "number" && isFinite(value) ? `${(value * 100).toFixed(1)} %` : "–";
  }

  function statusText(row) {
    if (row.status === "running" && row.epochs) return `running ${row.epochs_done || 0}/${row.epochs}`;
    return row.status || "waiting";
  }

  function fixState(fixes) {
    const list = Array.isArray(fixes) ? fixes.filter((f) => f && typeof f === "object") : [];
    if (!list.length) return { sweep: null, active: false, rows: [], verdict: null, winnerTrial: null, recommendation: null, summary: "" };
    const sweep = list.reduce((a, b) => ((b.id || 0) > (a.id || 0) ? b : a));
    const active = ACTIVE_SWEEP.has(sweep.status);
    const winner = typeof sweep.winner === "number" ? sweep.winner : null;
    const candidates = Array.isArray(sweep.candidates) ? sweep.candidates : [];
    const rows = candidates.map((c, i) => ({
      number: c.number || i + 1,
      title: c.title || c.kind || `candidate ${i + 1}`,
      kind: c.kind || "",
      changes: c.changes || {},
      status: c.status || "waiting",
      statusText: statusText(c),
      trial: c.trial || null,
      valText: pct(c.best_val_accuracy),
      gainText: gainText(c.gain_points),
      gainLevel: typeof c.gain_points !== "number" ? "none" : c.gain_points > 0 ? "up" : c.gain_points < 0 ? "down" : "flat",
      winner: i === winner,
    }));
    const done = rows.filter((r) => !["waiting", "queued", "running"].includes(r.status)).length;
    let verdict = null;
    const result = sweep.fix_result;
    if (result) {
      if (winner !== null && rows[winner]) {
        const best = candidates[winner];
        verdict = { kind: "verified_fix", text: `Verified: ${rows[winner].title} — ${gainText(best.gain_points)} over this run's ${pct(sweep.parent_best_val_accuracy)} (measured on its seed and data).` };
      } else if (sweep.status === "cancelled") {
        verdict = { kind: "cancelled", text: "The fix sweep was cancelled before every candidate was measured." };
      } else {
        verdict = { kind: "verified_none", text: `Tried ${result.measured || 0} change${result.measured === 1 ? "" : "s"}; none beat this run's ${pct(sweep.parent_best_val_accuracy)}.` };
      }
    }
    const summary = active ? `${done}/${rows.length} candidates measured` : (result ? `${done}/${rows.length} measured` : sweep.status);
    return {
      sweep, active, rows, verdict, summary,
      winnerTrial: winner !== null && rows[winner] ? rows[winner].trial : null,
      recommendation: sweep.recommendation || null,
    };
  }

  const api = { canFindFix, fixState, gainText, POLL_MS };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  if (root) root.TunerFixPanel = api;

  // ------------------------------------------------------------------ the page
  if (typeof document === "undefined" || !root || !root.Tuner) return;
  const panel = document.getElementById("fix-panel");
  if (!panel) return;
  const { api: http, el, errorText, LiveSocket, urls: pages } = root.Tuner;
  const runId = Number(panel.dataset.experimentId);
  const $ = (id) => document.getElementById(id);
  const dom = {
    button: $("find-fix"), error: $("fix-error"), verdict: $("fix-verdict"), summary: $("fix-summary"),
    table: $("fix-candidates"), body: $("fix-candidates-body"), openWinner: $("fix-open-winner"),
    apply: $("fix-apply"), sweepLink: $("fix-sweep-link"), intro: $("fix-intro"),
  };
  let run = null;
  let state = fixState([]);
  let pollTimer = null;
  let socket = null;

  function render() {
    const eligible = canFindFix(run);
    panel.hidden = !(eligible || state.sweep);
    panel.dataset.state = state.sweep ? (state.active ? "active" : "done") : (eligible ? "ready" : "none");
    dom.button.hidden = !eligible || state.active;
    dom.button.textContent = state.sweep && !state.active ? "Find the fix again" : "Find the fix";
    dom.summary.textContent = state.summary;
    dom.table.hidden = !state.rows.length;
    dom.body.replaceChildren(...state.rows.map((row) => el("tr", {
      class: `fix-row${row.winner ? " fix-winner" : ""}`,
      dataset: { number: String(row.number), status: row.status, gain: row.gainLevel },
    }, [
      el("td", { text: String(row.number) }),
      el("td", { class: "fix-title" }, [row.trial ? el("a", { href: pages.runPage(row.trial), text: row.title }) : row.title,
        row.winner ? el("span", { class: "badge badge-high fix-winner-badge", text: "winner" }) : null]),
      el("td", { class: `fix-status status status-${row.status}`, text: row.statusText }),
      el("td", { class: "fix-val", text: row.valText }),
      el("td", { class: `fix-gain gain-${row.gainLevel}`, text: row.gainText }),
    ])));
    dom.verdict.textContent = state.verdict ? state.verdict.text : (state.active ? "Training the candidates on this run's seed and data…" : "");
    dom.verdict.dataset.kind = state.verdict ? state.verdict.kind : "";
    dom.openWinner.hidden = !state.winnerTrial;
    if (state.winnerTrial) dom.openWinner.href = pages.runPage(state.winnerTrial);
    dom.apply.hidden = !(state.verdict && state.verdict.kind === "verified_fix" && state.recommendation);
    dom.sweepLink.hidden = !state.sweep;
    if (state.sweep) dom.sweepLink.href = pages.sweepPage(state.sweep.id);
    if (state.active) startFollowing(); else stopPolling();
  }

  async function loadFixes() {
    try {
      state = fixState(await http.get(panel.dataset.fixesUrl));
      render();
    } catch (err) { /* the next poll tries again */ }
  }

  async function loadRun() {
    try {
      run = await http.get(pages.to("api:experiment-detail", runId));
      render();
    } catch (err) { /* run_detail.js reports load errors */ }
  }

  function startFollowing() {
    if (pollTimer === null) pollTimer = root.setInterval(loadFixes, POLL_MS);
    openSocket();
  }

  // The run's websocket: its end (the button may appear) and its `recommendations` (the verdict).
  function openSocket() {
    if (socket !== null) return;
    socket = new LiveSocket(`experiments/${runId}/`, {
      open: () => {}, down: () => {}, refused: () => {},
      message: (event) => {
        if (event.type === "finished") { loadRun(); return; }
        if (event.type !== "recommendations") return;
        if (run) run = { ...run, recommendations: event.recommendations };
        if (state.sweep) { renderCards(event.recommendations); loadFixes(); } else render();
      },
    });
  }

  function stopPolling() {
    if (pollTimer !== null) root.clearInterval(pollTimer);
    pollTimer = null;
  }

  // The verdict arrives as a `recommendations` event: redraw the cards with it (run_detail.js only
  // follows runs that are still training).
  function renderCards(recommendations) {
    const container = $("recommendations");
    if (!container || !root.TunerRecommendations || !Array.isArray(recommendations)) return;
    root.TunerRecommendations.renderRecommendations(container, recommendations, {
      baseConfig: run && run.config,
      onQuickApply: (changes) => { root.location.href = pages.tuner({ ...((run && run.config) || {}), ...changes }); },
      onApplyRun: applyAndRun,
    });
  }

  async function applyAndRun(rec) {
    dom.error.textContent = "";
    try {
      const child = await http.post(pages.to("api:recommendation-apply", rec.id));
      root.location.href = pages.runPage(child.id);
    } catch (err) {
      dom.error.textContent = `Apply & Run failed: ${errorText(err)}`;
      throw err;
    }
  }

  dom.button.addEventListener("click", async () => {
    dom.error.textContent = "";
    dom.button.disabled = true;
    dom.button.setAttribute("aria-busy", "true");
    try {
      const sweep = await http.post(panel.dataset.findUrl, {});
      state = fixState([sweep]);
      render();
    } catch (err) {
      dom.error.textContent = `Find the fix failed: ${errorText(err)}`;
    } finally {
      dom.button.disabled = false;
      dom.button.removeAttribute("aria-busy");
    }
  });
  dom.apply.addEventListener("click", () => {
    if (state.recommendation) applyAndRun({ id: state.recommendation }).catch(() => {});
  });

  loadRun().then(() => {
    if (run && ["queued", "running"].includes(run.status)) openSocket();  // the button appears when it ends
    return loadFixes();
  });
  root.addEventListener("pagehide", () => { stopPolling(); if (socket) socket.close(); });
})(typeof window !== "undefined" ? window : null);
