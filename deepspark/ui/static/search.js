/* deepspark training UI: the Search page (a hyperparameter search's trials). DOM nodes and textContent only. */
(function () {
  "use strict";
  var page = document.body.dataset.page;
  if (page !== "search" && page !== "report") { return; }
  var COLORS = { complete: "#16a34a", pruned: "#d97706", failed: "#dc2626", interrupted: "#6b7280", running: "#2563eb" };
  var charts = {};
  var lastCount = -1;
  var params = new URLSearchParams(window.location.search);
  var embedded = document.getElementById("deepspark-data");

  function el(id) { return document.getElementById(id); }
  function node(tag, text, cls) {
    var n = document.createElement(tag);
    if (text !== undefined && text !== null) { n.textContent = String(text); }
    if (cls) { n.className = cls; }
    return n;
  }
  function clear(n) { while (n.firstChild) { n.removeChild(n.firstChild); } }
  function num(v, digits) {
    if (v === null || v === undefined || typeof v !== "number" || !isFinite(v)) { return "–"; }
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) { return v.toExponential(2); }
    return v.toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 4 : digits });
  }
  function value(v) { return typeof v === "number" ? num(v) : String(v); }
  function chart(id, config) {
    var canvas = el(id);
    if (!canvas || typeof Chart === "undefined") { return; }
    if (charts[id]) { charts[id].destroy(); }
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12, font: { size: 11 } } } } }, config.options || {});
    charts[id] = new Chart(canvas, config);
  }
  function better(mode, a, b) { return mode === "min" ? a < b : a > b; }

  function cards(s) {
    var box = el("search-cards"), counts = {};
    clear(box);
    s.trials.forEach(function (t) { counts[t.state] = (counts[t.state] || 0) + 1; });
    var best = s.trials.filter(function (t) { return t.number === s.best; })[0];
    var st = s.settings || {};
    var items = [
      ["trials", s.trials.length + (st.max_trials ? " / " + st.max_trials : "")],
      ["states", Object.keys(counts).sort().map(function (k) { return k + " " + counts[k]; }).join(", ")],
      ["best " + (st.metric || "score"), best ? num(best.score) + " (trial " + best.number + ")" : "–"],
      ["sampler / pruner", (st.sampler || "–") + " / " + (st.pruner || "–")],
      ["epochs run", s.trials.reduce(function (a, t) { return a + (t.epochs_run || t.epochs.length); }, 0) +
        (st.max_epochs ? " of " + s.trials.length * st.max_epochs : "")],
      ["status", s.end ? "finished (" + (s.end.reason || "") + ")" : "running"]
    ];
    items.forEach(function (c) {
      var card = node("div", null, "card");
      card.appendChild(node("div", c[0], "k"));
      card.appendChild(node("div", c[1], "v"));
      box.appendChild(card);
    });
    if (best) {
      var card = node("div", null, "card");
      card.style.gridColumn = "span 2";
      card.appendChild(node("div", "best params", "k"));
      card.appendChild(node("div", Object.keys(best.params).map(function (k) { return k + "=" + value(best.params[k]); }).join(", "), "v"));
      box.appendChild(card);
    }
  }

  function scoreVsTime(s) {
    var t0 = s.first_start || Math.min.apply(null, s.trials.map(function (t) { return t.start || Infinity; }));
    var byState = {}, finished = [];
    s.trials.forEach(function (t) {
      var score = t.score !== null ? t.score : (t.scores.length ? t.scores[t.scores.length - 1] : null);
      if (t.end === null || score === null) { return; }
      (byState[t.state] = byState[t.state] || []).push({ x: t.end - t0, y: score });
      if (t.state === "complete") { finished.push({ x: t.end - t0, y: score }); }
    });
    finished.sort(function (a, b) { return a.x - b.x; });
    var bestLine = [], cur = null, mode = (s.settings || {}).mode;
    finished.forEach(function (p) { if (cur === null || better(mode, p.y, cur)) { cur = p.y; } bestLine.push({ x: p.x, y: cur }); });
    var sets = Object.keys(byState).map(function (state) {
      return { type: "scatter", label: state, data: byState[state], backgroundColor: COLORS[state] || "#999", pointRadius: 4 };
    });
    sets.push({ type: "line", label: "best so far", data: bestLine, borderColor: "#111827", backgroundColor: "#111827",
      stepped: true, pointRadius: 0, borderWidth: 2 });
    chart("chart-search-time", { type: "scatter", data: { datasets: sets }, options: { scales: {
      x: { type: "linear", title: { display: true, text: "seconds since the search began" } },
      y: { title: { display: true, text: (s.settings || {}).metric || "score" } } } } });
  }

  function curves(s) {
    var sets = [];
    s.trials.forEach(function (t) {
      if (!t.epochs.length) { return; }
      var best = t.number === s.best;
      var data = t.epochs.map(function (e, i) { return { x: e, y: t.scores[i] }; });
      sets.push({ label: best ? "trial " + t.number + " (best)" : "trial " + t.number, data: data,
        borderColor: best ? "#2563eb" : (COLORS[t.state] || "#999") + "55", backgroundColor: best ? "#2563eb" : "#9ca3af",
        borderWidth: best ? 3 : 1, pointRadius: best ? 3 : 0, order: best ? 0 : 1 });
    });
    var bestTrial = s.trials.filter(function (t) { return t.number === s.best; })[0];
    if (bestTrial) {
      sets.push({ label: "trial " + bestTrial.number + " training loss", yAxisID: "loss", borderDash: [6, 4],
        data: bestTrial.epochs.map(function (e, i) { return { x: e, y: bestTrial.losses[i] }; }),
        borderColor: "#7c3aed", backgroundColor: "#7c3aed", borderWidth: 2, pointRadius: 2 });
    }
    chart("chart-search-curves", { type: "line", data: { datasets: sets }, options: {
      plugins: { legend: { labels: { filter: function (item) { return /best|loss/.test(item.text); } } } },
      scales: { x: { type: "linear", title: { display: true, text: "epoch" }, ticks: { stepSize: 1 } },
        y: { title: { display: true, text: (s.settings || {}).metric || "score" } },
        loss: { position: "right", title: { display: true, text: "training loss" }, grid: { drawOnChartArea: false } } } } });
  }

  function logScale(s, name) {
    var d = ((s.settings || {}).space || {})[name];
    return !!(d && (d.type === "log_uniform" || (d.type === "int_range" && d.log)));
  }

  function perParam(s) {
    var box = el("search-params");
    clear(box);
    var names = [];
    s.trials.forEach(function (t) { Object.keys(t.params).forEach(function (k) { if (names.indexOf(k) < 0) { names.push(k); } }); });
    names.forEach(function (name, i) {
      var panel = node("div", null, "chart-box");
      panel.appendChild(node("h3", name));
      var holder = node("div", null, "chart");
      holder.style.height = "220px";
      var canvas = document.createElement("canvas");
      canvas.id = "chart-search-param-" + i;
      holder.appendChild(canvas);
      panel.appendChild(holder);
      box.appendChild(panel);
      var domain = ((s.settings || {}).space || {})[name] || {};
      var categorical = domain.type === "choice" ||
        s.trials.some(function (t) { return name in t.params && typeof t.params[name] !== "number"; });
      var labels = [];
      var byState = {};
      s.trials.forEach(function (t) {
        if (!(name in t.params)) { return; }
        var score = t.score !== null ? t.score : (t.scores.length ? t.scores[t.scores.length - 1] : null);
        if (score === null) { return; }
        var x = t.params[name];
        if (categorical) { x = String(x); if (labels.indexOf(x) < 0) { labels.push(x); } }
        (byState[t.state] = byState[t.state] || []).push({ x: x, y: score });
      });
      var order = (domain.options && Array.isArray(domain.options)) ? domain.options.map(String) : labels.sort();
      var xScale = categorical ? { type: "category", labels: order.filter(function (l) { return labels.indexOf(l) >= 0; }) }
        : { type: logScale(s, name) ? "logarithmic" : "linear", ticks: domain.type === "int_range" ? { stepSize: 1 } : {} };
      xScale.title = { display: true, text: name };
      chart(canvas.id, { type: "scatter", data: { datasets: Object.keys(byState).map(function (state) {
        return { label: state, data: byState[state], backgroundColor: COLORS[state] || "#999", pointRadius: 4 };
      }) }, options: { scales: { x: xScale, y: { title: { display: true, text: (s.settings || {}).metric || "score" } } } } });
    });
  }

  function table(s) {
    var tbl = el("search-table");
    clear(tbl);
    var names = [];
    s.trials.forEach(function (t) { Object.keys(t.params).forEach(function (k) { if (names.indexOf(k) < 0) { names.push(k); } }); });
    var head = node("thead"), tr = node("tr");
    ["#", "state", "score", "epochs", "seconds"].concat(names).concat(["worker", "error"]).forEach(function (h, i) {
      tr.appendChild(node("th", h, i === 2 || i === 3 || i === 4 ? "num" : ""));
    });
    head.appendChild(tr);
    tbl.appendChild(head);
    var body = node("tbody");
    s.trials.forEach(function (t) {
      var row = node("tr");
      if (t.number === s.best) { row.className = "selected"; row.style.background = "#dbeafe"; }
      var state = node("td", t.state);
      state.style.color = COLORS[t.state] || "";
      state.style.fontWeight = "600";
      row.appendChild(node("td", t.number));
      row.appendChild(state);
      var score = t.score !== null ? t.score : (t.scores.length ? t.scores[t.scores.length - 1] : null);
      row.appendChild(node("td", num(score), "num"));
      row.appendChild(node("td", t.epochs_run || t.epochs.length, "num"));
      row.appendChild(node("td", t.end !== null && t.start !== null ? num(t.end - t.start, 1) : "–", "num"));
      names.forEach(function (n) { row.appendChild(node("td", n in t.params ? value(t.params[n]) : "")); });
      row.appendChild(node("td", t.worker, "dim"));
      var err = node("td", t.error.length > 120 ? t.error.slice(0, 117) + "..." : t.error);
      err.title = t.error;
      row.appendChild(err);
      body.appendChild(row);
    });
    tbl.appendChild(body);
  }

  function render(v) {
    var section = el("page-search");
    var s = v && v.search;
    if (!s) {
      if (page === "report") { section.style.display = "none"; return; }
      clear(el("search-cards"));
      var card = node("div", "No hyperparameter search in this session: pick a session named search-... above.", "card");
      el("search-cards").appendChild(card);
      return;
    }
    cards(s);
    scoreVsTime(s);
    curves(s);
    perParam(s);
    table(s);
    document.body.dataset.searchRendered = String(s.trials.length);
  }
  function refresh() {
    var q = new URLSearchParams();
    if (params.get("session")) { q.set("session", params.get("session")); }
    fetch("/api/view?" + q.toString()).then(function (r) { return r.ok ? r.json() : null; }).then(function (v) {
      if (v && v.record_count !== lastCount) { lastCount = v.record_count; render(v); }
    }).catch(function () { /* app.js shows connection problems in the banner */ });
  }
  if (embedded) {
    render(JSON.parse(embedded.textContent));
  } else {
    refresh();
    window.setInterval(refresh, 2000);
  }
})();
