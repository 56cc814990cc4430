// The node list: "select all" ticks every row of the page, the count says how many are ticked, and the page size
// applies on change. Without JavaScript the row boxes and the Filter button still work.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  var count = document.getElementById("selected-count");
  function boxes() { return document.querySelectorAll('input[type=checkbox][name=node][form=bulk]'); }
  function update() {
    var ticked = 0;
    boxes().forEach(function (b) { if (b.checked) { ticked += 1; } });
    if (count) { count.textContent = ticked ? ticked + " selected:" : "Tick nodes to act on them:"; }
  }
  if (all) {
    all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      update();
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "node") { update(); }
  });
  var size = document.getElementById("per-page");
  if (size && size.form) {
    size.addEventListener("change", function () { size.form.submit(); });
  }
})();
