// The job list of /example/: drop the "no jobs yet" row once job-status.js adds a job.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("jobs");
    if (!table) {
      return;
    }
    var body = table.tBodies[0];
    new MutationObserver(function () {
      var empty = body.querySelector("tr.empty");
      if (empty && body.querySelector("tr[data-job]")) {
        empty.remove();
      }
    }).observe(body, { childList: true });
  });
})();
