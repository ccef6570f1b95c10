// Live refresh of the queue: server-sent events from /api/events say when the
// centre's queue changed; the rows are then fetched again, server-rendered.
// Without EventSource, or while it is down, the rows are polled instead.
(function () {
  "use strict";
  var table = document.querySelector("[data-live-queue]");
  if (!table) { return; }
  var body = table.querySelector("tbody");
  var statusLine = document.getElementById("live-status");
  var rowsUrl = table.getAttribute("data-rows");
  var POLL_MS = 10000;
  var pollTimer = null;
  var busy = false;
  var again = false;

  var mode = "";  // what the status line says while the rows are fresh
  var UNAVAILABLE = "서비스에 연결할 수 없습니다 A service is not available";

  function say(text) { if (statusLine) { statusLine.textContent = text; } }
  function setMode(text) { mode = text; say(text); }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(rowsUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
          return null;
        }
        // 503: a service the queue needs is down; keep the rows shown and say so.
        if (response.status === 503) { say(UNAVAILABLE); } else if (mode) { say(mode); }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          body.innerHTML = html;
          table.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* the next event or poll tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function startPolling() {
    if (pollTimer === null) {
      pollTimer = window.setInterval(refresh, POLL_MS);
      setMode("주기적 새로고침 Refreshing every 10 s");
    }
  }

  function stopPolling() {
    if (pollTimer !== null) { window.clearInterval(pollTimer); pollTimer = null; }
  }

  if ("EventSource" in window) {
    var events = new EventSource("/api/events");
    events.addEventListener("ready", function () {
      stopPolling();
      setMode("실시간 Live");
      refresh(); // anything that changed while connecting
    });
    events.addEventListener("queue-changed", refresh);
    events.onerror = function () { startPolling(); };
  } else {
    startPolling();
  }
  // Deadlines pass without any change in the data: redraw the overdue marks now and then.
  window.setInterval(refresh, 60000);
})();
