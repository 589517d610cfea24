// Shared loss / accuracy charts (Chart.js 4 UMD, loaded before this file as window.Chart).
//
// API (window.TunerCharts):
//   const charts = TunerCharts.createMetricCharts(lossCanvas, accuracyCanvas, options?)
//     lossCanvas, accuracyCanvas: <canvas> elements, each inside a sized container
//       (e.g. `.chart-box`, position: relative; fixed height) - the charts are responsive.
//     options.animate (default false): animate full redraws.
//   charts.reset()              -> empty both charts (data-points = 0).
//   charts.setMetrics(list)     -> show exactly these epochs ([{epoch, train_loss, val_loss,
//                                  train_accuracy, val_accuracy, ...}], any order). When the charts
//                                  already hold a prefix of `list`, only the missing epochs are appended.
//   charts.addEpoch(metric)     -> append one epoch (or replace it if that epoch is already drawn:
//                                  idempotent, so snapshot + event overlap is harmless); redraws with
//                                  chart.update("none"), never a full re-render.
//   charts.count()              -> number of epochs drawn.
//   charts.destroy()            -> free the Chart.js instances.
// Each canvas keeps `canvas.dataset.points` = number of epochs drawn (the browser tests read it).
// Accuracies are fractions (0..1) in the data and drawn as percentages; non-finite values
// (a diverged run's loss) become gaps. Without Chart.js the object still tracks data-points.
(function () {
  "use strict";

  const COLORS = {
    train: "#00ff41",
    val: "#5cc8ff",
    grid: "rgba(15, 90, 38, 0.55)",
    tick: "#8fcf9f",
    text: "#c8ffd4",
  };

  function finite(value) {
    return typeof value === "number" && isFinite(value) ? value : null;
  }

  function chartConfig(kind) {
    const isAccuracy = kind === "accuracy";
    const dataset = (label, color, dashed) => ({
      label,
      data: [],
      borderColor: color,
      backgroundColor: color,
      borderWidth: 2,
      borderDash: dashed ? [6, 4] : [],
      pointRadius: 2.5,
      pointHoverRadius: 5,
      tension: 0.25,
      spanGaps: false,
    });
    const font = { family: '"Source Code Pro", ui-monospace, monospace', size: 11 };
    return {
      type: "line",
      data: {
        labels: [],
        datasets: [
          dataset(isAccuracy ? "train acc" : "train loss", COLORS.train, false),
          dataset(isAccuracy ? "val acc" : "val loss", COLORS.val, true),
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: {
            title: { display: true, text: "epoch", color: COLORS.tick, font },
            grid: { color: COLORS.grid },
            ticks: { color: COLORS.tick, font, maxTicksLimit: 12, autoSkip: true },
          },
          y: {
            title: { display: true, text: isAccuracy ? "accuracy %" : "loss", color: COLORS.tick, font },
            grid: { color: COLORS.grid },
            ticks: { color: COLORS.tick, font },
            min: isAccuracy ? undefined : 0,
            max: isAccuracy ? 100 : undefined,
            suggestedMin: isAccuracy ? 50 : undefined,
            suggestedMax: isAccuracy ? undefined : 1,
          },
        },
        plugins: {
          legend: { labels: { color: COLORS.text, font, boxWidth: 18, boxHeight: 2 } },
          tooltip: {
            titleFont: font,
            bodyFont: font,
            callbacks: {
              title: (items) => (items.length ? `epoch ${items[0].label}` : ""),
              label: (item) => {
                const value = item.parsed.y;
                if (value === null || value === undefined) return `${item.dataset.label}: –`;
                return isAccuracy ? `${item.dataset.label}: ${value.toFixed(2)}%`
                  : `${item.dataset.label}: ${value.toPrecision(4)}`;
              },
            },
          },
        },
      },
    };
  }

  function pointsOf(kind, metric) {
    if (kind === "accuracy") {
      const train = finite(metric.train_accuracy);
      const val = finite(metric.val_accuracy);
      return [train === null ? null : train * 100, val === null ? null : val * 100];
    }
    return [finite(metric.train_loss), finite(metric.val_loss)];
  }

  function createMetricCharts(lossCanvas, accuracyCanvas, options) {
    const opts = options || {};
    const ChartJS = window.Chart;
    const panes = [
      { kind: "loss", canvas: lossCanvas },
      { kind: "accuracy", canvas: accuracyCanvas },
    ].filter((pane) => pane.canvas);
    for (const pane of panes) {
      pane.chart = null;
      if (ChartJS) {
        const existing = ChartJS.getChart ? ChartJS.getChart(pane.canvas) : null;
        if (existing) existing.destroy();
        pane.chart = new ChartJS(pane.canvas, chartConfig(pane.kind));
      }
    }
    let epochs = [];  // epoch numbers drawn, ascending

    function mark() {
      for (const pane of panes) pane.canvas.dataset.points = String(epochs.length);
    }

    function redraw(mode) {
      for (const pane of panes) if (pane.chart) pane.chart.update(mode);
    }

    function writePoint(index, metric, insert) {
      for (const pane of panes) {
        if (!pane.chart) continue;
        const [train, val] = pointsOf(pane.kind, metric);
        const data = pane.chart.data;
        if (insert) {
          data.labels.splice(index, 0, metric.epoch);
          data.datasets[0].data.splice(index, 0, train);
          data.datasets[1].data.splice(index, 0, val);
        } else {
          data.labels[index] = metric.epoch;
          data.datasets[0].data[index] = train;
          data.datasets[1].data[index] = val;
        }
      }
    }

    // Put one epoch in place without redrawing; returns true when something changed.
    function place(metric) {
      if (!metric || typeof metric.epoch !== "number") return false;
      const existing = epochs.indexOf(metric.epoch);
      if (existing !== -1) {
        writePoint(existing, metric, false);
        return true;
      }
      let index = epochs.length;
      while (index > 0 && epochs[index - 1] > metric.epoch) index -= 1;
      epochs.splice(index, 0, metric.epoch);
      writePoint(index, metric, true);
      return true;
    }

    const api = {
      reset() {
        epochs = [];
        for (const pane of panes) {
          if (!pane.chart) continue;
          pane.chart.data.labels = [];
          pane.chart.data.datasets.forEach((dataset) => { dataset.data = []; });
        }
        redraw("none");
        mark();
      },
      setMetrics(list) {
        const sorted = (list || []).filter((m) => m && typeof m.epoch === "number")
          .slice().sort((a, b) => a.epoch - b.epoch);
        const isPrefix = epochs.length <= sorted.length && epochs.every((epoch, i) => sorted[i].epoch === epoch);
        if (!isPrefix) {
          epochs = [];
          for (const pane of panes) {
            if (!pane.chart) continue;
            pane.chart.data.labels = [];
            pane.chart.data.datasets.forEach((dataset) => { dataset.data = []; });
          }
        }
        // Rewrite every point (values of the last epoch can differ between a partial event and
        // the stored row), but only append what is new.
        sorted.forEach((metric) => place(metric));
        redraw(isPrefix || !opts.animate ? "none" : undefined);
        mark();
      },
      addEpoch(metric) {
        if (place(metric)) {
          redraw("none");
          mark();
        }
      },
      count: () => epochs.length,
      destroy() {
        for (const pane of panes) if (pane.chart) pane.chart.destroy();
      },
    };
    mark();
    return api;
  }

  window.TunerCharts = { createMetricCharts };
})();
