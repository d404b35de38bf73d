/* Faktory web UI behaviour: confirmations, select-all, the language
   selector, and the dashboard's live and history charts (plain SVG, no
   libraries).

   Words come from the server: <html data-i18n> holds the served locale, its
   direction and the translations of every _("...") below (the server
   extracts them from this file).  Numbers, times and durations use Intl with
   that locale, so they read as the server's do. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var I18N = { locale: "en", dir: "ltr", messages: {} };
  try {
    I18N = JSON.parse(document.documentElement.getAttribute("data-i18n") || "{}");
  } catch (e) { /* keep English */ }
  /* Latin digits, as the server's Babel writes them (Intl would use
     Arabic-Indic digits for "ar", and the numbers would change on refresh). */
  var LOCALE = (I18N.locale || "en") + "-u-nu-latn";
  var RTL = I18N.dir === "rtl";
  var fmt = new Intl.NumberFormat(LOCALE);
  var compactFmt = new Intl.NumberFormat(LOCALE, { notation: "compact", maximumFractionDigits: 1 });

  /* The served translation of an English message; {name} from values. */
  function _(message, values) {
    var text = (I18N.messages && I18N.messages[message]) || message;
    return text.replace(/\{(\w+)\}/g, function (all, name) {
      return values && name in values ? String(values[name]) : all;
    });
  }

  function unit(value, name) {
    return new Intl.NumberFormat(LOCALE, { style: "unit", unit: name, unitDisplay: "short", maximumFractionDigits: 1 }).format(value);
  }

  /* As the server writes durations: '3 days 4 hr', '12 min', '1.5 sec'. */
  function duration(seconds) {
    if (seconds < 1) return unit(Math.round(seconds * 1000), "millisecond");
    if (seconds < 60) return unit(Math.round(seconds * 10) / 10, "second");
    if (seconds < 3600) return unit(Math.round(seconds / 60), "minute");
    if (seconds < 86400) return unit(Math.floor(seconds / 3600), "hour") + " " + unit(Math.floor((seconds % 3600) / 60), "minute");
    return unit(Math.floor(seconds / 86400), "day") + " " + unit(Math.floor((seconds % 86400) / 3600), "hour");
  }

  /* '3 minutes ago' / 'in 5 minutes' in the served locale. */
  /* '3 minutes ago' / 'in 5 minutes' in the served locale, rounded as the
     server's Babel rounds (largest unit reaching 1, weeks included), so a
     time the script rewrites reads as the server wrote it. */
  var relFmt = new Intl.RelativeTimeFormat(LOCALE, { numeric: "always" });
  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60], ["second", 1]];
  function relativeTime(date, now) {
    var delta = (date.getTime() - (now || new Date()).getTime()) / 1000;
    if (delta > -5 && delta <= 0) return _("just now");
    var abs = Math.abs(delta);
    for (var i = 0; i < UNITS.length; i++) {
      var value = abs / UNITS[i][1];
      if (value >= 1 || i === UNITS.length - 1) {
        value = Math.max(1, Math.round(value));
        return relFmt.format(delta < 0 ? -value : value, UNITS[i][0]);
      }
    }
  }

  /* Keep the page's relative times true while it stays open. */
  function refreshTimes() {
    var now = new Date();
    document.querySelectorAll("time[datetime]").forEach(function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (!isNaN(when.getTime())) node.textContent = relativeTime(when, now);
    });
  }

  var clockFmt = new Intl.DateTimeFormat(LOCALE, { timeStyle: "medium", timeZone: "UTC" });
  var dayFmt = new Intl.DateTimeFormat(LOCALE, { month: "short", day: "numeric", timeZone: "UTC" });
  var dateFmt = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeZone: "UTC" });
  var timeFmt = new Intl.DateTimeFormat(LOCALE, { timeStyle: "medium" });

  /* Shared with other scripts of the UI. */
  window.Faktory = { _: _, locale: LOCALE, rtl: RTL, number: function (n) { return fmt.format(n); },
    duration: duration, relativeTime: relativeTime };

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

  /* -- language selector: submit on change (the button is for no script) -- */
  document.documentElement.classList.add("js");
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches(".language select")) select.form.submit();
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
    return n >= 1e4 ? compactFmt.format(n) : fmt.format(n);
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
    [["processed", _("Processed")], ["failed", _("Failed")]].forEach(function (item) {
      var span = document.createElement("span");
      span.className = item[0];
      span.appendChild(document.createElement("i"));
      span.appendChild(document.createTextNode(item[1]));
      legend.appendChild(span);
    });
    box.appendChild(legend);
    this.tip = document.createElement("div");
    this.tip.className = "tip";
    box.appendChild(this.tip);
    this.placeholder = document.createElement("div");
    this.placeholder.className = "placeholder";
    this.placeholder.textContent = this.options.waiting || _("Waiting for data…");
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
    /* Right to left, time runs leftwards and the axis stands on the right. */
    return RTL ? { w: w, h: h, left: 12, right: 52, top: 22, bottom: 26 }
      : { w: w, h: h, left: 52, right: 12, top: 22, bottom: 26 };
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
    var x = function (i) {
      var off = n === 1 ? plotW / 2 : (i * plotW) / (n - 1);
      return RTL ? g.w - g.right - off : g.left + off;
    };
    var y = function (v) { return g.top + plotH - (v / max) * plotH; };
    this.x = x;
    /* Labels read in the page's direction; their anchors are given as
       physical sides (start = the label extends rightwards), which a
       right-to-left label names the other way round. */
    var axis = el("g", { "class": "axis", direction: RTL ? "rtl" : "ltr" }, svg);
    var side = function (a) { return RTL && a !== "middle" ? (a === "start" ? "end" : "start") : a; };
    for (var t = 0; t <= 4; t++) {
      var v = (max * t) / 4, yy = y(v);
      el("line", { "class": "grid", x1: g.left, x2: g.w - g.right, y1: yy, y2: yy }, svg);
      var ax = RTL ? { x: g.w - g.right + 8, y: yy + 4, "text-anchor": side("start") } : { x: g.left - 8, y: yy + 4, "text-anchor": "end" };
      el("text", ax, axis).textContent = compact(v);
    }
    var labels = n <= 8 ? pts.map(function (_, i) { return i; }) : [0, Math.floor((n - 1) / 2), n - 1];
    labels.forEach(function (i) {
      var first = RTL ? "end" : "start", end = RTL ? "start" : "end";
      var anchor = n === 1 ? "middle" : i === 0 ? first : i === n - 1 ? end : "middle";
      el("text", { x: x(i), y: g.h - 6, "text-anchor": side(anchor) }, axis).textContent = pts[i].label;
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
    this.tip.appendChild(document.createTextNode(
      _("{processed} processed, {failed} failed", { processed: fmt.format(p.processed), failed: fmt.format(p.failed) })));
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
    var chart = new Chart(box, { waiting: _("No history yet.") });
    chart.set(data.map(function (d) {
      var day = new Date(d.date + "T00:00:00Z");
      return { label: dayFmt.format(day), title: dateFmt.format(day), processed: d.processed, failed: d.failed };
    }));
    box.chart = chart;
  }

  /* -- live chart ------------------------------------------------------------------ */
  /* The server's UTC time of day ("HH:MM:SS UTC") in the locale's words. */
  function serverClock(text) {
    var m = /^(\d\d):(\d\d):(\d\d)/.exec(text || "");
    if (!m) return text;
    var now = new Date();
    var t = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), +m[1], +m[2], +m[3]);
    return clockFmt.format(new Date(t)) + " UTC";
  }

  function setText(selector, text) {
    document.querySelectorAll(selector).forEach(function (node) { node.textContent = text; });
  }

  /* The polling interval both live views share: the slider and its label, the
     choice kept in localStorage, and a timer. Returns schedule(): run tick()
     once, an interval from now (never sooner than floor() ms, if given). */
  function poller(tick, floor) {
    var slider = document.getElementById("poll-interval");
    var output = document.getElementById("poll-interval-value");
    var stored = parseInt(window.localStorage.getItem("timeInterval") || "5000", 10);
    var interval = Math.max(2000, isNaN(stored) ? 5000 : stored);
    var timer = null;
    slider.value = interval;
    output.textContent = duration(interval / 1000);

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(tick, floor ? Math.max(interval, floor()) : interval);
    }

    slider.addEventListener("input", function () {
      interval = Math.max(2000, parseInt(slider.value, 10) || 5000);
      output.textContent = duration(interval / 1000);
    });
    slider.addEventListener("change", function () {
      window.localStorage.setItem("timeInterval", String(interval));
      schedule();
    });
    return schedule;
  }

  /* The header's beacon blinks once at each refresh. */
  function pulse() {
    var beacon = document.getElementById("beacon");
    if (!beacon) return;
    beacon.classList.add("pulse");
    setTimeout(function () { beacon.classList.remove("pulse"); }, 300);
  }

  function liveChart() {
    var box = document.getElementById("live-chart");
    if (!box) return;
    var chart = new Chart(box);
    box.chart = chart;
    var url = box.getAttribute("data-stats-url");
    var last = null, points = [];
    var schedule = poller(poll);

    function update(stats) {
      var fk = stats.faktory, srv = stats.server;
      var now = new Date();
      var label = timeFmt.format(now);
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
      setText('[data-server="used_memory_mb"]', _("{n} MB", { n: fmt.format(srv.used_memory_mb) }));
      setText('[data-server="uptime"]', duration(srv.uptime));
      setText("[data-clock]", serverClock(stats.server_utc_time));
      var status = document.querySelector("[data-status]");
      if (status) {
        var active = fk.sets.working > 0;
        status.className = "status " + (active ? "active" : "idle");
        status.querySelector(".status-text").textContent = active ? _("active") : _("idle");
        status.title = _("Jobs in progress: {n}", { n: fmt.format(fk.sets.working) });
      }
      pulse();
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(update)
        .catch(function () { /* server restarting: try again next tick */ })
        .then(schedule);
    }

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
      mine.forEach(function (node, i) {
        // Parts that did not change stay the very same elements.
        if (node.outerHTML !== theirs[i].outerHTML) node.replaceWith(document.importNode(theirs[i], true));
      });
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
    var state = control.querySelector("[data-live-state]");
    var main = root.closest("main") || root;
    // A page drawn by scanning a queue or set says how often it may be redrawn.
    var floor = parseInt(control.getAttribute("data-min-interval") || "2000", 10) || 2000;
    var schedule = poller(poll, function () { return floor; });

    function paused(yes) {
      state.textContent = yes ? state.getAttribute("data-paused-text") : "";
      control.classList.toggle("paused", yes);
    }

    function apply(html) {
      if (operatorBusy(main)) return paused(true);
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.querySelector("[data-live-root]");
      if (!fresh) return;
      var next = doc.getElementById("live-control");
      if (next) floor = parseInt(next.getAttribute("data-min-interval") || "2000", 10) || 2000;
      var mine = main.querySelector('[data-live="actions"]'), theirs = doc.querySelector('[data-live="actions"]');
      if (mine && theirs && mine.outerHTML !== theirs.outerHTML) mine.replaceWith(document.importNode(theirs, true));
      swapLive(root, fresh);
      doc.querySelectorAll("[data-stat]").forEach(function (node) {
        setText('[data-stat="' + node.getAttribute("data-stat") + '"]', node.textContent);
      });
      document.dispatchEvent(new CustomEvent("faktory:refreshed"));
      pulse();
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

    schedule();
  }

  function start() {
    historyChart();
    liveChart();
    liveList();
    setInterval(refreshTimes, 15000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
