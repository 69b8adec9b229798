// The console's own script: SLA countdowns and confirmation of destructive forms.
// Loaded from the package like htmx (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  // <span data-sla-left="SECONDS">: the seconds left when the page was made; counted down
  // from the time the page loaded, so the browser's clock need not agree with the store's.
  function tick() {
    var spans = document.querySelectorAll("[data-sla-left]");
    for (var i = 0; i < spans.length; i++) {
      var el = spans[i];
      if (!el.dataset.base) { el.dataset.base = el.dataset.slaLeft; el.dataset.at = Date.now(); }
      var left = Number(el.dataset.base) - Math.floor((Date.now() - Number(el.dataset.at)) / 1000);
      var a = Math.abs(left);
      var text = Math.floor(a / 3600) + "h " + pad(Math.floor((a % 3600) / 60)) + "m " + pad(a % 60) + "s";
      el.textContent = (left < 0 ? "overdue " : "due in ") + text;
      el.classList.toggle("overdue", left < 0);
    }
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);

  // <form data-confirm="question">: asks before submitting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }, true);
})();
