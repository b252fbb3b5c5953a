/* gpufit page behaviour: draw plotly charts from the JSON the server embeds, and let htmx swap
   a 400 response (the form's messages) into the page instead of dropping it. */
(function () {
  "use strict";

  function drawCharts(root) {
    if (!window.Plotly) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var spec = document.getElementById(el.getAttribute("data-chart"));
      if (!spec) return;
      var fig = JSON.parse(spec.textContent);
      window.Plotly.react(el, fig.data, fig.layout, { responsive: true, displaylogo: false });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSwap", function (evt) { drawCharts(evt.detail.target || document); });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.xhr.status === 400) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });
})();
