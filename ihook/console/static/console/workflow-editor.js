// ihook console, workflow editor: problems shown as you type, the step palette's Insert
// buttons, and a warning before unsaved changes are lost. The page works without this file.
(function () {
  "use strict";

  var form = document.getElementById("workflow-form");
  var area = document.getElementById("definition");
  if (!form || !area) { return; }
  var box = document.getElementById("definition-problems");
  var status = document.getElementById("definition-status");
  var url = form.getAttribute("data-validate");
  var token = form.querySelector("input[name=csrf_token]").value;
  // A page showing a refused save holds unsaved text from the start.
  var saved = form.hasAttribute("data-unsaved") ? null : area.value;
  var leaving = false;
  var timer = null;
  var asked = 0;

  // The offset of the start of a line (from 1) in the textarea's text.
  function offsetOf(line) {
    var offset = 0;
    for (var n = 1; n < line; n += 1) {
      var next = area.value.indexOf("\n", offset);
      if (next < 0) { break; }
      offset = next + 1;
    }
    return offset;
  }

  function goTo(line) {
    var at = offsetOf(line);
    area.focus();
    area.setSelectionRange(at, at);
    var height = parseFloat(window.getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 3) * height);
  }

  function code(text) {
    var element = document.createElement("code");
    element.textContent = text;
    return element;
  }

  // One problem as the server renders it: Step 2 `map` (transform) · expression: reason.
  function item(problem) {
    var li = document.createElement("li");
    if (problem.step) {
      li.append("Step " + problem.step);
      if (problem.step_name) { li.append(" ", code(problem.step_name)); }
      if (problem.step_type) { li.append(" (" + problem.step_type + ")"); }
      if (problem.field) { li.append(" · "); }
    }
    if (problem.field) { li.append(code(problem.field)); }
    li.append((problem.step || problem.field ? ": " : "") + problem.message);
    if (problem.line) {
      var jump = document.createElement("button");
      jump.type = "button";
      jump.className = "secondary problem-line";
      jump.textContent = "line " + problem.line;
      jump.setAttribute("aria-label", "Go to line " + problem.line);
      jump.addEventListener("click", function () { goTo(problem.line); });
      li.append(" ", jump);
    }
    return li;
  }

  function show(problems) {
    var old = box.querySelector("ul");
    if (old) { old.remove(); }
    if (!problems.length) {
      status.textContent = "No problems found.";
      area.removeAttribute("aria-invalid");
      return;
    }
    status.textContent = problems.length + (problems.length === 1 ? " problem:" : " problems:");
    var list = document.createElement("ul");
    problems.forEach(function (problem) { list.append(item(problem)); });
    box.append(list);
    area.setAttribute("aria-invalid", "true");
  }

  function check() {
    var body = new FormData();
    body.append("csrf_token", token);
    body.append("definition", area.value);
    var mine = ++asked;
    fetch(url, { method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (answer) {
        var json = (answer.headers.get("Content-Type") || "").indexOf("json") >= 0;
        // Signed out, or a token without write: leave the page's messages as they are.
        if (answer.redirected || !json) { throw new Error("no check"); }
        return answer.json();
      })
      .then(function (answer) { if (mine === asked) { show(answer.errors || []); } })
      .catch(function () {});
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 400);
  }

  area.addEventListener("input", later);

  // The palette: insert a step type's template at the end of `steps:` with a free id.
  function freeId(id) {
    var taken = function (name) { return new RegExp("^\\s*-?\\s*id:\\s*['\"]?" + name + "['\"]?\\s*$", "m").test(area.value); };
    var free = id;
    for (var n = 2; taken(free); n += 1) { free = id + "_" + n; }
    return free;
  }

  function insert(template) {
    var id = (template.match(/^- id: (\S+)/) || [])[1];
    if (id) { template = template.replace(/^- id: \S+/, "- id: " + freeId(id)); }
    var lines = area.value.replace(/\s+$/, "").split("\n");
    var start = -1;
    lines.forEach(function (line, n) { if (start < 0 && /^steps:\s*(#.*)?$/.test(line)) { start = n; } });
    if (start < 0 && lines.some(function (line) { return /^steps:/.test(line); })) {
      // `steps:` in flow style ([…]): the template goes where the cursor is.
      area.setRangeText(template, area.selectionStart, area.selectionEnd, "select");
      area.focus();
      check();
      return;
    }
    var indent = "  ";
    var end = lines.length;
    if (start < 0) {
      lines.push("steps:");
      start = end = lines.length;
    } else {
      for (var n = start + 1; n < lines.length; n += 1) {
        if (/^\S/.test(lines[n]) && !/^(#|-(\s|$))/.test(lines[n])) { end = n; break; }
      }
      for (var m = start + 1; m < end; m += 1) {
        var dash = lines[m].match(/^(\s*)- /);
        if (dash) { indent = dash[1]; break; }
      }
      while (end > start + 1 && !lines[end - 1].trim()) { end -= 1; }
    }
    var added = template.replace(/\s+$/, "").split("\n").map(function (line) { return indent + line; });
    var before = lines.slice(0, end).join("\n") + "\n";
    var after = lines.slice(end).join("\n");
    area.value = before + added.join("\n") + "\n" + (after ? after + "\n" : "");
    area.focus();
    area.setSelectionRange(before.length, before.length + added.join("\n").length);
    check();
  }

  Array.prototype.forEach.call(document.querySelectorAll(".palette-insert"), function (button) {
    var source = document.getElementById(button.getAttribute("data-template"));
    if (!source) { return; }
    button.hidden = false;
    button.addEventListener("click", function () { insert(source.textContent); });
  });

  // Saving this form keeps the changes; leaving any other way (the run or Enable buttons,
  // a link) asks first, since they act on the saved version.
  document.addEventListener("submit", function (event) {
    if (event.defaultPrevented) { return; }
    if (event.target === form || area.value === saved) { leaving = true; return; }
    if (window.confirm("Your changes to the definition are not saved and will be lost (this acts on the saved version). Go on?")) {
      leaving = true;
    } else {
      event.preventDefault();
    }
  });
  window.addEventListener("beforeunload", function (event) {
    if (!leaving && area.value !== saved) { event.preventDefault(); event.returnValue = ""; }
  });
})();
