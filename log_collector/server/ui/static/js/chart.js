// SVG charts drawn with our own elements (no chart library): the histogram of log volume
// stacked by level, a line/area chart for the overview and the Ask page's time series, and
// bars of a value per label for the Ask page's counts. Each is drawn in CSS pixels
// (fluidSvg), so its text and margins keep their size whatever the width of its container.
import { el, svg } from "./dom.js";
import { LEVELS } from "./state.js";

// Heights and margins in CSS pixels.
const HEIGHT = 120;
const LEFT = 44;
const BOTTOM = 18;
const TOP = 6;

// "2026-12-05T11:02:00+00:00" -> "11:02" (or "12-05" for day-wide buckets), in UTC.
function tick(iso, intervalS) {
  const text = String(iso);
  return intervalS >= 86400 ? text.slice(5, 10) : text.slice(11, 16);
}

// The first, middle and last of n points, anchored so that no label leaves the chart.
function tickPlaces(n) {
  if (n <= 1) return n ? [[0, "middle"]] : [];
  return [[0, "start"], [Math.floor((n - 1) / 2), "middle"], [n - 1, "end"]];
}

function addSeconds(iso, seconds) {
  return new Date(Date.parse(iso) + seconds * 1000).toISOString();
}

function axisLabel(x, y, text, anchor = "middle") {
  return svg("text", { x, y, className: "axis", "text-anchor": anchor }, text);
}

// The baseline across a chart `width` wide, and the values at the top and at the bottom.
function axes(width, topText, zeroText) {
  const base = HEIGHT - BOTTOM;
  return [
    svg("line", { x1: LEFT, x2: width, y1: base, y2: base, className: "axis-line" }),
    axisLabel(LEFT - 6, TOP + 10, topText, "end"),
    axisLabel(LEFT - 6, base, zeroText, "end"),
  ];
}

// The width a chart is drawn at before it is laid out (it is not yet in the page).
const FIRST_WIDTH = 1000;

// An <svg> whose user unit is one CSS pixel: draw(width) -> its children, called again with
// the element's width whenever that changes (a ResizeObserver), and its viewBox set to match.
// A fixed viewBox scaled to the container would scale its text too (11 px at 1000 units
// reads as 8 px in a 700 px panel, and as 14 px in a wide one). The observer reports between
// layout and paint, so the first paint already has the real width.
export function fluidSvg(attrs, height, draw) {
  const chart = svg("svg", attrs);
  let drawn = 0;
  const redraw = (width) => {
    drawn = width;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    chart.replaceChildren(...[draw(width)].flat(Infinity).filter(Boolean));
  };
  redraw(FIRST_WIDTH);
  new ResizeObserver((entries) => {
    const width = Math.round(entries[entries.length - 1].contentRect.width);
    if (width > 0 && width !== drawn) redraw(width);
  }).observe(chart);
  return chart;
}

// histogram({data: /api/histogram's answer, onBar(since, until), onSpan(since, until),
// onLegend(level)}): a click on a bar calls onBar with that bucket's bounds, a drag across
// bars calls onSpan with the bounds of the span, a click on a legend level calls onLegend.
export function histogram({ data, onBar, onSpan, onLegend, selectedLevels = [] }) {
  const buckets = data.buckets || [];
  const interval = data.interval_s || 60;
  const levels = LEVELS.filter((level) => buckets.some((b) => level in b.counts));
  const totals = buckets.map((b) => Object.values(b.counts).reduce((a, n) => a + n, 0));
  const max = Math.max(1, ...totals);
  const n = Math.max(1, buckets.length);
  const plot = HEIGHT - BOTTOM - TOP;
  // Set by each drawing, read by the pointer handlers below.
  let width = 0;
  let band = 0;
  let selection = null;

  const draw = (drawWidth) => {
    width = drawWidth;
    band = (width - LEFT) / n;
    selection = svg("rect", { className: "selection", x: 0, y: TOP, width: 0, height: plot });
    selection.style.display = "none";
    const bars = buckets.map((bucket, i) => {
      const x = LEFT + i * band;
      const group = svg("g", {
        className: "bar", testid: "histogram-bar", dataset: { t: bucket.t },
      });
      let y = HEIGHT - BOTTOM;
      for (const level of levels) {
        const count = bucket.counts[level] || 0;
        if (!count) continue;
        const h = (count / max) * plot;
        y -= h;
        group.append(svg("rect", {
          x: x + band * 0.1, y, width: Math.max(1, band * 0.8), height: h,
          className: `seg level-${level}`,
        }));
      }
      const summary = levels.map((l) => `${l} ${bucket.counts[l] || 0}`).join(", ");
      // The hit area spans the whole column, so an empty bucket can be clicked too.
      group.append(svg("rect", {
        x, y: TOP, width: band, height: plot, className: "hit",
      }, svg("title", {}, `${bucket.t}: ${totals[i]} (${summary})`)));
      return group;
    });
    return [
      axes(width, String(max), "0"),
      bars,
      tickPlaces(buckets.length).map(([i, anchor]) =>
        axisLabel(LEFT + (i + 0.5) * band, HEIGHT - 4, tick(buckets[i].t, interval), anchor)),
      selection,
    ];
  };
  const chart = fluidSvg({
    className: "chart histogram-chart",
    role: "img",
    "aria-label": "log volume by level over time",
  }, HEIGHT, draw);

  // Dragging: pointer events on the whole chart, captured, so leaving a bar does not end it.
  const indexAt = (event) => {
    const box = chart.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * width;
    return Math.min(n - 1, Math.max(0, Math.floor((x - LEFT) / band)));
  };
  let start = null;
  const show = (a, b) => {
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    selection.setAttribute("x", LEFT + lo * band);
    selection.setAttribute("width", (hi - lo + 1) * band);
    selection.style.display = "";
  };
  chart.addEventListener("pointerdown", (event) => {
    if (!buckets.length || event.button !== 0) return;
    start = indexAt(event);
    chart.setPointerCapture(event.pointerId);
    show(start, start);
  });
  chart.addEventListener("pointermove", (event) => {
    if (start !== null) show(start, indexAt(event));
  });
  chart.addEventListener("pointerup", (event) => {
    if (start === null) return;
    const end = indexAt(event);
    const [lo, hi] = start <= end ? [start, end] : [end, start];
    start = null;
    selection.style.display = "none";
    const since = buckets[lo].t;
    const until = addSeconds(buckets[hi].t, interval);
    if (lo === hi) onBar && onBar(since, until);
    else onSpan && onSpan(since, until);
  });
  chart.addEventListener("pointercancel", () => {
    start = null;
    selection.style.display = "none";
  });

  const legend = el("div", { className: "legend" },
    levels.map((level) => {
      const total = buckets.reduce((sum, b) => sum + (b.counts[level] || 0), 0);
      return el("button", {
        type: "button",
        className: `legend-item level-${level}`,
        "aria-pressed": selectedLevels.includes(level) ? "true" : "false",
        title: `show only ${level}`,
        testid: `legend-${level}`,
        onclick: () => onLegend && onLegend(level),
      }, el("span", { className: "swatch" }), `${level} ${total}`);
    }),
  );
  return el("div", { className: "histogram", testid: "histogram" }, chart, legend);
}

// lineChart({points: [{t, value}], format(value) -> text, className, label, max}): a line
// over an area, values from 0 to max (default: the largest value), times along the bottom.
export function lineChart({ points, format = String, className = "", label = "", max }) {
  const top = max !== undefined ? max : Math.max(0, ...points.map((p) => p.value));
  const scale = top > 0 ? top : 1;
  const n = points.length;
  const plot = HEIGHT - BOTTOM - TOP;
  const interval = n > 1 ? (Date.parse(points[1].t) - Date.parse(points[0].t)) / 1000 : 60;
  const y = (v) => HEIGHT - BOTTOM - (Math.min(v, scale) / scale) * plot;
  const draw = (width) => {
    const x = (i) => LEFT + (n <= 1 ? 0.5 : i / (n - 1)) * (width - LEFT);
    const parts = axes(width, format(top), format(0));
    if (!n) return parts;
    const point = (i, value) => `${x(i).toFixed(1)},${value.toFixed(1)}`;
    const line = points.map((p, i) => `${i ? "L" : "M"}${point(i, y(p.value))}`);
    const base = HEIGHT - BOTTOM;
    const area = `${line.join(" ")} L${point(n - 1, base)} L${point(0, base)} Z`;
    return [
      parts,
      svg("path", { d: area, className: "area" }),
      svg("path", { d: line.join(" "), className: "line" }),
      points.map((p, i) => svg("circle", { cx: x(i), cy: y(p.value), r: 2.5, className: "point" },
        svg("title", {}, `${p.t}: ${format(p.value)}`))),
      tickPlaces(n).map(([i, anchor]) =>
        axisLabel(x(i), HEIGHT - 4, tick(points[i].t, interval), anchor)),
    ];
  };
  return fluidSvg({
    className: `chart line-chart ${className}`.trim(),
    role: "img",
    "aria-label": label,
  }, HEIGHT, draw);
}

// barChart({items: [{label, value}], format(value) -> text, label}): a row per item, its label
// (as text), its value and a bar as long as its share of the largest value.
export function barChart({ items, format = String, label = "" }) {
  const top = Math.max(0, ...items.map((item) => item.value));
  return el("div", { className: "bar-list", role: "list", "aria-label": label },
    items.map((item) => {
      const fill = el("div", { className: "fill" });
      fill.style.width = `${top > 0 ? Math.max(2, (item.value / top) * 100) : 0}%`;
      return el("div", { className: "bar-item", role: "listitem" },
        el("span", { className: "bar-label", title: item.label }, item.label),
        el("span", { className: "count" }, format(item.value)),
        el("div", { className: "track" }, fill));
    }));
}
