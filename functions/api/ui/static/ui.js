// The web UI's only script (no inline script runs under the CSP): charts, confirmations and the
// column picker's search. htmx (vendored) does the partial updates declared in the markup.
(function () {
  "use strict";

  var COLORS = ["#2f5bea", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8",
                "#0c8599", "#e67700", "#5c940d", "#862e9c", "#495057"];

  // Every run's steps merged into one x axis (uPlot's data layout); a run without a point at a
  // step gets null there, and the line spans the gap.
  function align(runs, key, histories) {
    var steps = {};
    runs.forEach(function (run) {
      var series = (histories[run.id] || {})[key];
      if (series) series[0].forEach(function (step) { steps[step] = true; });
    });
    var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
    var index = {};
    xs.forEach(function (step, i) { index[step] = i; });
    var data = [xs];
    runs.forEach(function (run) {
      var ys = new Array(xs.length).fill(null);
      var series = (histories[run.id] || {})[key];
      if (series) series[0].forEach(function (step, i) { ys[index[step]] = series[1][i]; });
      data.push(ys);
    });
    return data;
  }

  function draw(figure, runs, histories) {
    var key = figure.getAttribute("data-key");
    var target = figure.querySelector(".plot");
    var data = align(runs, key, histories);
    target.textContent = "";
    if (data[0].length === 0) {
      target.textContent = "no points";
      return;
    }
    var series = [{ label: "step" }];
    runs.forEach(function (run, i) {
      series.push({ label: run.label, stroke: COLORS[i % COLORS.length], width: 1.5,
                    spanGaps: true, points: { show: data[0].length < 60 } });
    });
    var width = Math.max(300, target.clientWidth || figure.clientWidth - 16);
    new uPlot({ width: width, height: 220, series: series, scales: { x: { time: false } },
                axes: [{ label: "step" }, {}] }, data, target);
    figure.setAttribute("data-drawn", "true");
  }

  function charts() {
    var section = document.getElementById("charts");
    if (!section) return;
    var figures = Array.prototype.slice.call(section.querySelectorAll("figure.chart"));
    if (figures.length === 0) return;
    var runs = JSON.parse(section.getAttribute("data-runs") || "[]");
    // One request for every chart of the page (the server's bulk history read).
    fetch(section.getAttribute("data-src"), { credentials: "same-origin",
                                              headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("histories: HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        var histories = body.runs || {};
        section.setAttribute("data-loaded", "true");
        // Charts are drawn as they scroll into view, not all at once.
        var observer = new IntersectionObserver(function (entries) {
          entries.forEach(function (entry) {
            if (entry.isIntersecting) {
              observer.unobserve(entry.target);
              draw(entry.target, runs, histories);
            }
          });
        }, { rootMargin: "200px" });
        figures.forEach(function (figure) { observer.observe(figure); });
      })
      .catch(function (error) {
        figures.forEach(function (figure) {
          figure.querySelector(".plot").textContent = "could not load: " + error.message;
        });
      });
  }

  function confirmations() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var question = form.getAttribute && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) event.preventDefault();
    });
  }

  function picker() {
    document.querySelectorAll(".picker-filter").forEach(function (input) {
      input.addEventListener("input", function () {
        var wanted = input.value.toLowerCase();
        var form = input.closest("form");
        form.querySelectorAll("label.pick").forEach(function (label) {
          var hide = wanted && label.textContent.toLowerCase().indexOf(wanted) < 0;
          label.classList.toggle("hidden", Boolean(hide));
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    charts();
    confirmations();
    picker();
  });
})();
