// The admin (issue 25): name the credential autocomplete's combobox after its label (select2 leaves it unnamed),
// name each tabular inline's "Delete?" checkbox, and let keyboard users reach an inline that scrolls sideways.
(function () {
  function nameBoxes() {
    document.querySelectorAll("select.admin-autocomplete").forEach(function (select) {
      var label = document.querySelector('label[for="' + select.id + '"]');
      var box = select.parentElement.querySelector('.select2-selection[role="combobox"]');
      if (!label || !box) return;
      var name = label.textContent.replace(/:\s*$/, "").trim();
      if (!box.hasAttribute("aria-label")) box.setAttribute("aria-label", name);
      var shown = box.querySelector('[role="textbox"]');
      if (shown && !shown.hasAttribute("aria-label")) shown.setAttribute("aria-label", name + ", chosen");
    });
    document.querySelectorAll('.tabular td.delete input[type="checkbox"]').forEach(function (box, index) {
      if ((!box.labels || !box.labels.length) && !box.hasAttribute("aria-label")) box.setAttribute("aria-label", "Delete row " + (index + 1));
    });
  }
  function markScrollers() {
    document.querySelectorAll(".inline-group, .inline-group .tabular fieldset.module").forEach(function (box) {
      if (box.scrollWidth <= box.clientWidth || box.hasAttribute("tabindex")) return;
      var heading = box.querySelector("h2");
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", (heading ? heading.textContent.trim() + ", " : "") + "scrolls sideways");
    });
  }
  // select2 draws its box when jQuery is ready, which may come after this script: name what is there, and what
  // appears (an added inline row, a late select2) as it appears.
  function all() { nameBoxes(); markScrollers(); }
  document.addEventListener("DOMContentLoaded", function () {
    all();
    new MutationObserver(nameBoxes).observe(document.body, {childList: true, subtree: true});
  });
  window.addEventListener("load", all);
  window.addEventListener("resize", markScrollers);
})();
