// Loaded in <head> before the page is drawn: the style sheet's html.js rules (the folded menu) apply from the first
// paint. A file, not an inline script, so the Content-Security-Policy allows no inline script at all.
document.documentElement.className = "js";
