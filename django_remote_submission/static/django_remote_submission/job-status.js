// Live status of a user's jobs, for a table with data-drs-status (job-user-status/).
// Each status frame updates its job's row, or adds one at the top: id, title, status,
// where the job is, modified. Text goes in with textContent only: a job title is never
// HTML. With data-link="/logs/{id}/" on the table, each title links to that address, {id}
// replaced by the job's id. Each frame is also dispatched on its row as a "drs:status"
// event, which job-where.js (load it too) reads to keep the where line live.
(function () {
  "use strict";

  function watch(table) {
    if (table.dataset.drsWatching) {
      return; // the script was included twice on this page
    }
    table.dataset.drsWatching = "yes";
    var body = table.tBodies[0];

    function cell(row, index, text) {
      while (row.cells.length <= index) {
        row.insertCell(-1);
      }
      row.cells[index].textContent = text;
    }

    function update(frame) {
      var row = body.querySelector('tr[data-job="' + frame.job_id + '"]');
      if (!row) {
        row = body.insertRow(0);
        row.dataset.job = String(frame.job_id);
      }
      row.className = "drs-status drs-" + frame.status;
      cell(row, 0, String(frame.job_id));
      cell(row, 1, frame.title);
      if (table.dataset.link) {
        var link = document.createElement("a");
        link.href = table.dataset.link.replace("{id}", String(frame.job_id));
        link.textContent = frame.title;
        row.cells[1].replaceChildren(link);
      }
      // A canceled job keeps 2.x's status "failure", a pending one "submitted": their
      // states say more (as the shown_status filter).
      var shown = frame.state === "canceled" || frame.state === "pending";
      cell(row, 2, shown ? frame.state : frame.status);
      while (row.cells.length <= 3) {
        row.insertCell(-1);
      }
      if (!row.cells[3].querySelector("[data-drs-where]")) {
        var where = document.createElement("span");
        where.dataset.drsWhere = "";
        where.dataset.job = String(frame.job_id);
        row.cells[3].replaceChildren(where);
      }
      cell(row, 4, frame.modified ? new Date(frame.modified).toLocaleString() : "");
      row.dispatchEvent(new CustomEvent("drs:status", { detail: frame, bubbles: true }));
    }

    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + window.location.host + table.dataset.socket);
      socket.onmessage = function (message) {
        var frame = JSON.parse(message.data);
        if (frame.event === "status") {
          update(frame);
        }
      };
      socket.onclose = function (event) {
        if (event.code < 4400 || event.code >= 4500) {
          window.setTimeout(connect, 1000);
        }
      };
    }

    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-drs-status]").forEach(watch);
  });
})();
