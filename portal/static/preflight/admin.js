// The admin (issue 25): name the credential autocomplete's combobox after its label (select2 leaves it unnamed),
// and let keyboard users reach an inline that scrolls sideways.
window.addEventListener("load", function () {
  document.querySelectorAll("select.admin-autocomplete").forEach(function (select) {
    var label = document.querySelector('label[for="' + select.id + '"]');
    var box = select.parentElement.querySelector('.select2-selection[role="combobox"]');
    if (!label || !box) return;
    var name = label.textContent.replace(/:\s*$/, "").trim();
    if (!box.hasAttribute("aria-label")) box.setAttribute("aria-label", name);
    var shown = box.querySelector('[role="textbox"]');
    if (shown && !shown.hasAttribute("aria-label")) shown.setAttribute("aria-label", name + ", chosen");
  });
  // A tabular inline's "Delete?" column: each row's checkbox is named for its row.
  document.querySelectorAll('.tabular td.delete input[type="checkbox"]').forEach(function (box, index) {
    if (!box.labels || !box.labels.length) box.setAttribute("aria-label", "Delete row " + (index + 1));
  });
  var mark = function () {
    document.querySelectorAll(".inline-group, .inline-group .tabular fieldset.module").forEach(function (box) {
      if (box.scrollWidth <= box.clientWidth || box.hasAttribute("tabindex")) return;
      var heading = box.querySelector("h2");
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", (heading ? heading.textContent.trim() + ", " : "") + "scrolls sideways");
    });
  };
  mark();
  window.addEventListener("resize", mark);
});
