// The example's script. It proves, in the page itself, what gatehouse did
// for its static files: that this script ran, that the stylesheet applied,
// and how many bytes each file took on the wire against its real size
// (the Resource Timing API's encodedBodySize and decodedBodySize; a smaller
// wire size means the file came compressed). The same facts are written as
// data- attributes on <html> so that a headless browser test can read them
// (cmd/gatehouse's TestExampleInBrowser).
(function () {
  "use strict";

  var root = document.documentElement;
  root.dataset.js = "on";

  function cssApplied() {
    var v = getComputedStyle(root).getPropertyValue("--gatehouse-css");
    return v.trim() === "loaded";
  }

  function shortName(url) {
    var path = new URL(url, location.href).pathname;
    return path.length > 48 ? "\u2026" + path.slice(-47) : path;
  }

  function kind(entry) {
    if (/\.css(\?|$)/.test(entry.name)) return "css";
    if (/\.js(\?|$)/.test(entry.name)) return "js";
    return null;
  }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function badge(ok, yes, no) {
    var span = document.createElement("span");
    span.className = "status " + (ok ? "ok" : "no");
    span.textContent = ok ? yes : no;
    return span;
  }

  function report() {
    var ok = cssApplied();
    root.dataset.css = ok ? "applied" : "missing";

    var table = document.getElementById("delivery");
    var body = table ? table.querySelector("tbody") : null;
    var entries = performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"));
    entries.forEach(function (e) {
      var k = e.entryType === "navigation" ? "html" : kind(e);
      if (!k) return;
      var wire = e.encodedBodySize, size = e.decodedBodySize;
      var compressed = wire > 0 && wire < size;
      root.dataset[k + "Wire"] = String(wire);
      root.dataset[k + "Size"] = String(size);
      root.dataset[k + "Protocol"] = e.nextHopProtocol || "";
      if (!body) return;
      var row = document.createElement("tr");
      cell(row, shortName(e.name));
      cell(row, e.nextHopProtocol || "?");
      cell(row, String(size), "num");
      cell(row, String(wire), "num");
      cell(row, "").appendChild(badge(compressed, "compressed " + Math.round(100 - (100 * wire) / size) + "% smaller", "as is"));
      body.appendChild(row);
    });

    var status = document.getElementById("assets");
    if (status) {
      status.textContent = "";
      status.appendChild(badge(true, "JavaScript ran", ""));
      status.appendChild(document.createTextNode(" "));
      status.appendChild(badge(ok, "stylesheet applied", "stylesheet missing"));
    }
    root.dataset.report = "done";
  }

  if (document.readyState === "complete") {
    report();
  } else {
    window.addEventListener("load", function () {
      // Resource Timing entries are final once load has fired; wait one
      // tick so that the navigation entry has its sizes too.
      setTimeout(report, 0);
    });
  }
})();
