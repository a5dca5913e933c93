// Draws the dashboard's charts from the page's own data (the same tables as shown and exported).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var tables = {};
  data.tables.forEach(function (t) { tables[t.key] = t; });
  var palette = ["#b42318", "#1570ef", "#067647", "#b54708", "#6941c6", "#52606d"];
  var charts = [];

  var threshold = data.threshold;
  var suppressedWhy = "数值较小（扰动后小于 " + threshold + "），按小数保护规则不公开";

  function val(cell) { return cell && !cell.suppressed ? cell.value : null; }
  function anyValue(cells) { return cells.some(function (c) { var v = val(c); return v !== null && v !== 0; }); }
  function anySuppressed(cells) { return cells.some(function (c) { return c && c.suppressed; }); }
  // A chart with nothing to draw says why, in its place (and counts as drawn: the page is complete).
  function empty(id, why) {
    var el = document.getElementById(id);
    if (!el) { return; }
    el.classList.add("chart-empty");
    el.setAttribute("data-empty", "1");
    el.textContent = why;
    charts.push(null);
  }
  function whyEmpty(cells, none) { return anySuppressed(cells) ? "本图各项" + suppressedWhy + "，详见下方表格" : none; }
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
    var sexes = pyramid.columns.slice(0, 2);
    var cells = [].concat.apply([], rows.map(function (r) { return r.cells.slice(0, 2); }));
    if (!anyValue(cells)) {
      empty("chart-pyramid", whyEmpty(cells, "本区域在统计日期没有常住人口"));
    } else {
      // A suppressed cell is drawn as a short grey bar marked "*" (its length says nothing of its value).
      var longest = Math.max.apply(null, cells.map(function (c) { return val(c) || 0; }));
      var stub = Math.max(1, Math.round(longest * 0.06));
      var side = function (i, v) { return i === 0 ? -v : v; };
      var series = sexes.map(function (name, i) {
        return { name: name, type: "bar", stack: "sex", barCategoryGap: "15%",
          data: rows.map(function (r) { var v = val(r.cells[i]); return v === null ? null : side(i, v); }) };
      });
      if (anySuppressed(cells)) {
        series = series.concat(sexes.map(function (name, i) {
          return { name: "已抑制", type: "bar", stack: "sex", barCategoryGap: "15%",
            itemStyle: { color: "#d0d5dd", borderColor: "#667085", borderType: "dashed", borderWidth: 1 },
            label: { show: true, position: i === 0 ? "left" : "right", formatter: "*", color: "#475467" },
            data: rows.map(function (r) {
              return r.cells[i] && r.cells[i].suppressed ? { value: side(i, stub), suppressed: true } : null; }) };
        }));
      }
      draw("chart-pyramid", {
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" },
          formatter: function (items) {
            var row = rows[items[0].dataIndex];
            return row.label + "<br>" + sexes.map(function (name, i) {
              var c = row.cells[i];
              return name + "：" + (c.suppressed ? "*（已抑制，不公开）" : c.display);
            }).join("<br>");
          } },
        legend: { top: 0, data: sexes.concat(anySuppressed(cells) ? ["已抑制"] : []) },
        grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
        xAxis: { type: "value", axisLabel: { formatter: function (v) { return Math.abs(v); } } },
        yAxis: { type: "category", data: rows.map(function (r) { return r.label; }), axisTick: { show: false } },
        series: series
      });
    }
  }

  var trend = tables.trend;
  var trendCells = trend ? trend.rows.map(function (r) { return r.total; }) : [];
  if (trend && !anyValue(trendCells)) {
    empty("chart-trend", whyEmpty(trendCells, "所选时段没有常住人口数据"));
  } else if (trend) {
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
  var flowCells = flows ? [].concat.apply([], flows.rows.map(function (r) { return r.cells; })) : [];
  if (flows && !anyValue(flowCells)) {
    empty("chart-flows", whyEmpty(flowCells, "所选月份内本区域没有出生、死亡或迁入迁出记录"));
  } else if (flows) {
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
  var typeCells = typeSex ? typeSex.rows.map(function (r) { return r.total; }) : [];
  if (origin && typeSex && !anyValue(typeCells)) {
    empty("chart-origin", whyEmpty(typeCells, "本区域在统计日期没有常住人口"));
  } else if (origin && typeSex) {
    var top = origin.rows.filter(function (r) { return val(r.cells[0]) !== null; }).slice(0, 10).reverse();
    var originCells = origin.rows.map(function (r) { return r.cells[0]; });
    var noOrigin = top.length ? null : (anySuppressed(originCells) ? "来源地人数" + suppressedWhy : "本区域没有流动人口");
    draw("chart-origin", {
      graphic: noOrigin ? [{ type: "text", left: "52%", top: "middle",
        style: { text: noOrigin, width: 150, overflow: "break", fill: "#667085", fontSize: 12 } }] : [],
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

  window.addEventListener("resize", function () { charts.forEach(function (c) { if (c) { c.resize(); } }); });
  document.documentElement.setAttribute("data-charts", String(charts.length));
})();
