// Charts of the run history, drawn by plotly.js (served by this plugin) from ./api/chart.
(function () {
  "use strict";
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
      Plotly.newPlot(changes, [
        series("picsweb_changes", "PICSWeb changes", "bar"),
        series("onefile_changes", "OneFile changes", "bar")
      ], layout("changes"), config);
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
