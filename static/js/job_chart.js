// Draws the measured-vs-estimated chart of a job page from the JSON the server embedded.
(function () {
  var holder = document.getElementById("chart");
  var data = document.getElementById("chart-data");
  if (!holder || !data || !window.Plotly) return;
  var figure = JSON.parse(JSON.parse(data.textContent));
  window.Plotly.newPlot(holder, figure.data, figure.layout, { displayModeBar: false, responsive: true });
})();
