// Hand-written SVG for bench/run.mjs: throughput and peak RSS against file size (one upload)
// and against concurrency, for every variant, from the medians of a results JSON.
const COLORS = {
  raw: '#9e9e9e',
  busboy: '#616161',
  naive: '#e53935',
  buffered: '#fb8c00',
  service: '#43a047',
  'service-sha256': '#8e24aa',
  'service-nogc': '#a5d6a7',
  proxy: '#1e88e5',
};
const W = 1040;
const PANEL_W = 480;
const PANEL_H = 280;
const M = { left: 64, right: 16, top: 34, bottom: 44 };

const esc = (s) => String(s).replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
function label(e) {
  const size = e.size >= 1024 ** 3 ? `${e.size / 1024 ** 3} GiB` : `${e.size / 1024 ** 2} MiB`;
  return e.count === 1 ? `1 x ${size}` : `${e.count} x ${size}`;
}

/** One panel: x categories, one series per variant, as lines (`kind: 'line'`) or grouped bars. */
function panel({ x0, y0, title, unit, categories, series, kind }) {
  const iw = PANEL_W - M.left - M.right;
  const ih = PANEL_H - M.top - M.bottom;
  const ox = x0 + M.left;
  const oy = y0 + M.top;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== undefined))));
  const y = (v) => oy + ih - (v / max) * ih;
  let out = `<text x="${x0 + PANEL_W / 2}" y="${y0 + 18}" text-anchor="middle" font-weight="bold">${esc(title)}</text>\n`;
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    out += `<line x1="${ox}" x2="${ox + iw}" y1="${y(v)}" y2="${y(v)}" stroke="#e0e0e0"/>`;
    out += `<text x="${ox - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${+v.toFixed(1)}</text>\n`;
  }
  out += `<text transform="translate(${x0 + 14},${oy + ih / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(unit)}</text>\n`;
  const step = iw / Math.max(1, categories.length);
  categories.forEach((c, i) => {
    out += `<text x="${ox + step * (i + 0.5)}" y="${oy + ih + 18}" text-anchor="middle" font-size="11">${esc(c)}</text>\n`;
  });
  out += `<line x1="${ox}" x2="${ox + iw}" y1="${oy + ih}" y2="${oy + ih}" stroke="#424242"/>`;
  out += `<line x1="${ox}" x2="${ox}" y1="${oy}" y2="${oy + ih}" stroke="#424242"/>\n`;
  if (kind === 'line') {
    for (const s of series) {
      const pts = s.values.map((v, i) => (v === undefined ? undefined : [ox + step * (i + 0.5), y(v)])).filter(Boolean);
      if (pts.length > 1)
        out += `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map((p) => p.map((n) => n.toFixed(1)).join(',')).join(' ')}"/>`;
      for (const [px, py] of pts) out += `<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="3.5" fill="${s.color}"/>`;
      out += '\n';
    }
  } else {
    const bw = (step * 0.8) / Math.max(1, series.length);
    series.forEach((s, j) => {
      s.values.forEach((v, i) => {
        if (v === undefined) return;
        const bx = ox + step * i + step * 0.1 + j * bw;
        out += `<rect x="${bx.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(oy + ih - y(v)).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.name} ${categories[i]}: ${v.toFixed(0)} ${unit}`)}</title></rect>`;
      });
      out += '\n';
    });
  }
  return out;
}

export function renderChart(results) {
  const discard = results.scenarios.filter((e) => !e.real && e.runs.length);
  const sizes = discard.filter((e) => e.group === 'size');
  const oneGiB = discard.find((e) => e.id === 'single-1GiB');
  const conc = [...(oneGiB ? [oneGiB] : []), ...discard.filter((e) => e.group === 'concurrency')];
  const variants = [...new Set(discard.flatMap((e) => e.variants))];
  const seriesOf = (entries, field) =>
    variants.map((v) => ({
      name: v,
      color: COLORS[v] ?? '#000',
      values: entries.map((e) => e.summary?.[v]?.[field]?.median),
    }));
  const legendY = 44;
  const H = legendY + 24 + 2 * PANEL_H + 40;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">\n`;
  svg += `<rect width="100%" height="100%" fill="white"/>\n`;
  svg += `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(
    `Upload throughput and server peak RSS into a discard S3 (medians) — ${results.meta.command}`,
  )}</text>\n`;
  svg += `<text x="${W / 2}" y="36" text-anchor="middle" font-size="11" fill="#555">${esc(
    `${results.meta.date.slice(0, 16)}Z, Node ${results.meta.node}, ${results.meta.machine}, src ${String(results.meta.src.commit).slice(0, 12)}; client, server and S3 share the cores`,
  )}</text>\n`;
  let lx = 40;
  for (const v of variants) {
    svg += `<rect x="${lx}" y="${legendY}" width="14" height="10" fill="${COLORS[v] ?? '#000'}"/><text x="${lx + 18}" y="${legendY + 10}">${esc(v)}</text>`;
    lx += 26 + v.length * 7.5;
  }
  svg += '\n';
  const top = legendY + 20;
  const sizeCats = sizes.map(label);
  const concCats = conc.map(label);
  svg += panel({
    x0: 20,
    y0: top,
    title: 'Throughput vs file size (one upload)',
    unit: 'MB/s',
    categories: sizeCats,
    series: seriesOf(sizes, 'MBps'),
    kind: 'line',
  });
  svg += panel({
    x0: 20 + PANEL_W + 40,
    y0: top,
    title: 'Server peak RSS vs file size (one upload)',
    unit: 'MiB',
    categories: sizeCats,
    series: seriesOf(sizes, 'hwmMiB'),
    kind: 'line',
  });
  svg += panel({
    x0: 20,
    y0: top + PANEL_H + 20,
    title: 'Aggregate throughput vs concurrency',
    unit: 'MB/s',
    categories: concCats,
    series: seriesOf(conc, 'MBps'),
    kind: 'bar',
  });
  svg += panel({
    x0: 20 + PANEL_W + 40,
    y0: top + PANEL_H + 20,
    title: 'Server peak RSS vs concurrency',
    unit: 'MiB',
    categories: concCats,
    series: seriesOf(conc, 'hwmMiB'),
    kind: 'bar',
  });
  svg += '</svg>\n';
  return svg;
}
