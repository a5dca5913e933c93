// Draws the dashboard's charts from the page's own data (the same tables as shown and exported).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var tables = {};
  data.tables.forEach(function (t) { tables[t.key] = t; });
  var palette = ["#b42318", "#1570ef", "#067647", "#b54708", "#6941c6", "#52606d"];
  var charts = [];

  function val(cell) { return cell && !cell.suppressed ? cell.value : null; }
  function draw(id, option) {
    var el = document.getElementById(id);
    if (!el || !window.echarts) { return; }
    var chart = window.echarts.init(el, null, { renderer: "canvas" });
    option.animation = false;
    option.color = palette;
    option.textStyle = { fontFamily: "Noto Sans CJK SC, PingFang SC, Microsoft YaHei, sans-serif" };
    chart.setOption(option);
    charts.push(chart);
  }
  function narrow() { return window.innerWidth < 720; }

  var pyramid = tables.pyramid;
  if (pyramid) {
    var rows = pyramid.rows.filter(function (r) { return r.label !== "年龄不详"; });
    var sexes = pyramid.columns;
    draw("chart-pyramid", {
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" },
        valueFormatter: function (v) { return v === null || v === undefined ? "*" : Math.abs(v); } },
      legend: { top: 0, data: sexes.slice(0, 2) },
      grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
      xAxis: { type: "value", axisLabel: { formatter: function (v) { return Math.abs(v); } } },
      yAxis: { type: "category", data: rows.map(function (r) { return r.label; }), axisTick: { show: false } },
      series: sexes.slice(0, 2).map(function (name, i) {
        return { name: name, type: "bar", stack: "sex", barCategoryGap: "15%",
          data: rows.map(function (r) { var v = val(r.cells[i]); return v === null ? null : (i === 0 ? -v : v); }) };
      })
    });
  }

  var trend = tables.trend;
  if (trend) {
    draw("chart-trend", {
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: ["合计"].concat(trend.columns) },
      grid: { left: 8, right: 16, top: narrow() ? 56 : 36, bottom: 8, containLabel: true },
      // Month ends as YYYY-MM, the date itself as MM-DD (it must fit at the right edge on a phone).
      xAxis: { type: "category", data: trend.rows.map(function (r, i) {
        return i === trend.rows.length - 1 ? r.label.slice(5) : r.label.replace("月末", ""); }) },
      yAxis: { type: "value", scale: true },
      series: [{ name: "合计", type: "line", data: trend.rows.map(function (r) { return val(r.total); }) }].concat(
        trend.columns.map(function (name, i) {
          return { name: name, type: "line", data: trend.rows.map(function (r) { return val(r.cells[i]); }) };
        }))
    });
  }

  var flows = tables.flows;
  if (flows) {
    draw("chart-flows", {
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: flows.columns },
      grid: { left: 8, right: 16, top: narrow() ? 56 : 36, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: flows.rows.map(function (r) { return r.label; }) },
      yAxis: { type: "value", minInterval: 1 },
      series: flows.columns.map(function (name, i) {
        return { name: name, type: "bar", data: flows.rows.map(function (r) { return val(r.cells[i]); }) };
      })
    });
  }

  var origin = tables.origin, typeSex = tables.type_sex;
  if (origin && typeSex) {
    var top = origin.rows.filter(function (r) { return val(r.cells[0]) !== null; }).slice(0, 10).reverse();
    draw("chart-origin", {
      tooltip: { trigger: "item" },
      legend: { left: 0, top: 24, orient: "vertical", data: typeSex.rows.map(function (r) { return r.label; }) },
      title: [{ text: "人口类型", left: "22%", top: 0, textAlign: "center", textStyle: { fontSize: 13 } },
              { text: "流动人口来源地（前10）", left: "72%", top: 0, textAlign: "center", textStyle: { fontSize: 13 } }],
      grid: { left: "48%", right: 16, top: 30, bottom: 8, containLabel: true },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: top.map(function (r) { return r.label; }) },
      series: [
        { type: "pie", name: "人口类型", radius: ["24%", "44%"], center: ["22%", "62%"], label: { show: false },
          data: typeSex.rows.map(function (r) { return { name: r.label, value: val(r.total) }; })
            .filter(function (p) { return p.value; }) },
        { type: "bar", name: "人数", data: top.map(function (r) { return val(r.cells[0]); }) }
      ]
    });
  }

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  document.documentElement.setAttribute("data-charts", String(charts.length));
})();
