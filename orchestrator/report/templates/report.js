/* farm report: sortable tables and the charts. Plain JavaScript, no library but plotly.js. */
(function () {
  "use strict";

  /* --- sorting: click a header; numbers by data-sort, empty cells always last --- */
  function cellKey(row, column, numeric) {
    var cell = row.cells[column];
    if (!cell) { return null; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "" || raw === "—") { return null; }
    if (numeric) {
      var number = parseFloat(raw);
      return isNaN(number) ? null : number;
    }
    return raw.toLowerCase();
  }

  function sortTable(table, header) {
    var headers = Array.prototype.slice.call(header.parentNode.cells);
    var column = headers.indexOf(header);
    var numeric = header.getAttribute("data-type") === "num";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    headers.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, index) {
      return { row: row, index: index, key: cellKey(row, column, numeric) };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === b.key) { return a.index - b.index; }
        return a.key === null ? 1 : -1;
      }
      var order = numeric ? a.key - b.key : a.key.localeCompare(b.key, undefined, { numeric: true });
      if (order === 0) { return a.index - b.index; }
      return ascending ? order : -order;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header) {
      var button = header.querySelector("button");
      (button || header).addEventListener("click", function () { sortTable(table, header); });
    });
  });

  /* --- charts: plotly.js and the figure specs arrive gzip + base64 (a third of their size);
     the browser's own DecompressionStream unpacks them, nothing is fetched --- */
  var source = document.getElementById("farm-figures");
  if (!source) { document.documentElement.setAttribute("data-charts", "drawn"); return; }

  function chartError(text) {
    Array.prototype.forEach.call(document.querySelectorAll(".chart"), function (div) {
      if (div.getAttribute("data-drawn") === "true") { return; }
      div.className += " chart-error";
      div.textContent = text;
    });
    document.documentElement.setAttribute("data-charts", "failed");
  }

  function unpack(id) {
    var text = document.getElementById(id).textContent.trim();
    var binary = window.atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) { bytes[i] = binary.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new window.DecompressionStream("gzip"));
    return new Response(stream).text();
  }

  if (typeof window.DecompressionStream === "undefined") {
    chartError("The charts need a browser with DecompressionStream (Chrome/Edge 80+, Firefox 113+, Safari 16.4+).");
    return;
  }
  Promise.all([unpack("farm-plotly"), unpack("farm-figures")]).then(function (texts) {
    (0, eval)(texts[0]);  // plotly.js, run at global scope like a <script>: defines window.Plotly
    startCharts(JSON.parse(texts[1]));
  }).catch(function (error) {
    chartError("The charts could not be unpacked: " + error);
    throw error;
  });

  function startCharts(specs) {
    window.farmReport = { specs: specs };
    if (typeof window.Plotly === "undefined") {
      chartError("The charts could not be drawn (plotly.js did not load).");
      return;
    }
    var config = {
      responsive: true, displaylogo: false, showLink: false, showSendToCloud: false, showEditInChartStudio: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
      toImageButtonOptions: { format: "png", scale: 2 }
    };
    var pending = specs.slice();
    var scheduled = false;

    function draw(spec) {
      var div = document.getElementById(spec.id);
      if (!div) { return; }
      // the box keeps the figure's height: plotly's responsive resize sizes the plot to its box
      if (spec.layout.height) { div.style.height = spec.layout.height + "px"; }
      try {
        window.Plotly.newPlot(div, spec.data, spec.layout, config);
        div.on("plotly_afterplot", function () { hideCrowdedLabels(div); });
        hideCrowdedLabels(div);
        div.setAttribute("data-drawn", "true");
      } catch (error) {
        div.className += " chart-error";
        div.textContent = "This chart could not be drawn: " + error;
        throw error;
      }
    }

    /* Point labels (variant names, phase names) that would sit on one already shown are
       hidden, whatever the chart's width: the hover still names every point. */
    function hideCrowdedLabels(div) {
      var shown = [];
      Array.prototype.forEach.call(div.querySelectorAll(".textpoint text"), function (text) {
        text.style.visibility = "";
        if (!text.textContent) { return; }
        var box = text.getBoundingClientRect();
        if (!box.width) { return; }
        var crowded = shown.some(function (other) {
          return box.left < other.right && other.left < box.right && box.top < other.bottom && other.top < box.bottom;
        });
        if (crowded) { text.style.visibility = "hidden"; } else { shown.push(box); }
      });
    }

    function finished() {
      document.documentElement.setAttribute("data-charts", "drawn");
      document.dispatchEvent(new Event("farm:charts-drawn"));
    }

    /* Draw one chart per task so the page stays responsive while a big farm's charts come in;
       charts scrolled into view jump the queue. */
    function drawNext() {
      scheduled = false;
      var spec = pending.shift();
      if (spec) { draw(spec); }
      if (pending.length) { schedule(); } else { finished(); }
    }
    function schedule() {
      if (!scheduled) { scheduled = true; window.setTimeout(drawNext, 0); }
    }
    function drawAll() {
      while (pending.length) { draw(pending.shift()); }
      finished();
    }
    if ("IntersectionObserver" in window) {
      var observer = new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (!entry.isIntersecting) { return; }
          observer.unobserve(entry.target);
          for (var i = 0; i < pending.length; i += 1) {
            if (pending[i].id === entry.target.id) { pending.unshift(pending.splice(i, 1)[0]); break; }
          }
        });
      }, { rootMargin: "200px" });
      specs.forEach(function (spec) {
        var div = document.getElementById(spec.id);
        if (div) { observer.observe(div); }
      });
    }
    if (pending.length) { schedule(); } else { finished(); }

    /* --- print: open the fact lists and fit the charts to the paper width --- */
    function resizeCharts() {
      Array.prototype.forEach.call(document.querySelectorAll(".chart.js-plotly-plot"), function (div) {
        window.Plotly.Plots.resize(div);
      });
    }
    window.addEventListener("beforeprint", function () {
      Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
      if (pending.length) { drawAll(); }
      resizeCharts();
    });
    window.addEventListener("afterprint", resizeCharts);
  }
})();
