/* Faktory web UI behaviour: confirmations, select-all, and the dashboard's
   live and history charts (plain SVG, no libraries). */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var fmt = new Intl.NumberFormat("en-US");

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  /* -- confirmations and selection ------------------------------------------ */
  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-confirm]");
    if (target && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopPropagation();
    }
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches("[data-check-all]")) return;
    var form = box.closest("form") || document;
    form.querySelectorAll('input[type="checkbox"][name]').forEach(function (c) {
      c.checked = box.checked;
    });
  });

  /* -- charts ---------------------------------------------------------------------- */
  /* The axis top: four equal steps of 1, 2 or 5 times a power of ten. */
  function niceMax(value) {
    if (value <= 4) return 4;
    var raw = value / 4;
    var exp = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * exp >= raw) return 4 * steps[i] * exp;
    }
    return 40 * exp;
  }

  function compact(n) {
    if (n >= 1e9) return (n / 1e9).toFixed(n % 1e9 ? 1 : 0) + "B";
    if (n >= 1e6) return (n / 1e6).toFixed(n % 1e6 ? 1 : 0) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(n % 1e3 ? 1 : 0) + "k";
    return fmt.format(n);
  }

  /* A two-series line chart (processed, failed) drawn into ``box``.
     points: [{label, processed, failed}] */
  function Chart(box, options) {
    this.box = box;
    this.options = options || {};
    this.points = [];
    box.innerHTML = "";
    var legend = document.createElement("div");
    legend.className = "legend";
    legend.innerHTML = '<span class="processed"><i></i>Processed</span><span class="failed"><i></i>Failed</span>';
    box.appendChild(legend);
    this.tip = document.createElement("div");
    this.tip.className = "tip";
    box.appendChild(this.tip);
    this.placeholder = document.createElement("div");
    this.placeholder.className = "placeholder";
    this.placeholder.textContent = this.options.waiting || "Waiting for data…";
    box.appendChild(this.placeholder);
    this.svg = el("svg", { "aria-hidden": "true" }, box);
    var self = this;
    this.svg.addEventListener("mousemove", function (e) { self.hover(e); });
    this.svg.addEventListener("mouseleave", function () { self.unhover(); });
    window.addEventListener("resize", function () { self.draw(); });
  }

  Chart.prototype.set = function (points) {
    this.points = points;
    this.draw();
  };

  Chart.prototype.geometry = function () {
    var w = this.box.clientWidth || 600;
    var h = this.box.clientHeight || 240;
    return { w: w, h: h, left: 52, right: 12, top: 22, bottom: 26 };
  };

  Chart.prototype.draw = function () {
    var svg = this.svg, pts = this.points, g = this.geometry();
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", "0 0 " + g.w + " " + g.h);
    this.placeholder.style.display = pts.length ? "none" : "flex";
    if (!pts.length) return;
    var max = 0;
    pts.forEach(function (p) { max = Math.max(max, p.processed, p.failed); });
    max = niceMax(max);
    var plotW = g.w - g.left - g.right, plotH = g.h - g.top - g.bottom;
    var n = pts.length;
    var x = function (i) { return g.left + (n === 1 ? plotW / 2 : (i * plotW) / (n - 1)); };
    var y = function (v) { return g.top + plotH - (v / max) * plotH; };
    this.x = x;
    var axis = el("g", { "class": "axis" }, svg);
    for (var t = 0; t <= 4; t++) {
      var v = (max * t) / 4, yy = y(v);
      el("line", { "class": "grid", x1: g.left, x2: g.w - g.right, y1: yy, y2: yy }, svg);
      el("text", { x: g.left - 8, y: yy + 4, "text-anchor": "end" }, axis).textContent = compact(v);
    }
    var labels = n <= 8 ? pts.map(function (_, i) { return i; }) : [0, Math.floor((n - 1) / 2), n - 1];
    labels.forEach(function (i) {
      var anchor = n === 1 ? "middle" : i === 0 ? "start" : i === n - 1 ? "end" : "middle";
      el("text", { x: x(i), y: g.h - 6, "text-anchor": anchor }, axis).textContent = pts[i].label;
    });
    ["processed", "failed"].forEach(function (key) {
      var line = pts.map(function (p, i) { return (i ? "L" : "M") + x(i).toFixed(1) + " " + y(p[key]).toFixed(1); }).join(" ");
      if (n === 1) {
        el("circle", { "class": key, cx: x(0), cy: y(pts[0][key]), r: 4 }, svg);
        return;
      }
      var area = line + " L" + x(n - 1).toFixed(1) + " " + y(0) + " L" + x(0).toFixed(1) + " " + y(0) + " Z";
      el("path", { "class": "area " + key, d: area }, svg);
      el("path", { "class": "line " + key, d: line }, svg);
    });
    this.cursor = el("line", { "class": "cursor", y1: g.top, y2: g.top + plotH, x1: 0, x2: 0, visibility: "hidden" }, svg);
  };

  Chart.prototype.hover = function (event) {
    var pts = this.points;
    if (!pts.length || !this.x) return;
    var rect = this.svg.getBoundingClientRect();
    var px = ((event.clientX - rect.left) / rect.width) * this.geometry().w;
    var best = 0, dist = Infinity;
    for (var i = 0; i < pts.length; i++) {
      var d = Math.abs(this.x(i) - px);
      if (d < dist) { dist = d; best = i; }
    }
    var p = pts[best], cx = this.x(best);
    this.cursor.setAttribute("x1", cx);
    this.cursor.setAttribute("x2", cx);
    this.cursor.setAttribute("visibility", "visible");
    this.tip.textContent = "";
    var strong = document.createElement("strong");
    strong.textContent = p.title || p.label;
    this.tip.appendChild(strong);
    this.tip.appendChild(document.createElement("br"));
    this.tip.appendChild(document.createTextNode(fmt.format(p.processed) + " processed, " + fmt.format(p.failed) + " failed"));
    this.tip.style.left = (cx / this.geometry().w) * rect.width + "px";
    this.tip.style.top = "2rem";
    this.tip.classList.add("show");
  };

  Chart.prototype.unhover = function () {
    this.tip.classList.remove("show");
    if (this.cursor) this.cursor.setAttribute("visibility", "hidden");
  };

  /* -- history chart ----------------------------------------------------------- */
  function historyChart() {
    var box = document.getElementById("history-chart");
    if (!box) return;
    var data = JSON.parse(box.getAttribute("data-history") || "[]");
    var chart = new Chart(box, { waiting: "No history yet." });
    chart.set(data.map(function (d) {
      return { label: d.date.slice(5), title: d.date, processed: d.processed, failed: d.failed };
    }));
    box.chart = chart;
  }

  /* -- live chart ------------------------------------------------------------------ */
  function uptime(seconds) {
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }

  function setText(selector, text) {
    document.querySelectorAll(selector).forEach(function (node) { node.textContent = text; });
  }

  function liveChart() {
    var box = document.getElementById("live-chart");
    if (!box) return;
    var chart = new Chart(box);
    box.chart = chart;
    var url = box.getAttribute("data-stats-url");
    var slider = document.getElementById("poll-interval");
    var output = document.getElementById("poll-interval-value");
    var stored = parseInt(window.localStorage.getItem("timeInterval") || "5000", 10);
    var interval = Math.max(2000, isNaN(stored) ? 5000 : stored);
    var last = null, timer = null, points = [];
    slider.value = interval;
    output.textContent = interval / 1000 + " s";

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(poll, interval);
    }

    function update(stats) {
      var fk = stats.faktory, srv = stats.server;
      var now = new Date();
      var label = now.toTimeString().slice(0, 8);
      if (last) {
        points.push({
          label: label,
          processed: Math.max(0, fk.total_processed - last.total_processed),
          failed: Math.max(0, fk.total_failures - last.total_failures),
        });
        if (points.length > 100) points.shift();
        chart.set(points);
      }
      last = fk;
      var stat = {
        processed: fk.total_processed, failed: fk.total_failures, busy: fk.sets.working,
        enqueued: fk.total_enqueued, retries: fk.sets.retries, scheduled: fk.sets.scheduled, dead: fk.sets.dead,
      };
      for (var k in stat) setText('[data-stat="' + k + '"]', fmt.format(stat[k]));
      setText('[data-server="connections"]', fmt.format(srv.connections));
      setText('[data-server="command_count"]', fmt.format(srv.command_count));
      setText('[data-server="used_memory_mb"]', fmt.format(srv.used_memory_mb) + " MB");
      setText('[data-server="uptime"]', uptime(srv.uptime));
      setText("[data-clock]", stats.server_utc_time);
      var status = document.querySelector("[data-status]");
      if (status) {
        var active = fk.sets.working > 0;
        status.className = "status " + (active ? "active" : "idle");
        status.querySelector(".status-text").textContent = active ? "active" : "idle";
      }
      var beacon = document.getElementById("beacon");
      if (beacon) {
        beacon.classList.add("pulse");
        setTimeout(function () { beacon.classList.remove("pulse"); }, 300);
      }
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(update)
        .catch(function () { /* server restarting: try again next tick */ })
        .then(schedule);
    }

    slider.addEventListener("input", function () {
      interval = Math.max(2000, parseInt(slider.value, 10) || 5000);
      output.textContent = interval / 1000 + " s";
    });
    slider.addEventListener("change", function () {
      window.localStorage.setItem("timeInterval", String(interval));
      schedule();
    });
    poll();
  }

  /* -- live lists ------------------------------------------------------------------ */
  /* List and job pages fetch their own URL at the polling interval and swap
     in what changed: every table body and every [data-live] part when the
     rest of the page has the same shape, the whole page body otherwise.
     While the operator works on the page (a row ticked, a field edited or
     focused, text selected, a JSON view open) the refresh waits. */
  function operatorBusy(root) {
    if (root.querySelector('input[type="checkbox"]:checked')) return true;
    var fields = root.querySelectorAll('input[type="text"], input[type="search"]');
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) return true;
    }
    var focus = document.activeElement;
    if (focus && root.contains(focus) && focus.matches('input[type="text"], input[type="search"], select, textarea')) return true;
    if (root.querySelector("details[open]")) return true;
    var sel = window.getSelection && window.getSelection();
    return !!(sel && !sel.isCollapsed && String(sel).trim());
  }

  function liveParts(root) {
    return Array.prototype.filter.call(root.querySelectorAll("tbody, [data-live]"), function (node) {
      var up = node.parentElement.closest("tbody, [data-live]");
      return !up || !root.contains(up);
    });
  }

  /* The page without its live parts: equal shapes mean only those changed. */
  function shape(root) {
    var copy = root.cloneNode(true);
    liveParts(copy).forEach(function (node) { node.innerHTML = ""; });
    return copy.innerHTML;
  }

  function swapLive(root, fresh) {
    var checked = {};
    root.querySelectorAll('input[type="checkbox"][name]:checked').forEach(function (c) {
      checked[c.name + "\n" + c.value] = true;
    });
    var mine = liveParts(root), theirs = liveParts(fresh);
    if (mine.length === theirs.length && shape(root) === shape(fresh)) {
      mine.forEach(function (node, i) { node.replaceWith(document.importNode(theirs[i], true)); });
    } else {
      root.innerHTML = fresh.innerHTML;
    }
    root.querySelectorAll('input[type="checkbox"][name]').forEach(function (c) {
      if (checked[c.name + "\n" + c.value]) c.checked = true;
    });
  }

  function liveList() {
    var control = document.getElementById("live-control");
    var root = document.querySelector("[data-live-root]");
    if (!control || !root) return;
    var slider = document.getElementById("poll-interval");
    var output = document.getElementById("poll-interval-value");
    var state = control.querySelector("[data-live-state]");
    var stored = parseInt(window.localStorage.getItem("timeInterval") || "5000", 10);
    var interval = Math.max(2000, isNaN(stored) ? 5000 : stored);
    var timer = null;
    slider.value = interval;
    output.textContent = interval / 1000 + " s";
    var main = root.closest("main") || root;

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(poll, interval);
    }

    function paused(yes) {
      state.textContent = yes ? state.getAttribute("data-paused-text") : "";
      control.classList.toggle("paused", yes);
    }

    function apply(html) {
      if (operatorBusy(main)) return paused(true);
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.querySelector("[data-live-root]");
      if (!fresh) return;
      var mine = main.querySelector('[data-live="actions"]'), theirs = doc.querySelector('[data-live="actions"]');
      if (mine && theirs) mine.replaceWith(document.importNode(theirs, true));
      swapLive(root, fresh);
      doc.querySelectorAll("[data-stat]").forEach(function (node) {
        setText('[data-stat="' + node.getAttribute("data-stat") + '"]', node.textContent);
      });
      document.dispatchEvent(new CustomEvent("faktory:refreshed"));
      var beacon = document.getElementById("beacon");
      beacon.classList.add("pulse");
      setTimeout(function () { beacon.classList.remove("pulse"); }, 300);
    }

    function poll() {
      if (document.hidden || operatorBusy(main)) {
        paused(!document.hidden);
        return schedule();
      }
      paused(false);
      fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) {
          if (r.redirected || (r.status !== 200 && r.status !== 404)) throw new Error(r.status);
          return r.text();
        })
        .then(apply)
        .catch(function () { /* gone or restarting: try again next tick */ })
        .then(schedule);
    }

    slider.addEventListener("input", function () {
      interval = Math.max(2000, parseInt(slider.value, 10) || 5000);
      output.textContent = interval / 1000 + " s";
    });
    slider.addEventListener("change", function () {
      window.localStorage.setItem("timeInterval", String(interval));
      schedule();
    });
    schedule();
  }

  function start() {
    historyChart();
    liveChart();
    liveList();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
