// The job page of /logs/<pk>/: the log itself is django_remote_submission's job-log.js;
// this keeps the rest of the page live from its "drs:status" events. When the job ends,
// the cancel button goes and the results are read from the REST API; when it fails, the
// "was submitted" message goes (the error, in #job-error, is the page's only copy of it:
// the log's state line leaves it out). Where the job is, the line above the log, is kept
// live by django_remote_submission's job-where.js. Text goes in with textContent only: no
// file name or error message is ever HTML.
(function () {
  "use strict";

  function formatSize(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
  }

  function fetchAll(url, rows) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("results: HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (page) {
        rows = rows.concat(page.results);
        return page.next ? fetchAll(page.next, rows) : rows;
      });
  }

  function showResults(list) {
    fetchAll(list.dataset.api, []).then(function (results) {
      // As people count: out_2 before out_10.
      var order = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
      results.sort(function (a, b) {
        return order.compare(a.remote_filename, b.remote_filename);
      });
      var items = results.map(function (result) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = result.local_file;
        link.setAttribute("download", "");
        link.textContent = result.remote_filename;
        var size = document.createElement("span");
        size.className = "size";
        size.textContent = formatSize(result.size);
        item.append(link, " ", size);
        return item;
      });
      if (!items.length) {
        var none = document.createElement("li");
        none.className = "empty";
        none.textContent = "No files came back.";
        items.push(none);
      }
      list.replaceChildren.apply(list, items);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var job = document.getElementById("job");
    if (!job) {
      return;
    }
    var badge = document.getElementById("job-status");
    var error = document.getElementById("job-error");
    var exitCode = document.getElementById("job-exit-code");
    var cancel = document.getElementById("cancel-form");
    var results = document.getElementById("results");
    var finished = job.dataset.finished === "true";

    if (cancel) {
      cancel.addEventListener("submit", function (event) {
        var question = "Cancel this job? Its program is stopped (TERM, then KILL) and the " +
          "job ends as canceled.";
        if (!window.confirm(question)) {
          event.preventDefault();
        }
      });
    }

    document.addEventListener("drs:status", function (event) {
      var frame = event.detail;
      if (String(frame.job_id) !== job.dataset.job) {
        return;
      }
      // A canceled job keeps 2.x's status "failure"; its state says "canceled".
      badge.textContent = frame.state === "canceled" ? "canceled" : frame.status;
      badge.className = "badge drs-" + frame.status;
      job.dataset.status = frame.status;
      job.dataset.state = frame.state || "";
      if (frame.exit_code !== undefined && frame.exit_code !== null) {
        exitCode.textContent = String(frame.exit_code);
      }
      error.textContent = frame.error || "";
      error.hidden = !frame.error;
      if (frame.status === "failure") {
        // "Submitted" is still true, but it is not news above a failure.
        document.querySelectorAll(".message.submitted").forEach(function (message) {
          message.hidden = true;
        });
      }
      if (frame.finished && !finished) {
        finished = true;
        if (cancel) {
          cancel.hidden = true; // absent for a reader who may not cancel the job
        }
        showResults(results);
      }
    });
  });
})();
