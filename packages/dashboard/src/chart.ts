/**
 * Metric charts on canvas with uPlot (about 50 KB, draws tens of thousands of points in a few
 * milliseconds). Loaded by the agent page only, as its own chunk.
 */
import uPlot from 'uplot';

export interface ChartSpec {
  title: string;
  /** Unix seconds: the range shown, and each sample's time. */
  from: number;
  to: number;
  xs: number[];
  series: { label: string; values: (number | null)[] }[];
  unit: '%' | 'B/s';
  /** A value for people (passed in, so this chunk shares no module with the app's). */
  format: (v: number | null) => string;
}

const PALETTE = ['#2f81f7', '#d9480f', '#2b8a3e', '#ae3ec9', '#e67700', '#0c8599'];

/** Draw `spec` into `el` at its width; the returned function removes it. */
export function drawChart(el: HTMLElement, spec: ChartSpec): () => void {
  const css = getComputedStyle(document.documentElement);
  const fg = css.getPropertyValue('--muted').trim() || '#57606a';
  const grid = css.getPropertyValue('--line').trim() || '#d0d7de';
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const opts: uPlot.Options = {
    width: Math.max(280, el.clientWidth),
    height: 180,
    series: [{}, ...spec.series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length]!, width: 1.5, value: (_u: uPlot, v: number | null) => spec.format(v) }))],
    axes: [axis, { ...axis, size: 70, values: (_u: uPlot, vals: number[]) => vals.map((v) => spec.format(v)) }],
    scales: { x: { time: true, range: [spec.from, spec.to] }, ...(spec.unit === '%' ? { y: { range: [0, 100] } } : {}) },
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  const plot = new uPlot(opts, [spec.xs, ...spec.series.map((s) => s.values)] as uPlot.AlignedData, el);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 180 }));
  resize.observe(el);
  return () => {
    resize.disconnect();
    plot.destroy();
  };
}
