// The operators' page: reads its data again every 5 seconds and shows it. Every value
// goes in as text (textContent), never as HTML.
(function () {
  "use strict";
  var root = document.querySelector("[data-drs-overview]");
  if (!root) { return; }
  var PERIOD = 5000;
  var text = root.dataset;

  function cell(row, value, className) {
    var td = document.createElement("td");
    if (value instanceof Node) { td.appendChild(value); } else { td.textContent = value; }
    if (className) { td.className = className; }
    row.appendChild(td);
    return td;
  }

  function jobLink(job) {
    var a = document.createElement("a");
    a.href = job.url;
    a.textContent = job.id + " " + job.title;
    return a;
  }

  function fill(table, rows, columns, decorate) {
    var body = table.tBodies[0];
    var fresh = document.createElement("tbody");
    rows.forEach(function (item) {
      var tr = document.createElement("tr");
      columns.forEach(function (column) { cell(tr, column[0](item), column[1]); });
      if (decorate) { decorate(tr, item); }
      fresh.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      tr.className = "drs-none";
      cell(tr, table.dataset.empty).colSpan = table.tHead.rows[0].cells.length;
      fresh.appendChild(tr);
    }
    table.replaceChild(fresh, body);
  }

  function show(data) {
    var alive = document.getElementById("drs-alive");
    alive.textContent = data.summary;
    alive.className = "drs-alive " + (data.alive ? "drs-ok" : "drs-bad");
    document.getElementById("drs-last-sweep").textContent = data.last_sweep;
    fill(document.getElementById("drs-workers"), data.workers, [
      [function (w) { return w.host; }],
      [function (w) { return String(w.pid); }],
      [function (w) { return w.alive ? text.textYes : text.textNo; }],
      [function (w) { return w.last_sweep; }],
      [function (w) { return String(w.jobs_followed); }],
      [function (w) { return w.started; }]
    ], function (tr, w) { tr.className = w.alive ? "drs-ok" : "drs-bad"; });
    fill(document.getElementById("drs-running"), data.running, [
      [jobLink],
      [function (j) { return j.server; }],
      [function (j) { return j.owner; }],
      [function (j) { return j.duration; }, "drs-duration"],
      [function (j) { return j.since_output; }]
    ], function (tr, j) { tr.dataset.job = j.id; });
    fill(document.getElementById("drs-pending"), data.pending, [
      [jobLink],
      [function (j) { return j.server; }],
      [function (j) { return j.owner; }],
      [function (j) { return j.scheduler_job_id; }],
      [function (j) { return j.waiting; }],
      [function (j) { return j.reason; }]
    ], function (tr, j) { tr.dataset.job = j.id; });
    fill(document.getElementById("drs-stuck"), data.stuck, [
      [jobLink],
      [function (j) { return j.server; }],
      [function (j) { return j.owner; }],
      [function (j) { return j.waiting; }]
    ], function (tr, j) { tr.dataset.job = j.id; });
    data.servers.forEach(function (server) {
      var row = root.querySelector('#drs-servers tr[data-server="' + server.id + '"]');
      if (!row) { return; }  // a server added since the page loaded: shown on reload
      Object.keys(server.counts).forEach(function (state) {
        var link = row.querySelector('td[data-state="' + state + '"] a');
        if (link) { link.textContent = String(server.counts[state]); }
      });
      var check = row.querySelector("[data-drs-check]");
      var ok = server.last_check_ok;
      check.className = "drs-check" + (ok === null ? "" : ok ? " drs-ok" : " drs-bad");
      check.querySelector("[data-drs-check-when]").textContent = ok === null
        ? text.textNever
        : (ok ? text.textPassed : text.textFailed) + " " + server.last_checked;
      check.querySelector("[data-drs-check-report]").textContent = server.last_check_report;
    });
  }

  var status = root.querySelector("[data-drs-refresh]");
  var usual = status.firstChild.textContent;

  function refresh() {
    fetch(root.dataset.url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      redirect: "error"  // an expired session redirects to the login page
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.json();
    }).then(function (data) {
      show(data);
      status.firstChild.textContent = usual;
      status.classList.remove("drs-bad");
    }).catch(function (error) {
      status.firstChild.textContent = text.textStale + " " + error.message + ". ";
      status.classList.add("drs-bad");
    }).then(function () {
      window.setTimeout(refresh, PERIOD);
    });
  }

  window.setTimeout(refresh, PERIOD);
}());
