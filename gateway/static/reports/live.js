// /live/: rows from the /ws/live websocket, running spend, and a per-second chart.
(function () {
  const body = document.querySelector("#live-requests tbody");
  const state = document.getElementById("live-state");
  let count = 0, spend = 0;
  const labels = [], values = [];
  let chart = null;
  const canvas = document.getElementById("live-chart");
  if (typeof Chart !== "undefined" && canvas) {
    chart = new Chart(canvas, {type: "bar", data: {labels: labels, datasets: [{label: "requests / s", data: values,
      backgroundColor: "#417690"}]}, options: {animation: false, maintainAspectRatio: false}});
    canvas.dataset.rendered = "1";
  }
  function tick() {
    const now = new Date().toISOString().slice(11, 19);
    labels.push(now); values.push(0);
    if (labels.length > 60) { labels.shift(); values.shift(); }
    if (chart) chart.update();
  }
  tick(); setInterval(tick, 1000);
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    return td;
  }
  function budgets(e) {
    document.querySelectorAll("#live-budgets tr[data-scope]").forEach(function (row) {
      const mine = (row.dataset.scope === "key" && String(e.key_id) === row.dataset.owner) ||
                   (row.dataset.scope === "user" && String(e.user_id) === row.dataset.owner);
      if (!mine) return;
      const spent = parseFloat(row.dataset.spent) + e.cost_usd, limit = parseFloat(row.dataset.limit);
      row.dataset.spent = spent;
      row.querySelector(".spent").textContent = spent.toFixed(4);
      row.querySelector(".used").textContent = (limit ? 100 * spent / limit : 0).toFixed(1) + "%";
    });
  }
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/live");
    ws.onopen = function () { state.textContent = "Connected: requests appear as they finish."; state.dataset.connected = "1"; };
    ws.onclose = function () { state.textContent = "Disconnected; retrying…"; state.dataset.connected = ""; setTimeout(connect, 2000); };
    ws.onmessage = function (message) {
      const data = JSON.parse(message.data);
      if (data.type !== "usage") return;
      const e = data.event;
      const row = document.createElement("tr");
      row.dataset.requestId = e.request_id;
      [cell((e.time || "").slice(0, 19).replace("T", " ")), cell(e.user), cell(e.key), cell(e.route), cell(e.provider),
       cell(e.model), cell(e.prompt_tokens + " / " + e.completion_tokens, "num"), cell(e.cost_usd.toFixed(6), "num"),
       cell(Math.round(e.latency_ms) + " ms", "num"), cell(e.status, "num" + (e.status >= 400 ? " over" : ""))]
        .forEach(function (td) { row.appendChild(td); });
      body.insertBefore(row, body.firstChild);
      while (body.children.length > 200) body.removeChild(body.lastChild);
      count += 1; spend += e.cost_usd;
      document.getElementById("live-count").textContent = count;
      document.getElementById("live-spend").textContent = "$" + spend.toFixed(4);
      values[values.length - 1] += 1;
      if (chart) chart.update("none");
      budgets(e);
    };
  }
  connect();
})();
