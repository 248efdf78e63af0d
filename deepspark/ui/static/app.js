/* deepspark training UI: draws /api/view (or the view embedded in a report) with Chart.js. No network beyond our server.
   Stored values are untrusted: they reach the page only as textContent of nodes built here, never as HTML. */
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
    "#ea580c", "#4f46e5", "#0d9488", "#be123c"];
  var PHASE_COLORS = {
    broadcast: "#94a3b8", map: "#cbd5e1", process_params: "#64748b", count: "#a8a29e", repartition: "#78716c",
    broadcast_get: "#f59e0b", model_init: "#a855f7", data_fetch: "#06b6d4", fit: "#22c55e", retry: "#ef4444"
  };
  var charts = {};
  var state = { count: -1, layer: null, view: null };
  var embedded = document.getElementById("deepspark-data");
  var page = document.body.dataset.page;
  var params = new URLSearchParams(window.location.search);

  function color(i) { return PALETTE[i % PALETTE.length]; }
  function el(id) { return document.getElementById(id); }
  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) { return "–"; }
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) { return v.toExponential(2); }
    return v.toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 3 : digits });
  }
  function text(v) { return v === null || v === undefined ? "" : String(v); }
  function node(tag, content, cls) {  // content: text, or an array of nodes
    var n = document.createElement(tag);
    if (Array.isArray(content)) { content.forEach(function (c) { n.appendChild(c); }); }
    else if (content !== undefined && content !== null) { n.textContent = String(content); }
    if (cls) { n.className = cls; }
    return n;
  }
  function fill(parent, children) {
    while (parent.firstChild) { parent.removeChild(parent.firstChild); }
    children.forEach(function (c) { parent.appendChild(c); });
  }
  function count(v) { return typeof v === "number" && isFinite(v) ? v.toLocaleString() : text(v); }
  function points(xs, ys) {
    var out = [];
    for (var i = 0; i < xs.length; i++) { if (ys[i] !== null && ys[i] !== undefined) { out.push({ x: xs[i], y: ys[i] }); } }
    return out;
  }
  function line(label, data, i, extra) {
    var ds = { label: label, data: data, borderColor: color(i), backgroundColor: color(i), borderWidth: 2,
      pointRadius: data.length > 60 ? 0 : 2, tension: 0.15, spanGaps: true };
    return Object.assign(ds, extra || {});
  }
  function draw(id, config) {
    var canvas = el(id);
    if (!canvas) { return; }
    if (charts[id]) { charts[id].destroy(); }
    var empty = config.data.datasets.every(function (d) { return !d.data || d.data.length === 0; });
    canvas.parentNode.classList.toggle("empty", empty);
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "nearest", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12, font: { size: 11 } } } } }, config.options || {});
    charts[id] = new Chart(canvas, config);
  }
  function logTick(value) {  // log axes: label 1eN and 3eN only, so labels never overlap
    var m = value / Math.pow(10, Math.floor(Math.log10(value) + 1e-9));
    return Math.abs(m - 1) < 1e-6 || Math.abs(m - 3) < 1e-6 ? Number(value.toPrecision(1)).toExponential(0) : "";
  }
  function lineChart(id, datasets, xTitle, yTitle, yType) {
    var y = { type: yType || "linear", title: { display: true, text: yTitle } };
    if (yType === "logarithmic") { y.ticks = { callback: logTick, autoSkip: false }; }
    draw(id, { type: "line", data: { datasets: datasets }, options: { parsing: true, scales: {
      x: { type: "linear", title: { display: true, text: xTitle } }, y: y } } });
  }

  // ------------------------------------------------------------------ overview
  function renderOverview(v) {
    var o = v.overview, it = o.iteration, st = v.static || {};
    var scores = o.score.filter(function (s) { return s !== null; });
    var first = scores.length ? scores[0] : null, last = scores.length ? scores[scores.length - 1] : null;
    var latestRatios = [];
    Object.keys(o.ratios).filter(function (k) { return /weight$/.test(k); }).forEach(function (k) {
      var r = o.ratios[k].value.filter(function (x) { return x !== null; });
      if (r.length) { latestRatios.push(r[r.length - 1]); }
    });
    var ended = v.session ? (Date.now() / 1000 - v.session.end) : 0;
    var cards = [
      ["session", v.session ? v.session.session_id : "–"],
      ["status", v.finished ? "finished " + new Date(v.session.end * 1000).toLocaleString()
        : (ended < 60 ? "running" : "no report for " + Math.round(ended) + " s")],
      ["iteration", it.length ? it[it.length - 1] : "–"],
      ["score", fmt(last, 4) + (first !== null && scores.length > 1 ? "  (from " + fmt(first, 4) + ")" : "")],
      ["examples/s", fmt(o.examples_per_sec[o.examples_per_sec.length - 1], 0)],
      ["parameters", st.num_params ? count(st.num_params) : "–"],
      ["training", (st.training || "–") + (st.num_workers ? ", " + st.num_workers + " workers" : "")]
    ];
    fill(el("cards"), cards.map(function (c) { return node("div", [node("div", c[0], "k"), node("div", c[1], "v")], "card"); }));
    var problems = [];
    if (o.score.some(function (s) { return s === null; }) && o.score.length) { problems.push(["bad", "the score was NaN or infinite in some reports: lower the learning rate or check the data"]); }
    if (first !== null && scores.length > 2 && last >= first) { problems.push(["warn", "the score has not decreased since the first report"]); }
    var high = latestRatios.filter(function (r) { return r > -1.5; }).length;
    var low = latestRatios.filter(function (r) { return r < -5; }).length;
    if (high) { problems.push(["warn", high + " weight(s) change by more than 3% per step (update:param ratio > -1.5): the learning rate may be too high"]); }
    if (low) { problems.push(["warn", low + " weight(s) barely change (update:param ratio < -5): the learning rate may be too low"]); }
    var banner = el("banner");
    if (!it.length) {
      banner.className = "banner warn"; banner.textContent = "No reports yet in this session.";
    } else if (problems.length) {
      banner.className = "banner " + (problems.some(function (p) { return p[0] === "bad"; }) ? "bad" : "warn");
      fill(banner, problems.map(function (p) { return node("div", "⚠ " + p[1]); }));
    } else {
      banner.className = "banner ok";
      banner.textContent = "✓ Training looks healthy: the score is falling and update:param ratios are in a normal range (about -4 to -2).";
    }
    var returns = points(it, o.episode_return || []);  // RL sessions: mean return of each report's episodes
    el("panel-returns").hidden = !returns.length;
    if (returns.length) { lineChart("chart-returns", [line("mean episode return", returns, 0)], "environment steps", "return"); }
    lineChart("chart-score", [line("score", points(it, o.score), 0)], "iteration", "score");
    lineChart("chart-throughput", [line("examples/s", points(it, o.examples_per_sec), 2, { fill: false })], "iteration", "examples/s");
    var ratioSets = Object.keys(o.ratios).map(function (k, i) { return line(k, points(it, o.ratios[k].value), i); });
    if (ratioSets.length && it.length) {
      ratioSets.push(line("healthy ≈ -3", [{ x: it[0], y: -3 }, { x: it[it.length - 1], y: -3 }], 11,
        { borderDash: [6, 4], borderColor: "#9ca3af", backgroundColor: "#9ca3af", pointRadius: 0, borderWidth: 1 }));
    }
    lineChart("chart-ratios", ratioSets, "iteration", "log10(|update| / |param|)");
    lineChart("chart-lr", Object.keys(o.learning_rates).map(function (k, i) {
      return line(k, points(it, o.learning_rates[k].value), i, { stepped: true });
    }), "iteration", "learning rate");
  }

  // ------------------------------------------------------------------ model
  function layerKeys(v, layer) {
    return Object.keys(v.model.magnitudes).filter(function (k) { return k.split(".")[0] === layer; });
  }
  function renderModel(v) {
    var layers = v.model.layers || [];
    var rows = layers.map(function (l) {
      var tr = node("tr", [node("td", l.index), node("td", l.name), node("td", l.type), node("td", l.activation),
        node("td", l.n_out), node("td", count(l.params), "num")]);
      tr.dataset.layer = text(l.name);
      if (l.name === state.layer) { tr.className = "selected"; }
      tr.addEventListener("click", function () { state.layer = tr.dataset.layer; renderModel(state.view); });
      return tr;
    });
    var head = node("tr", ["#", "name", "type", "activation", "n_out"].map(function (h) { return node("th", h); }));
    head.appendChild(node("th", "params", "num"));
    fill(el("layer-table"), [node("thead", [head]), node("tbody", rows)]);
    el("model-summary").textContent = (v.static && v.static.summary) || "";
    if (!state.layer || !layerKeys(v, state.layer).length) {
      var withParams = layers.filter(function (l) { return l.params > 0; });
      state.layer = withParams.length ? withParams[0].name : (Object.keys(v.model.magnitudes)[0] || "").split(".")[0];
      Array.prototype.forEach.call(el("layer-table").querySelectorAll("tbody tr"), function (tr) {
        tr.classList.toggle("selected", tr.dataset.layer === state.layer);
      });
    }
    var keys = layerKeys(v, state.layer), it = v.overview.iteration, sets = [], i = 0;
    keys.forEach(function (k) {
      var m = v.model.magnitudes[k];
      ["params", "updates", "gradients"].forEach(function (what) {
        if (m[what] && m[what].some(function (x) { return x !== null && x > 0; })) {
          sets.push(line(k + " " + what, points(it, m[what].map(function (x) { return x > 0 ? x : null; })), i++));
        }
      });
    });
    el("layer-title").textContent = "Mean magnitude: " + (state.layer || "–");
    lineChart("chart-magnitude", sets, "iteration", "mean |value| (log scale)", "logarithmic");
    var weight = keys.filter(function (k) { return /weight$|W$/.test(k); })[0] || keys[0];
    var hist = (weight && v.model.histograms[weight]) || {};
    histogram("chart-hist-params", hist.params, weight + " (params)", 0, "hist-param-note");
    histogram("chart-hist-updates", hist.updates, weight + " (updates)", 3, "hist-update-note");
  }
  function histogram(id, h, label, ci, noteId) {
    var labels = [], data = [];
    if (h) {
      var width = (h.max - h.min) / h.counts.length;
      h.counts.forEach(function (c, i) {
        var centre = h.min + width * (i + 0.5);
        labels.push(Math.abs(centre) < width * 1e-3 ? "0" : String(Number(centre.toPrecision(2))));
        data.push(c);
      });
      el(noteId).textContent = label + ", iteration " + h.iteration;
    } else { el(noteId).textContent = ""; }
    draw(id, { type: "bar", data: { labels: labels, datasets: [{ label: label, data: data, backgroundColor: color(ci),
      barPercentage: 1.0, categoryPercentage: 0.95 }] },
      options: { plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: "value (bin centre)" } },
        y: { title: { display: true, text: "count" } } } } });
  }

  // ------------------------------------------------------------------ system
  function renderSystem(v) {
    var workers = Object.keys(v.system);
    function sets(field) {
      return workers.map(function (w, i) { return line(w, points(v.system[w].iteration, v.system[w][field]), i); });
    }
    lineChart("chart-memory", sets("rss_mb"), "iteration", "MiB");
    lineChart("chart-gc", sets("gc_seconds"), "iteration", "seconds");
    lineChart("chart-worker-throughput", sets("examples_per_sec"), "iteration", "examples/s");
    var st = v.static || {}, rows = [];
    Object.keys(st.hardware || {}).forEach(function (k) { rows.push(["hardware", k, st.hardware[k]]); });
    Object.keys(st.software || {}).forEach(function (k) { rows.push(["software", k, st.software[k]]); });
    ["spark_master", "spark_version", "app_id"].forEach(function (k) { if (st[k]) { rows.push(["spark", k, st[k]]); } });
    workers.forEach(function (w) {
      var s = v.system[w];
      rows.push(["worker", w, (s.host ? s.host + ", " : "") + "RSS " + fmt(s.rss_mb[s.rss_mb.length - 1], 1) +
        " MiB, " + fmt(s.gc_collections[s.gc_collections.length - 1], 0) + " GC collections"]);
    });
    fill(el("hardware-table"), [node("tbody", rows.map(function (r) {
      var value = r[1] === "memory_bytes" ? fmt(r[2] / 1073741824, 1) + " GiB" : r[2];
      return node("tr", [node("td", r[0], "dim"), node("td", r[1]), node("td", value)]);
    }))]);
  }

  // ------------------------------------------------------------------ spark
  function renderSpark(v) {
    var ev = v.spark.events || [], t0 = Infinity;
    ev.forEach(function (e) { t0 = Math.min(t0, e[3]); });
    var lanes = [], byPhase = {};
    ev.forEach(function (e) {
      var lane = e[0] < 0 ? "driver" : "worker " + e[0];
      if (lanes.indexOf(lane) < 0) { lanes.push(lane); }
      (byPhase[e[1]] = byPhase[e[1]] || []).push({ x: [e[3] - t0, e[3] - t0 + Math.max(e[4], 1e-4)], y: lane });
    });
    lanes.sort(function (a, b) { return a === "driver" ? -1 : b === "driver" ? 1 : a.localeCompare(b, undefined, { numeric: true }); });
    var phases = Object.keys(byPhase);
    draw("chart-timeline", { type: "bar", data: { labels: lanes, datasets: phases.map(function (p, i) {
      return { label: p, data: byPhase[p], backgroundColor: PHASE_COLORS[p] || color(i), borderWidth: 0, grouped: false,
        barPercentage: 0.8, categoryPercentage: 0.9 };
    }) }, options: { indexAxis: "y", scales: { x: { type: "linear", title: { display: true, text: "seconds" } },
      y: { type: "category", labels: lanes } } } });
    var totals = v.spark.phase_totals || [];
    draw("chart-phases", { type: "bar", data: { labels: totals.map(function (t) { return t.phase + " (" + t.side + ")"; }),
      datasets: [{ label: "total seconds", data: totals.map(function (t) { return t.total; }),
        backgroundColor: totals.map(function (t, i) { return PHASE_COLORS[t.phase] || color(i); }) }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: "seconds (all workers)" } } } } });
    var advice = v.spark.advice || [];
    fill(el("advice"), advice.length ? advice.map(function (a) {
      var li = node("li", [node("b", a.title), node("br"), document.createTextNode(text(a.detail))], text(a.severity));
      if (a.setting) { li.appendChild(document.createTextNode(" ")); li.appendChild(node("span", a.setting, "setting")); }
      return li;
    }) : [node("li", ev.length ? "No advice: nothing stood out." : "No Spark phases in this session (local training).", "info")]);
    var m = v.spark.master || {};
    fill(el("master-table"), [node("tbody", Object.keys(m).map(function (k) {
      return node("tr", [node("td", k), node("td", typeof m[k] === "object" ? JSON.stringify(m[k]) : m[k])]);
    }))]);
  }

  // ------------------------------------------------------------------ selectors, refresh
  function selectors(v) {
    var s = el("session-select"), w = el("worker-select");
    function option(value, label, selected) {
      var o = node("option", label);
      o.value = text(value);
      o.selected = selected;
      return o;
    }
    fill(s, (v.sessions || []).map(function (x) {
      var when = new Date(x.start * 1000).toLocaleString();
      return option(x.session_id, text(x.session_id) + " · " + when, !!(v.session && x.session_id === v.session.session_id));
    }));
    fill(w, [option("", "all", false)].concat((v.workers || []).map(function (x) { return option(x, x, x === v.worker); })));
    if (embedded) { s.disabled = true; w.disabled = true; return; }
    s.onchange = function () { params.set("session", s.value); params.delete("worker"); window.location.search = params.toString(); };
    w.onchange = function () { if (w.value) { params.set("worker", w.value); } else { params.delete("worker"); } window.location.search = params.toString(); };
    Array.prototype.forEach.call(document.querySelectorAll("nav a"), function (a) {
      a.href = "/" + a.dataset.nav + (params.toString() ? "?" + params.toString() : "");
    });
  }
  function render(v) {
    state.view = v;
    selectors(v);
    if (!v.session) { el("banner").className = "banner warn"; el("banner").textContent = "No training sessions stored yet."; return; }
    var all = page === "report";
    if (all || page === "overview") { renderOverview(v); }
    if (all || page === "model") { renderModel(v); }
    if (all || page === "system") { renderSystem(v); }
    if (all || page === "spark") { renderSpark(v); }
    document.body.dataset.rendered = String(v.record_count);
  }
  function refresh() {
    var q = new URLSearchParams();
    if (params.get("session")) { q.set("session", params.get("session")); }
    if (params.get("worker")) { q.set("worker", params.get("worker")); }
    fetch("/api/view?" + q.toString()).then(function (r) {
      if (!r.ok) { return r.json().then(function (e) { throw new Error(e.error || r.statusText); }); }
      return r.json();
    }).then(function (v) {
      var live = v.session && !v.finished && (Date.now() / 1000 - v.session.end) < 60;
      el("live").textContent = live ? "● live" : "";
      if (v.record_count !== state.count || !v.session) { state.count = v.record_count; render(v); }
    }).catch(function (e) {
      el("banner").className = "banner bad"; el("banner").textContent = "Cannot load stats: " + e.message;
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll(".page"), function (s) {
    s.style.display = (page === "report" || s.id === "page-" + page) ? "" : "none";
  });
  if (embedded) {
    render(JSON.parse(embedded.textContent));
  } else {
    refresh();
    window.setInterval(refresh, 2000);
  }
})();
