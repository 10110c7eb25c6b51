// Poller form: show only the fields of the chosen target and pagination. Without this
// file every field shows, and the server reads only those the two choices name.
(function () {
  "use strict";

  function follow(selectId, attribute) {
    var choice = document.getElementById(selectId);
    if (!choice) { return; }
    var groups = document.querySelectorAll("[" + attribute + "]");
    var update = function () {
      Array.prototype.forEach.call(groups, function (group) {
        group.hidden = group.getAttribute(attribute) !== choice.value;
      });
    };
    choice.addEventListener("change", update);
    update();
  }

  follow("f-request-via", "data-via");
  follow("f-pagination-kind", "data-pagination");
})();
