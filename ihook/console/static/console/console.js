// ihook console: progressive enhancement only; every page works without this file.
(function () {
  "use strict";

  // Dashboard: refresh the live part every 10 s from the same page's fragment.
  var live = document.getElementById("dashboard-live");
  if (live && window.fetch && window.DOMParser) {
    var url = live.getAttribute("data-refresh");
    var refresh = function () {
      if (document.hidden) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (answer) {
          // A sign-out (redirect to the sign-in page) or an error: leave the page as it is.
          if (!answer.ok || answer.redirected) { throw new Error("no refresh"); }
          return answer.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          live.replaceChildren.apply(live, Array.prototype.slice.call(doc.body.childNodes));
        })
        .catch(function () {});
    };
    window.setInterval(refresh, 10000);
  }

  // Forms that change something ask first (data-confirm holds the question).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();
