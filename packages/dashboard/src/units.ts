/** A metric value for people: a percentage, or a byte rate in B/s, KB/s, MB/s, GB/s. */
export function formatValue(unit: '%' | 'B/s', v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (unit === '%') return `${v.toFixed(1)} %`;
  const k = ['B/s', 'KB/s', 'MB/s', 'GB/s'];
  let i = 0;
  while (v >= 1024 && i < k.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${k[i]}`;
}
