/**
 * Plain-text tables as kubectl and istioctl print them: a header row in capitals, columns
 * left-aligned and separated by three spaces, '-' for an empty cell. Pure.
 */
const GAP = '   ';

export function renderTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const cells = rows.map((r) => headers.map((_, i) => (r[i] === undefined || r[i] === '' ? '-' : r[i]!)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join(GAP)
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}
