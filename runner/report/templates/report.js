// lrun report: table sorting and the hover read-out of charts. The page is complete without it.
(function () {
  "use strict";
  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    return v === null ? cell.textContent.trim().toLowerCase() : v;
  }
  function compare(a, b) {
    if (a === b) return 0;
    if (a === "") return 1;  // missing values last
    if (b === "") return -1;
    var x = parseFloat(a), y = parseFloat(b);
    if (!isNaN(x) && !isNaN(y) && String(x) !== "NaN") return x - y;
    return a < b ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var head = table.tHead;
    if (!head) return;
    var row = head.rows[head.rows.length - 1];
    Array.prototype.forEach.call(row.cells, function (th) {
      th.addEventListener("click", function () {
        var index = 0, cells = row.cells;
        for (var i = 0; i < cells.length && cells[i] !== th; i++) index += cells[i].colSpan;
        if (head.rows.length > 1) index += 1;  // the first column spans both header rows
        var descending = th.getAttribute("aria-sort") !== "descending" && th.classList.contains("n")
          ? true : th.getAttribute("aria-sort") === "ascending";
        Array.prototype.forEach.call(head.querySelectorAll("th"), function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var c = compare(cellValue(a, index), cellValue(b, index));
          return descending && cellValue(a, index) !== "" && cellValue(b, index) !== "" ? -c : c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  var tip = document.getElementById("tip");
  var units = { "ms": " ms", "/s": "/s", "%": "%", "": "" };
  function show(value, unit) {
    if (unit === "bytes") {
      var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
      while (Math.abs(value) >= 1024 && i < u.length - 1) { value /= 1024; i++; }
      return value.toFixed(i ? 1 : 0) + " " + u[i];
    }
    return (Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2)) + (units[unit] || "");
  }
  function clock(s) {
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
  }
  document.querySelectorAll("svg.chart[data-box]:not(.bars)").forEach(function (svg) {
    var box = svg.getAttribute("data-box").split(" ").map(Number);
    var x0 = +svg.getAttribute("data-x0"), x1 = +svg.getAttribute("data-x1"), origin = +svg.getAttribute("data-origin");
    var y1 = +svg.getAttribute("data-y1"), unit = svg.getAttribute("data-unit") || "";
    var lines = Array.prototype.map.call(svg.querySelectorAll("path.line"), function (path) {
      var pts = [], re = /[ML]([\d.-]+) ([\d.-]+)/g, m;
      while ((m = re.exec(path.getAttribute("d")))) pts.push([+m[1], +m[2]]);
      return { label: path.getAttribute("data-label"), pts: pts };
    });
    var cursor = document.createElementNS("http://www.w3.org/2000/svg", "line");
    cursor.setAttribute("class", "cursor");
    cursor.setAttribute("y1", box[1]);
    cursor.setAttribute("y2", box[1] + box[3]);
    cursor.style.display = "none";
    svg.appendChild(cursor);
    svg.addEventListener("mousemove", function (event) {
      var rect = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal;
      var px = (event.clientX - rect.left) * vb.width / rect.width;
      if (px < box[0] || px > box[0] + box[2]) { tip.hidden = true; cursor.style.display = "none"; return; }
      var rows = [];
      lines.forEach(function (line) {
        var best = null;
        line.pts.forEach(function (p) { if (!best || Math.abs(p[0] - px) < Math.abs(best[0] - px)) best = p; });
        if (best && Math.abs(best[0] - px) < 12) rows.push(line.label + ": " + show((box[1] + box[3] - best[1]) / box[3] * y1, unit));
      });
      var t = x0 + (px - box[0]) / box[2] * (x1 - x0) - origin;
      cursor.setAttribute("x1", px);
      cursor.setAttribute("x2", px);
      cursor.style.display = "";
      tip.textContent = "";
      [clock(t)].concat(rows).forEach(function (text, i) {
        var div = document.createElement(i ? "div" : "b");
        div.textContent = text;
        tip.appendChild(div);
      });
      tip.hidden = false;
      tip.style.left = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
      tip.style.top = (event.clientY + 14) + "px";
    });
    svg.addEventListener("mouseleave", function () { tip.hidden = true; cursor.style.display = "none"; });
  });
})();
