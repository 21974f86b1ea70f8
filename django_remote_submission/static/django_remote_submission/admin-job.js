// The admin's job page: Cancel asks before it sends anything.
(function () {
  "use strict";
  var button = document.getElementById("drs-cancel-job");
  if (!button) { return; }
  button.addEventListener("click", function (event) {
    if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
  });
}());
