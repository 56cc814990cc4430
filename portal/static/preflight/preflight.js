// Copy buttons (remediation commands, install commands, a new API token): the clipboard API, else the old copy
// command, else the text is selected for the person to copy. Everything else works without JavaScript.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.dataset.copy);
  var text = source.tagName === "INPUT" || source.tagName === "TEXTAREA" ? source.value : source.innerText;
  var label = button.textContent;
  var say = function (words) { button.textContent = words; setTimeout(function () { button.textContent = label; }, 2500); };
  var select = function () {
    if (typeof source.select === "function") { source.focus(); source.select(); }
    else { var range = document.createRange(); range.selectNodeContents(source);
           var selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range); }
    say("Selected: press Ctrl+C");
  };
  var legacy = function () {
    var area = document.createElement("textarea"); area.value = text; document.body.appendChild(area); area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    area.remove();
    if (copied) say("Copied"); else select();
  };
  if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(function () { say("Copied"); }, legacy); }
  else legacy();
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

// Jump to a node from any page: the `/` key (or the header's link) opens the box, typing lists the nodes whose
// name starts with it, Enter opens the first, Esc closes. Without JavaScript the link is a search page.
(function () {
  var dialog = document.getElementById("jump");
  if (!dialog || typeof dialog.showModal !== "function") return;
  var form = document.getElementById("jump-form");
  var input = document.getElementById("jump-q");
  var list = document.getElementById("jump-results");
  var endpoint = form.getAttribute("action");
  var cache = {};
  var timer = null;

  function open() {
    if (!dialog.open) dialog.showModal();
    input.focus();
    input.select();
  }
  function lookup(query) {
    query = query.trim();
    if (!query) return Promise.resolve([]);
    if (!cache[query]) {
      cache[query] = fetch(endpoint + "?format=json&q=" + encodeURIComponent(query), {headers: {Accept: "application/json"}})
        .then(function (response) { return response.ok ? response.json() : {nodes: []}; })
        .then(function (data) { return data.nodes || []; })
        .catch(function () { delete cache[query]; return []; });
    }
    return cache[query];
  }
  function show(nodes, query) {
    list.replaceChildren();
    if (!query.trim()) return;
    if (!nodes.length) {
      var none = document.createElement("li");
      none.className = "muted";
      none.textContent = "No node's name starts with “" + query.trim() + "”.";
      list.appendChild(none);
      return;
    }
    nodes.forEach(function (node) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = node.url;
      link.textContent = node.name;
      var where = document.createElement("span");
      where.className = "muted";
      where.textContent = " " + node.role + " in " + node.cluster;
      item.appendChild(link);
      item.appendChild(where);
      list.appendChild(item);
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    var target = event.target;
    if (target.isContentEditable || (target.closest && target.closest("input, textarea, select"))) return;
    event.preventDefault();
    open();
  });
  document.querySelectorAll(".jump-open").forEach(function (link) {
    link.addEventListener("click", function (event) { event.preventDefault(); open(); });
  });
  input.addEventListener("input", function () {
    clearTimeout(timer);
    var query = input.value;
    timer = setTimeout(function () { lookup(query).then(function (nodes) { if (input.value === query) show(nodes, query); }); }, 120);
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var query = input.value;
    lookup(query).then(function (nodes) {
      if (nodes.length) window.location.assign(nodes[0].url);
      else show(nodes, query);
    });
  });
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); dialog.close(); }
  });
  dialog.addEventListener("click", function (event) { if (event.target === dialog) dialog.close(); });
})();
