// Refreshes the dashboard by polling its JSON (no framework): every element with data-k gets the
// text of that figure, every chart (svg[data-series]) is redrawn, and the page reloads when its
// make-up changed (a topic or a consumer group appeared). Keep `points` alike gateway/monitoring/charts.py.
(function () {
  "use strict";
  var root = document.querySelector("[data-poll]");
  if (!root) { return; }
  var url = root.getAttribute("data-poll");
  var every = Number(root.getAttribute("data-every")) || 5000;
  var live = document.getElementById("live");

  function points(values, width, height) {
    if (!values.length) { return ""; }
    var top = Math.max(Math.max.apply(null, values), 1);
    var step = width / Math.max(values.length - 1, 1);
    return values.map(function (v, i) {
      return (i * step).toFixed(1) + "," + (height - 1 - (v / top) * (height - 2)).toFixed(1);
    }).join(" ");
  }

  function draw(svg, values) {
    var line = svg.querySelector("polyline");
    var box = svg.viewBox.baseVal;
    line.setAttribute("points", points(values, box.width, box.height));
  }

  function show(state) {
    if (live) { live.textContent = state; live.setAttribute("data-v", state); }
  }

  function apply(data) {
    if (data.structure !== root.getAttribute("data-structure")) { window.location.reload(); return; }
    document.querySelectorAll("[data-k]").forEach(function (el) {
      var value = data.cells[el.getAttribute("data-k")];
      if (value !== undefined && el.textContent !== value) {
        el.textContent = value;
        el.setAttribute("data-v", value);
      }
    });
    document.querySelectorAll("svg[data-series]").forEach(function (svg) {
      draw(svg, data.series[svg.getAttribute("data-series")] || []);
    });
  }

  function refresh() {
    fetch(url, { headers: { accept: "application/json" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) { apply(data); show("live"); })
      .catch(function () { show("not answering"); })
      .then(function () { window.setTimeout(refresh, every); });
  }

  window.setTimeout(refresh, every);
}());
