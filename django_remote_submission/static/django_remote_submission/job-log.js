// Live log of one job, for any element with data-drs-log (the admin's job page uses it).
// Lines arrive over the job-log websocket after the id of the last line already shown;
// after a drop the socket is opened again from the last id seen, so nothing is lost or
// repeated. Text goes in with textContent only: a log line is never HTML.
// A socket that sends nothing for 15 s after it opens, not even the end of the history,
// is closed and opened again. Each status frame is also dispatched on the box as a
// "drs:status" event (the frame in event.detail), for a page that shows more than the log,
// and the newest line of each batch as "drs:log" (its job_id and time), for job-where.js.
// With data-earlier (the address of the API's logs action), an "Earlier lines" button
// reads the 1000 rows before the first one shown, as often as the reader asks.
(function () {
  "use strict";

  // How long a new socket may stay silent before it is taken for broken.
  var SILENCE_MS = 15000;
  // Rows one click of "Earlier lines" reads.
  var EARLIER_ROWS = 1000;

  // The state line: the status (canceled for a canceled job, whose 2.x status stays
  // "failure"), and the error unless the page shows it elsewhere.
  function stateText(frame, withError) {
    var words = frame.state === "canceled" ? "canceled" : frame.status;
    return words + (withError && frame.error ? ": " + frame.error : "");
  }

  function earlierLines(box, list) {
    var button = box.querySelector("[data-drs-earlier]");
    var omitted = box.querySelector("[data-drs-omitted]");
    var first = parseInt(box.dataset.first || "0", 10);
    if (!button || !box.dataset.earlier || !first) {
      return;
    }
    var left = omitted ? parseInt(omitted.textContent, 10) : NaN;
    button.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      var url = new URL(box.dataset.earlier, window.location.href);
      url.searchParams.set("before", String(first));
      url.searchParams.set("limit", String(EARLIER_ROWS));
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (page) {
          // Keep what the reader looks at where it is: the list grows above it.
          var height = list.scrollHeight;
          var top = list.scrollTop;
          var lines = document.createDocumentFragment();
          page.results.forEach(function (row) {
            var line = document.createElement("div");
            line.className = "drs-line drs-" + row.stream;
            line.textContent = row.content;
            lines.appendChild(line);
          });
          list.insertBefore(lines, list.firstChild);
          list.scrollTop = top + (list.scrollHeight - height);
          if (page.results.length) {
            first = page.results[0].id;
            box.dataset.first = String(first);
          }
          if (omitted && !isNaN(left)) {
            left = Math.max(0, left - page.results.length);
            omitted.textContent = left + " earlier lines are not shown.";
            omitted.hidden = !page.more;
          }
          button.hidden = !page.more;
          button.disabled = false;
        })
        .catch(function (error) {
          button.disabled = false;
          button.title = "Could not read the earlier lines (" + error.message + "): try again.";
        });
    });
  }

  function follow(box) {
    if (box.dataset.drsFollowing) {
      return; // the script was included twice on this page
    }
    box.dataset.drsFollowing = "yes";
    var list = box.querySelector("[data-drs-lines]");
    var state = box.querySelector("[data-drs-state]");
    var since = parseInt(box.dataset.since || "0", 10);
    var finished = box.dataset.finished === "true";
    var withError = !("errorElsewhere" in box.dataset);
    var stick = true;

    list.addEventListener("scroll", function () {
      // Follow the end until the reader scrolls up; resume when they come back down.
      stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    });

    function show(text) {
      if (state) {
        state.textContent = text;
      }
    }

    function append(frame) {
      var line = document.createElement("div");
      line.className = "drs-line drs-" + frame.stream;
      line.textContent = frame.content;
      list.appendChild(line);
      if (frame.log_id) {
        since = Math.max(since, frame.log_id);
      }
    }

    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var url = scheme + window.location.host + box.dataset.socket + "?batch=1&since=" + since;
      var socket = new WebSocket(url);
      // The server sends the history, then "history-complete", as soon as the socket
      // opens. A socket that stays silent instead is broken somewhere between here and
      // the server: close it, and the onclose below opens another.
      var watchdog = null;
      function watch() {
        window.clearTimeout(watchdog);
        watchdog = window.setTimeout(function () {
          socket.close();
        }, SILENCE_MS);
      }
      watch();
      socket.onmessage = function (message) {
        var frame = JSON.parse(message.data);
        var frames = Array.isArray(frame) ? frame : [frame];
        var newest = null;
        if (watchdog !== null) {
          watch();
        }
        frames.forEach(function (item) {
          if (item.event === "history-complete") {
            window.clearTimeout(watchdog);
            watchdog = null;
          } else if (item.event === "log") {
            append(item);
            newest = item;
          } else if (item.event === "status") {
            finished = item.finished;
            show(stateText(item, withError));
            box.dispatchEvent(new CustomEvent("drs:status", { detail: item, bubbles: true }));
          }
        });
        if (newest !== null) {
          var detail = { job_id: newest.job_id, time: newest.time };
          box.dispatchEvent(new CustomEvent("drs:log", { detail: detail, bubbles: true }));
        }
        if (stick) {
          list.scrollTop = list.scrollHeight;
        }
      };
      socket.onclose = function (event) {
        window.clearTimeout(watchdog);
        if (event.code >= 4400 && event.code < 4500) {
          show("Live log refused (" + event.code + ").");
        } else if (!finished) {
          show("Reconnecting…");
          window.setTimeout(connect, 1000);
        }
      };
    }

    if (stick) {
      list.scrollTop = list.scrollHeight;
    }
    earlierLines(box, list);
    if (!finished) {
      connect();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-drs-log]").forEach(follow);
  });
})();
