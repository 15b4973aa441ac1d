// Enhancements only: every page reads fully without this file (SPEC §28.1). No inline code anywhere (CSP).
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
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 30000);
    var selects = document.querySelectorAll("select[data-autosubmit]");
    for (var i = 0; i < selects.length; i++) {
      selects[i].addEventListener("change", function (e) { e.target.form.submit(); });
    }
  });
})();
