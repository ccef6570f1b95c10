// The lead's overdue page: each task a deadline watcher escalates arrives as a
// `task-overdue` server-sent event (/api/overdue/events, from care.escalations) and is
// announced here; the table itself is the services' answer when the page was loaded.
(function () {
  "use strict";
  var box = document.getElementById("live");
  if (!box || !window.EventSource) { return; }
  var list = document.getElementById("live-list");
  var count = document.getElementById("live-count");
  var seen = 0;
  var source = new EventSource("/api/overdue/events");
  source.addEventListener("task-overdue", function (message) {
    var item;
    try { item = JSON.parse(message.data); } catch (e) { return; }
    seen += 1;
    count.textContent = String(seen);
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = "/tasks/" + encodeURIComponent(item.service) + "/" + encodeURIComponent(item.task_id);
    a.textContent = item.kind + " · " + item.case_id.slice(0, 13) + "… (" + item.priority + ")";
    li.appendChild(a);
    list.insertBefore(li, list.firstChild);
    box.hidden = false;
  });
})();
