// Small, dependency-free SVG charts for docs/benchmarks.md.
const colors = ['#8a93a8', '#e0a100', '#3358e0', '#18a866'];
const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

export function lineChart(title: string, xLabel: string, xs: number[], series: Array<{ name: string; values: number[] }>): string {
  const w = 640, h = 360, left = 60, right = 150, top = 40, bottom = 50;
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values.filter(Number.isFinite)));
  const x = (i: number) => left + (xs.length === 1 ? 0 : (i / (xs.length - 1)) * (w - left - right));
  const y = (v: number) => h - bottom - (v / max) * (h - top - bottom);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="#fff"/>`, `<text x="${left}" y="24" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}" stroke="#999"/>`, `<line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" stroke="#999"/>`,
    `<text x="${(left + w - right) / 2}" y="${h - 12}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="${left - 8}" y="${top + 4}" text-anchor="end">${max.toFixed(2)}</text>`, `<text x="${left - 8}" y="${h - bottom}" text-anchor="end">0</text>`];
  xs.forEach((v, i) => parts.push(`<text x="${x(i)}" y="${h - bottom + 16}" text-anchor="middle">${v}</text>`));
  series.forEach((s, k) => {
    const pts = s.values.map((v, i) => `${x(i)},${y(Number.isFinite(v) ? v : 0)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${colors[k % colors.length]}" stroke-width="2.5" points="${pts}"/>`);
    s.values.forEach((v, i) => parts.push(`<circle cx="${x(i)}" cy="${y(Number.isFinite(v) ? v : 0)}" r="3.5" fill="${colors[k % colors.length]}"/>`));
    parts.push(`<rect x="${w - right + 16}" y="${top + k * 22}" width="12" height="12" fill="${colors[k % colors.length]}"/><text x="${w - right + 34}" y="${top + k * 22 + 10}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function barChart(title: string, bars: Array<{ name: string; value: number }>): string {
  const w = 640, h = 320, left = 60, top = 40, bottom = 50, barW = 90, gap = 60;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="#fff"/>`, `<text x="${left}" y="24" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${left}" y1="${h - bottom}" x2="${w - 20}" y2="${h - bottom}" stroke="#999"/>`];
  bars.forEach((b, i) => {
    const bh = (b.value / max) * (h - top - bottom);
    const bx = left + 20 + i * (barW + gap);
    parts.push(`<rect x="${bx}" y="${h - bottom - bh}" width="${barW}" height="${bh}" fill="${colors[i % colors.length]}"/>`,
      `<text x="${bx + barW / 2}" y="${h - bottom - bh - 6}" text-anchor="middle">${b.value}</text>`,
      `<text x="${bx + barW / 2}" y="${h - bottom + 16}" text-anchor="middle">${esc(b.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
