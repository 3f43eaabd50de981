// hookwatch dashboard: small glue around htmx. The page works without it (plain links and forms).
(function () {
  "use strict";
  var controls = function () { return document.getElementById("controls"); };

  // Do not refresh the parts while someone is typing an acknowledgement or a silence reason.
  function busy() {
    var alerts = document.getElementById("alerts");
    if (!alerts) return false;
    if (alerts.contains(document.activeElement) && document.activeElement.tagName !== "BUTTON") return true;
    if (alerts.querySelector("details.silence[open]")) return true;
    var typed = alerts.querySelectorAll("input[name=comment]");
    for (var i = 0; i < typed.length; i++) if (typed[i].value) return true;
    return false;
  }
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (e.detail.elt && e.detail.elt.id === "poll" && busy()) e.preventDefault();
  });

  // Changed parts only (dashboard/changes.py): the poll sends back the tags of the parts it
  // last received, and the server leaves out those that are the same. Any other answer that
  // swaps parts (a filter, an acknowledgement) carries no tags, so the next poll sends all.
  var held = "";
  document.addEventListener("htmx:configRequest", function (e) {
    if (e.detail.elt && e.detail.elt.id === "poll" && held) e.detail.headers["X-Hookwatch-Parts"] = held;
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var xhr = e.detail.xhr;
    // An aborted or refused request swapped nothing: the page still holds what it held.
    if (!xhr || !e.detail.successful) return;
    held = xhr.getResponseHeader("X-Hookwatch-Parts") || "";
  });

  // Keep the address bar in step with the filter and sort, so a reload or a shared link keeps them.
  function syncUrl() {
    var form = controls();
    if (!form) return;
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { if (value) params.set(key, value); });
    var refresh = new URLSearchParams(location.search).get("refresh");
    if (refresh) params.set("refresh", refresh);
    var query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.elt === controls()) syncUrl();
  });
  document.addEventListener("change", function (e) {
    var form = controls();
    if (!form || !e.target || e.target === form || !form.contains(e.target)) return;
    if (e.target.name === "sort") form.elements.dir.value = "";
    form.elements.offset.value = "";  // a new filter or order starts at its first page
  }, true);
  document.addEventListener("input", function (e) {
    var form = controls();
    if (form && e.target && e.target.id === "q") form.elements.offset.value = "";
  }, true);

  // Column headers sort in place (their href works without JS).
  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("a[data-sort]");
    var form = controls();
    if (!link || !form || !window.htmx) return;
    e.preventDefault();
    var params = new URL(link.href).searchParams;
    form.elements.sort.value = params.get("sort") || "status";
    form.elements.dir.value = params.get("dir") || "";
    form.elements.offset.value = "";
    htmx.trigger(form, "change");
  });

  // "N more" and "previous" page in place too (their href works without JS).
  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("a[data-offset]");
    var form = controls();
    if (!link || !form || !window.htmx) return;
    e.preventDefault();
    form.elements.offset.value = link.getAttribute("data-offset") === "0" ? "" : link.getAttribute("data-offset");
    htmx.trigger(form, "change");
  });

  // Remember who acknowledges, so the name is filled in next time.
  function fillNames(root) {
    var name = "";
    try { name = localStorage.getItem("hookwatch.by") || ""; } catch (err) { return; }
    (root.querySelectorAll ? root : document).querySelectorAll("input[data-remember=by]").forEach(function (input) {
      if (!input.value) input.value = name;
    });
  }
  document.addEventListener("submit", function (e) {
    var by = e.target.querySelector && e.target.querySelector("input[data-remember=by]");
    if (by && by.value) { try { localStorage.setItem("hookwatch.by", by.value); } catch (err) { /* private mode */ } }
  }, true);
  // A refused change (an expired form, a read-only token) answers JSON {"error", "detail"}
  // with a 4xx, which htmx does not swap: say why in the flash line.
  document.addEventListener("htmx:responseError", function (e) {
    var flash = document.getElementById("flash");
    if (!flash) return;
    var detail = "The request was refused (HTTP " + e.detail.xhr.status + ").";
    try { detail = JSON.parse(e.detail.xhr.responseText).detail || detail; } catch (err) { /* not JSON */ }
    flash.className = "flash bad";
    flash.textContent = detail;
  });
  document.addEventListener("htmx:load", function (e) { fillNames(e.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { fillNames(document); });
})();
