// Where a job is, in one line kept live: every element with data-drs-where (the
// job_where template tag writes them, with the job's times in data attributes) is
// written again each second, so that "queued for", "waiting at" and "running for" tick
// without polling. "drs:status" events (job-log.js and job-status.js dispatch one per
// status frame) move the line to the job's new state, and a pending job's reason and
// "since"; "drs:log" events (job-log.js, per batch of lines) move its last output. The
// words are those of django_remote_submission/where.py, which writes the line the page
// comes with. Text goes in with textContent.
(function () {
  "use strict";

  if (window.drsWhere) {
    return; // the script was included twice on this page
  }

  // Milliseconds the server's clock is ahead of the browser's, from data-now.
  var skew = null;

  function now() {
    return Date.now() + (skew || 0);
  }

  function time(value) {
    return value ? Date.parse(value) : NaN;
  }

  function durationText(seconds) {
    var total = Math.max(0, Math.floor(seconds));
    if (total < 60) {
      return total + " s";
    }
    var minutes = Math.floor(total / 60);
    if (minutes < 60) {
      return minutes + " min " + (total % 60) + " s";
    }
    var hours = Math.floor(minutes / 60);
    if (hours < 24) {
      return hours + " h " + (minutes % 60) + " min";
    }
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function clock(milliseconds) {
    var seconds = Math.max(0, Math.floor(milliseconds / 1000));
    var element = document.createElement("time");
    element.setAttribute("datetime", "PT" + seconds + "S");
    element.textContent = durationText(seconds);
    return element;
  }

  var ENDED = {
    success: ["Succeeded", "Succeeded after "],
    failure: ["Failed before it started", "Failed after "],
    canceled: ["Canceled before it started", "Canceled after "],
  };

  // At the batch scheduler: since when, and why it holds the job (the frame says).
  function pendingParts(data, at) {
    var scheduler = data.scheduler || "the batch scheduler";
    var since = time(data.pendingSince);
    var result = isNaN(since) ? ["Waiting at " + scheduler]
      : ["Waiting at " + scheduler + " for ", clock(at - since)];
    if (data.reason) {
      result.push(": " + data.reason);
    }
    return result;
  }

  // The line's parts, strings and <time> elements, as where.where_parts makes them.
  function parts(data) {
    var at = now();
    var queued = time(data.queuedAt);
    var started = time(data.startedAt);
    var finished = time(data.finishedAt);
    var output = time(data.lastOutput);
    switch (data.state) {
      case "queued":
        if (isNaN(queued)) {
          return ["Queued: not sent to a worker yet"];
        }
        // Why it waits comes from the server, which knows whether any worker is alive.
        return ["Queued for ", clock(at - queued), ": " + (data.waiting || "waiting for a free worker")];
      case "starting":
        return ["Starting: connecting to the server and uploading the program"];
      case "pending":
        return pendingParts(data, at);
      case "running":
        if (isNaN(started)) {
          return ["Running"];
        }
        if (isNaN(output)) {
          // Unknown (a list, sent no log frames, saw the job start): say nothing of it.
          return data.outputUnknown ? ["Running for ", clock(at - started)]
            : ["Running for ", clock(at - started), "; no output yet"];
        }
        return ["Running for ", clock(at - started), "; last output ", clock(at - output), " ago"];
      case "finishing":
        return ["Finishing: storing the last output and collecting result files"];
    }
    var words = ENDED[data.state] || [data.state, data.state];
    if (isNaN(started) || isNaN(finished)) {
      return [words[0]];
    }
    return [words[1], clock(finished - started)];
  }

  function render(element) {
    if (skew === null && element.dataset.now) {
      skew = time(element.dataset.now) - Date.now();
    }
    var items = parts(element.dataset).map(function (part) {
      return typeof part === "string" ? document.createTextNode(part) : part;
    });
    element.className = "drs-where drs-where-" + element.dataset.state;
    element.replaceChildren.apply(element, items);
  }

  function elementsOf(jobId) {
    return document.querySelectorAll('[data-drs-where][data-job="' + jobId + '"]');
  }

  // A status frame: the job's state and times. A frame without a key keeps the value.
  function update(element, frame) {
    var before = element.dataset.state;
    var keys = {
      state: "state",
      queued_at: "queuedAt",
      started_at: "startedAt",
      finished_at: "finishedAt",
      pending_since: "pendingSince",
      scheduler_reason: "reason",
    };
    Object.keys(keys).forEach(function (key) {
      if (key in frame) {
        element.dataset[keys[key]] = frame[key] || "";
      }
    });
    if (!frame.state && frame.status) {
      // A frame of 2.x's keys only: its status says as much as it can.
      element.dataset.state = { initial: "queued", submitted: "running" }[frame.status] ||
        frame.status;
    }
    if (element.dataset.state !== "running") {
      delete element.dataset.lastOutput; // a new run starts without output
      delete element.dataset.outputUnknown;
    } else if (before !== "running" && !element.closest("[data-drs-log]")) {
      // Only a log box is sent the lines: elsewhere, the output of a run that started
      // after the page was made is unknown.
      element.dataset.outputUnknown = "yes";
    }
    render(element);
  }

  function output(element, when) {
    if (!when || time(when) <= time(element.dataset.lastOutput)) {
      return;
    }
    element.dataset.lastOutput = when;
    delete element.dataset.outputUnknown;
    render(element);
  }

  function tick() {
    document.querySelectorAll("[data-drs-where]").forEach(function (element) {
      var state = element.dataset.state;
      if (state === "queued" || state === "pending" || state === "running") {
        render(element);
      }
    });
  }

  document.addEventListener("drs:status", function (event) {
    elementsOf(event.detail.job_id).forEach(function (element) {
      update(element, event.detail);
    });
  });
  document.addEventListener("drs:log", function (event) {
    elementsOf(event.detail.job_id).forEach(function (element) {
      output(element, event.detail.time);
    });
  });
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
  });

  window.drsWhere = { render: render, update: update, durationText: durationText };
})();
