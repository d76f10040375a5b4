// The overview refreshes its tables without reloading the page (the page works
// without this script: reload it by hand).
//
// A refresh replaces the tables, their buttons with them: a button pressed when the
// new tables arrive would lose its click (pressed on the old button, released on the
// new one), so nothing is replaced while a button is held (the next round brings
// the news).
(function () {
  "use strict";
  var box = document.getElementById("overview");
  if (!box) { return; }
  var every = parseInt(box.getAttribute("data-refresh"), 10) || 2000;
  var src = box.getAttribute("data-src");
  var held = false;
  function release() { setTimeout(function () { held = false; }, 0); }
  box.addEventListener("pointerdown", function () { held = true; });
  document.addEventListener("pointerup", release);
  document.addEventListener("pointercancel", release);
  window.addEventListener("blur", release);
  function refresh() {
    fetch(src, { credentials: "same-origin", redirect: "manual" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && !held) { box.innerHTML = html; }
      })
      .catch(function () { /* the next round tries again */ })
      .finally(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
