// ihook console, endpoint wizard: show only the auth fields of the chosen type.
// Without this file every field is shown, each saying which type it is for.
(function () {
  "use strict";
  var type = document.querySelector("[data-auth-type]");
  if (!type) { return; }
  var groups = document.querySelectorAll("[data-auth-for]");
  var scheme = document.getElementById("auth_scheme");
  var generic = ["auth_algorithm", "auth_encoding", "auth_prefix"];
  var show = function () {
    Array.prototype.forEach.call(groups, function (group) {
      var kinds = group.getAttribute("data-auth-for").split(" ");
      group.hidden = kinds.indexOf(type.value) < 0;
    });
    var isGeneric = type.value === "hmac" && scheme && scheme.value === "generic";
    generic.forEach(function (id) {
      var field = document.getElementById(id);
      if (field) { field.closest(".field").hidden = !isGeneric; }
    });
    var header = document.getElementById("auth_header");
    if (header) {
      header.closest(".field").hidden = !(type.value === "header" || isGeneric);
    }
  };
  type.addEventListener("change", show);
  if (scheme) { scheme.addEventListener("change", show); }
  show();
})();
