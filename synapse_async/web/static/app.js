// Enhancements only: every page reads fully without this file (SPEC §28.1). No inline code anywhere (CSP).
// Countdowns tick, the past-season picker submits itself, the leaderboard refreshes itself.
(function () {
  "use strict";
  function left(seconds) {
    if (seconds <= 0) return "ended";
    var d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    return Math.max(m, 1) + "m";
  }
  function tick() {
    var nodes = document.querySelectorAll("[data-countdown]");
    for (var i = 0; i < nodes.length; i++) {
      var end = Date.parse(nodes[i].getAttribute("data-countdown"));
      if (!isNaN(end)) nodes[i].textContent = left(Math.floor((end - Date.now()) / 1000));
    }
  }
  // Live refresh of a [data-live] region (the leaderboard): the same URL fetched again every 20 s while the tab is
  // visible and nothing inside has the keyboard focus; the new region replaces the old one. Without JS: reload.
  function refresh() {
    var region = document.querySelector("[data-live]");
    if (!region || document.hidden || region.contains(document.activeElement)) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-live]");
        if (fresh) { region.replaceWith(document.importNode(fresh, true)); tick(); }
      })
      .catch(function () { /* offline or restarting: keep what is shown */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    if (document.querySelector("[data-live]")) setInterval(refresh, 20000);
    setInterval(tick, 30000);
    var selects = document.querySelectorAll("select[data-autosubmit]");
    for (var i = 0; i < selects.length; i++) {
      selects[i].addEventListener("change", function (e) { e.target.form.submit(); });
    }
  });
})();
