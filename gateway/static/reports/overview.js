// Draws the stacked spend chart from the JSON the page embeds (the table stays the source).
(function () {
  const node = document.getElementById("spend-data");
  const canvas = document.getElementById("spend-chart");
  if (!node || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(node.textContent);
  const colors = ["#417690", "#e07b39", "#5aa469", "#c94c4c", "#8e6fbf", "#d4b03a", "#3fa7b5", "#999999"];
  const chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.series.map((s, i) => ({label: s.name, data: s.values, backgroundColor: colors[i % colors.length]})),
    },
    options: {
      animation: false, maintainAspectRatio: false,
      scales: {x: {stacked: true}, y: {stacked: true, title: {display: true, text: "USD"}}},
      plugins: {tooltip: {callbacks: {label: (c) => `${c.dataset.label}: $${c.parsed.y.toFixed(4)}`}}},
    },
  });
  canvas.dataset.rendered = String(chart.data.datasets.length);
})();
