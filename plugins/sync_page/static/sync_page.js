// Charts of the run history, drawn by plotly.js (served by this plugin) from ./api/chart.
(function () {
  "use strict";
  // How to draw the changes per run so that a handful stays readable beside one big run
  // (a first run making 400 changes, then a few a day): a linear axis, unless the biggest
  // run is at least 50 changes and more than 10 times the median of the runs that changed
  // anything; then a log axis (bars side by side: stacking does not add up on a log axis),
  // with the biggest run labelled. Exposed as SyncPageChart.scale for tests/sync_page.
  function chartScale(totals) {
    var positive = totals.filter(function (v) { return v > 0; }).sort(function (a, b) { return a - b; });
    if (positive.length === 0) { return { type: "linear" }; }
    var max = positive[positive.length - 1];
    var median = positive[Math.floor((positive.length - 1) / 2)];
    if (max >= 50 && max > 10 * median) {
      return { type: "log", outlier: totals.indexOf(max), max: max, median: median };
    }
    return { type: "linear" };
  }
  (typeof window !== "undefined" ? window : globalThis).SyncPageChart = { scale: chartScale };
  if (typeof document === "undefined") { return; }
  var root = document.body.dataset.root || "./";
  var changes = document.getElementById("changes-chart");
  var rejects = document.getElementById("rejects-chart");
  if (!changes || !rejects || typeof Plotly === "undefined") { return; }
  var days = changes.dataset.days || "365";
  var layout = function (yTitle) {
    return {
      margin: { l: 50, r: 10, t: 10, b: 40 },
      barmode: "stack",
      legend: { orientation: "h", y: -0.25 },
      xaxis: { type: "date" },
      yaxis: { title: { text: yTitle }, rangemode: "tozero" }
    };
  };
  var config = { displaylogo: false, responsive: true };
  fetch(root + "api/chart?days=" + encodeURIComponent(days), { credentials: "same-origin" })
    .then(function (answer) {
      if (!answer.ok) { throw new Error("chart data: HTTP " + answer.status); }
      return answer.json();
    })
    .then(function (data) {
      var points = data.points || [];
      var x = points.map(function (p) { return p.started_at; });
      var text = points.map(function (p) { return p.run_id + " (" + p.type + ", " + p.outcome + ")"; });
      var series = function (key, name, kind) {
        return {
          x: x, y: points.map(function (p) { return p[key]; }), name: name, text: text,
          type: kind, textposition: "none",
          hovertemplate: "%{text}<br>" + name + ": %{y}<extra></extra>"
        };
      };
      var totals = points.map(function (p) { return p.picsweb_changes + p.onefile_changes; });
      var scale = chartScale(totals);
      var changesLayout = layout("changes");
      if (scale.type === "log") {
        changesLayout.barmode = "group";
        changesLayout.yaxis = { title: { text: "changes (log scale)" }, type: "log" };
        var big = points[scale.outlier];
        changesLayout.annotations = [{
          x: big.started_at, y: Math.log10(scale.max), text: scale.max + " changes: " + big.run_id,
          showarrow: true, arrowhead: 2, ax: 40, ay: -20, font: { size: 11 }
        }];
      }
      changes.dataset.scale = scale.type;
      Plotly.newPlot(changes, [
        series("picsweb_changes", "PICSWeb changes", "bar"),
        series("onefile_changes", "OneFile changes", "bar")
      ], changesLayout, config);
      var rejectLayout = layout("rows");
      rejectLayout.barmode = "group";
      Plotly.newPlot(rejects, [
        series("rejects", "Rejects", "bar"),
        series("conflicts", "Conflicts", "bar")
      ], rejectLayout, config);
      changes.dataset.drawn = String(points.length);
    })
    .catch(function (error) {
      changes.textContent = "The chart could not be drawn: " + error.message;
    });
})();
