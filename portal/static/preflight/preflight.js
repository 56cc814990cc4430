// Copy buttons for remediation commands; everything else works without JavaScript.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var text = document.getElementById(button.dataset.copy).innerText;
  var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); }
  else { var area = document.createElement("textarea"); area.value = text; document.body.appendChild(area);
         area.select(); document.execCommand("copy"); area.remove(); done(); }
});

// The menu button of narrow screens: the menu is open by default without JavaScript.
document.addEventListener("click", function (event) {
  var button = event.target.closest(".menu-button");
  if (!button) return;
  var open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  document.getElementById(button.getAttribute("aria-controls")).classList.toggle("open", open);
});

// A table wider than the screen scrolls inside its box: let keyboard users reach and scroll that box too.
function markScrollBoxes(root) {
  (root || document).querySelectorAll(".scroll, .table-container").forEach(function (box) {
    if (box.scrollWidth <= box.clientWidth || box.hasAttribute("tabindex")) return;
    var heading = box.previousElementSibling;
    box.setAttribute("tabindex", "0");
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", (heading && /^H[1-6]$/.test(heading.tagName) ? heading.textContent.trim() + ", " : "") + "table, scrolls sideways");
  });
}
markScrollBoxes();
window.addEventListener("resize", function () { markScrollBoxes(); });
document.addEventListener("htmx:afterSettle", function (event) { markScrollBoxes(event.target); });

// On a phone, an unused filter form starts folded so the list is on the first screen.
document.querySelectorAll("details[data-collapse-narrow=yes]").forEach(function (box) {
  if (window.innerWidth < 700) box.open = false;
});
