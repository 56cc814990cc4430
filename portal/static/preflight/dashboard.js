// The dashboard's trend chart (Chart.js), drawn from the json_script "trend-data"; a file of its own so the
// Content-Security-Policy needs no inline script.
(function () {
  var chart = null;
  function draw() {
    var source = document.getElementById("trend-data"), canvas = document.getElementById("trend");
    if (!window.Chart || !source || !canvas) return;
    var data = JSON.parse(source.textContent);
    if (chart) { chart.destroy(); chart = null; }
    if (!data.length) return;
    chart = new Chart(canvas, {
      type: "line",
      data: { labels: data.map(function (d) { return d.at; }),
              datasets: [{ label: "Ready nodes", data: data.map(function (d) { return d.ready; }), borderColor: "#1b7f3b" },
                         { label: "Nodes audited", data: data.map(function (d) { return d.total; }), borderColor: "#57606a" }] },
      options: { animation: false, maintainAspectRatio: false, plugins: { legend: { position: "right" } },
                 elements: { point: { radius: 2 } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
  }
  draw();
  // When an audit ends, htmx swaps in fresh cards, trend and recent audits: draw the new trend.
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "live-history") draw();
  });
})();
