// The overview refreshes its tables without reloading the page (the page works
// without this script: reload it by hand).
(function () {
  "use strict";
  var box = document.getElementById("overview");
  if (!box) { return; }
  var every = parseInt(box.getAttribute("data-refresh"), 10) || 2000;
  var src = box.getAttribute("data-src");
  function refresh() {
    fetch(src, { credentials: "same-origin", redirect: "manual" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } })
      .catch(function () { /* the next round tries again */ })
      .finally(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
