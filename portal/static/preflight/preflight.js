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
