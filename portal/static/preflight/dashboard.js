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
    // The page's own colours (preflight.css sets them for light and dark): Chart.js's defaults are dark grey text
    // and a dark green line, unreadable on the dark page.
    var style = getComputedStyle(document.documentElement);
    function colour(name, fallback) { return style.getPropertyValue(name).trim() || fallback; }
    var text = colour("--fg", "#1f2328"), grid = colour("--line", "#d0d7de");
    chart = new Chart(canvas, {
      type: "line",
      data: { labels: data.map(function (d) { return d.at; }),
              datasets: [{ label: "Ready nodes", data: data.map(function (d) { return d.ready; }),
                           borderColor: colour("--pass-text", "#1b7f3b"), backgroundColor: colour("--pass-text", "#1b7f3b") },
                         { label: "Nodes audited", data: data.map(function (d) { return d.total; }),
                           borderColor: colour("--muted", "#57606a"), backgroundColor: colour("--muted", "#57606a") }] },
      options: { animation: false, maintainAspectRatio: false, color: text,
                 plugins: { legend: { position: "right", labels: { color: text } } },
                 elements: { point: { radius: 2 } },
                 scales: { x: { ticks: { color: text }, grid: { color: grid } },
                           y: { beginAtZero: true, ticks: { precision: 0, color: text }, grid: { color: grid } } } }
    });
  }
  draw();
  // The operator's system switching between light and dark redraws it in the other colours.
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", draw);
  }
  // When an audit ends, htmx swaps in fresh cards, trend and recent audits: draw the new trend.
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "live-history") draw();
  });
})();
