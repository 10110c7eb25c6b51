// ihook console, subscription wizard: rows added and removed in place, and only the fields
// of the chosen authentication shown. Without this file the same buttons re-render the step.
(function () {
  "use strict";

  var form = document.querySelector("form.subscription-wizard");
  if (!form) { return; }

  // Rows are numbered 1, 2, 3… in their labels, ids and Remove buttons, as the server
  // renders them; after each change every row of the list is numbered again.
  function renumber(list) {
    list.querySelectorAll("[data-row]").forEach(function (row, index) {
      row.querySelectorAll("input").forEach(function (input) {
        var label = row.querySelector('label[for="' + input.id + '"]');
        input.id = input.id.replace(/-\d+$/, "-" + index);
        if (label) {
          label.setAttribute("for", input.id);
          label.textContent = label.textContent.replace(/\d+$/, String(index + 1));
        }
      });
      var remove = row.querySelector("[data-remove-row]");
      if (remove) {
        remove.value = remove.value.replace(/-\d+$/, "-" + index);
        var hidden = remove.querySelector(".visually-hidden");
        if (hidden) { hidden.textContent = hidden.textContent.replace(/\d+$/, String(index + 1)); }
      }
    });
  }

  // A fresh row: a copy of the first, its values and messages cleared.
  function freshRow(list) {
    var row = list.querySelector("[data-row]").cloneNode(true);
    row.querySelectorAll("input").forEach(function (input) {
      input.value = "";
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    });
    row.querySelectorAll(".error, .help").forEach(function (note) { note.remove(); });
    return row;
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) { return; }
    if (button.hasAttribute("data-add-row")) {
      var list = form.querySelector('[data-rows="' + button.getAttribute("data-add-row") + '"]');
      if (!list || !list.querySelector("[data-row]")) { return; }
      event.preventDefault();
      var row = freshRow(list);
      list.appendChild(row);
      renumber(list);
      row.querySelector("input").focus();
    } else if (button.hasAttribute("data-remove-row")) {
      var current = button.closest("[data-row]");
      var parent = current.parentNode;
      event.preventDefault();
      if (parent.querySelectorAll("[data-row]").length > 1) {
        var next = current.nextElementSibling || current.previousElementSibling;
        current.remove();
        renumber(parent);
        next.querySelector("input").focus();
      } else {
        current.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      }
    }
  });

  // Authentication: show only the fields of the chosen method.
  var kind = form.querySelector("[data-auth-type]");
  function showAuth() {
    form.querySelectorAll("[data-auth-for]").forEach(function (part) {
      part.hidden = part.getAttribute("data-auth-for") !== kind.value;
    });
  }
  if (kind) {
    kind.addEventListener("change", showAuth);
    showAuth();
  }
})();
