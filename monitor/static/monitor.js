// The timeliness chart, drawn with the ECharts file the decision platform vendors (served by the app).
(function () {
  function draw() {
    var node = document.getElementById("chart-timeliness");
    var data = JSON.parse(document.getElementById("monitor-data").textContent);
    if (!node || !window.echarts) { document.documentElement.dataset.charts = "0"; return; }
    var chart = window.echarts.init(node, null, { renderer: "canvas" });
    var series = [["on_time", "按时", "#12b76a"], ["late", "迟报", "#f79009"], ["missing", "缺报", "#d92d20"]];
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 36, right: 12, top: 32, bottom: 28 },
      xAxis: { type: "category", data: data.days },
      yAxis: { type: "value", minInterval: 1 },
      series: series.map(function (s) {
        return { name: s[1], type: "bar", stack: "feeds", data: data[s[0]], itemStyle: { color: s[2] } };
      }),
    });
    window.addEventListener("resize", function () { chart.resize(); });
    document.documentElement.dataset.charts = "1";
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
