// Small hand-written SVG charts: a time-series line chart and horizontal / vertical bar charts.
// They draw what they are given and nothing else; the views decide what to ask the API for.

import { h, s } from './dom.js';

const COLORS = ['#1f6feb', '#e8590c', '#2f9e44', '#ae3ec9', '#0c8599', '#c92a2a'];
// Requests and limits often equal each other (or the usage): dashes keep every line visible.
const DASHES = [null, '7 4', '2 3', '10 3 2 3'];

/** 1, 2, 5 × 10^k steps: round axis labels for any range. */
function niceTicks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= raw);
  const ticks = [];
  for (let v = 0; v <= max + step * 0.001; v += step) ticks.push(v);
  if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

/** The same in binary units, for bytes: 0, 1, 2, 3 GiB rather than 0, 1.82, 3.64 TiB. */
function binaryTicks(max) {
  const unit = 1024 ** Math.max(0, Math.floor(Math.log(Math.max(max, 1)) / Math.log(1024)));
  return niceTicks(max / unit).map((t) => t * unit);
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  if (spanMs < 120_000) return `${hm}:${pad(d.getUTCSeconds())}`;
  if (spanMs > 2 * 86_400_000) return `${d.getUTCDate()} ${d.toLocaleString('en-GB', { month: 'short', timeZone: 'UTC' })}`;
  return hm;
}

/**
 * series: [{label, points: [[ms, value], ...]}]; options: {width, height, format, start, end, max,
 * binary (axis steps in powers of 1024, for bytes)}.
 * Returns an element holding the SVG and its legend; hovering shows the values at that time.
 */
export function lineChart(series, { width = 560, height = 200, format = String, start, end, max, binary = false } = {}) {
  const pad = { left: 56, right: 12, top: 10, bottom: 24 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const all = series.flatMap((one) => one.points);
  const t0 = start ?? Math.min(...all.map((p) => p[0]));
  const t1 = end ?? Math.max(...all.map((p) => p[0]));
  const span = Math.max(t1 - t0, 1);
  const ticks = (binary ? binaryTicks : niceTicks)(max ?? Math.max(0, ...all.map((p) => p[1])));
  const top = ticks[ticks.length - 1];
  const x = (t) => pad.left + ((t - t0) / span) * innerW;
  const y = (v) => pad.top + innerH - (v / top) * innerH;

  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart line', role: 'img' });
  for (const tick of ticks) {
    svg.append(s('line', { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: 'grid' }),
      s('text', { x: pad.left - 6, y: y(tick) + 4, class: 'axis', 'text-anchor': 'end' }, format(tick)));
  }
  for (let i = 0; i <= 4; i += 1) {
    const t = t0 + (span * i) / 4;
    svg.append(s('text', { x: x(t), y: height - 6, class: 'axis', 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }, timeLabel(t, span)));
  }
  series.forEach((one, i) => {
    const color = one.color || COLORS[i % COLORS.length];
    if (!one.points.length) return;
    const d = one.points.map(([t, v], j) => `${j ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('');
    if (i === 0 && series.length === 1) {
      const area = `${d}L${x(one.points.at(-1)[0]).toFixed(1)},${y(0)}L${x(one.points[0][0]).toFixed(1)},${y(0)}Z`;
      svg.append(s('path', { d: area, fill: color, class: 'area' }));
    }
    svg.append(s('path', { d, stroke: color, class: 'series', 'stroke-dasharray': DASHES[i % DASHES.length] }));
    if (one.points.length === 1) svg.append(s('circle', { cx: x(one.points[0][0]), cy: y(one.points[0][1]), r: 3, fill: color }));
  });

  // Hover: a guide line and the nearest point of each series.
  const guide = s('line', { y1: pad.top, y2: pad.top + innerH, class: 'guide', visibility: 'hidden' });
  const tip = h('div', { class: 'chart-tip', hidden: true });
  svg.append(guide);
  svg.addEventListener('mousemove', (event) => {
    const box = svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * width;
    const t = t0 + ((px - pad.left) / innerW) * span;
    if (t < t0 || t > t1) { guide.setAttribute('visibility', 'hidden'); tip.hidden = true; return; }
    const lines = series.map((one) => {
      const near = one.points.reduce((best, p) => (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t) ? p : best), null);
      return near ? `${one.label}: ${format(near[1])}` : null;
    }).filter(Boolean);
    guide.setAttribute('x1', px); guide.setAttribute('x2', px); guide.setAttribute('visibility', 'visible');
    tip.textContent = `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC — ${lines.join(' · ')}`;
    tip.hidden = false;
  });
  svg.addEventListener('mouseleave', () => { guide.setAttribute('visibility', 'hidden'); tip.hidden = true; });

  // A series without data has no entry: a legend names only lines that are drawn. Each keeps the
  // colour and dash of its place in ``series``, so a line looks the same whichever others have data.
  const legend = series.length > 1 ? h('div', { class: 'legend' }, series.flatMap((one, i) => {
    if (!one.points.length) return [];
    const swatch = h('span', { class: `swatch${DASHES[i % DASHES.length] ? ' dashed' : ''}` });
    swatch.style.borderColor = one.color || COLORS[i % COLORS.length];
    return [h('span', { dataset: { series: one.label } }, swatch, one.label)];
  })) : null;
  return h('div', { class: 'chart-box' }, svg, tip, legend);
}

/** items: [{label, value, color?, href?, title?}] as horizontal bars, largest first as given. */
export function barList(items, { format = String, empty = 'Nothing to show.' } = {}) {
  if (!items.length) return h('p', { class: 'empty' }, empty);
  const max = Math.max(...items.map((item) => item.value), 0) || 1;
  return h('ul', { class: 'bars' }, items.map((item) => {
    const fill = h('span', { class: 'bar-fill' });
    fill.style.width = `${Math.max((item.value / max) * 100, item.value > 0 ? 1 : 0)}%`;
    if (item.color) fill.style.background = item.color;
    const label = item.href ? h('a', { href: item.href }, item.label) : item.label;
    return h('li', { title: item.title || `${item.label}: ${format(item.value)}` },
      h('span', { class: 'bar-label' }, label),
      h('span', { class: 'bar-track' }, fill),
      h('span', { class: 'bar-value' }, format(item.value)));
  }));
}

/** items: [{label, value}] as vertical columns (a distribution over ordered buckets). */
export function columns(items, { format = String, height = 160, width = 420, color = '#e8590c' } = {}) {
  const pad = { left: 8, right: 8, top: 18, bottom: 24 };
  const max = Math.max(...items.map((item) => item.value), 0) || 1;
  const slot = (width - pad.left - pad.right) / Math.max(items.length, 1);
  const innerH = height - pad.top - pad.bottom;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', height, class: 'chart columns', role: 'img' });
  items.forEach((item, i) => {
    const barH = (item.value / max) * innerH;
    const x = pad.left + i * slot + slot * 0.18;
    const y = pad.top + innerH - barH;
    svg.append(
      s('rect', { x, y, width: slot * 0.64, height: Math.max(barH, item.value > 0 ? 1 : 0), rx: 3, fill: color },
        s('title', {}, `${item.label}: ${format(item.value)}`)),
      s('text', { x: x + slot * 0.32, y: y - 5, class: 'value', 'text-anchor': 'middle' }, format(item.value)),
      s('text', { x: x + slot * 0.32, y: height - 6, class: 'axis', 'text-anchor': 'middle' }, item.label));
  });
  svg.append(s('line', { x1: pad.left, x2: width - pad.right, y1: pad.top + innerH, y2: pad.top + innerH, class: 'baseline' }));
  return svg;
}
