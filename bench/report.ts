/**
 * Turns raw samples into the report: one table per metric, each cell the median of the runs with
 * its spread, and the ratios amesh ÷ direct and amesh ÷ stunnel on the medians. Pure: the same
 * results always render the same Markdown.
 */
import { PATH_LABELS, type BenchResults, type LatencySample, type PathName, type ThroughputSample } from './results.js';
import { pairedDifferences, ratio, summarize, type Summary } from './stats.js';

export interface MetricRow {
  label: string;
  cells: Partial<Record<PathName, Summary>>;
  vsDirect?: number;
  vsStunnel?: number;
}

export interface MetricTable {
  id: string;
  scenario: 'throughput' | 'latency';
  title: string;
  better: 'higher' | 'lower';
  columns: PathName[];
  rows: MetricRow[];
  /** Runs each cell should have; fewer means some runs failed. */
  expectedRuns: number;
}

/** Three significant digits, no exponent for the values we report. */
export function formatNumber(x: number): string {
  const abs = Math.abs(x);
  if (abs === 0) return '0';
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(2);
  if (abs >= 0.01) return x.toFixed(3);
  return x.toPrecision(2);
}

/** `median [min–max]`, plus `(n=k)` when some runs are missing. */
export function formatSummary(s: Summary | undefined, expectedRuns: number): string {
  if (!s) return '—';
  const spread = s.n > 1 ? ` [${formatNumber(s.min)}–${formatNumber(s.max)}]` : '';
  const missing = s.n < expectedRuns ? ` (n=${s.n})` : '';
  return `${formatNumber(s.median)}${spread}${missing}`;
}

export function formatRatio(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? '—' : `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

export function throughputLabel(streams: number, reverse: boolean): string {
  return `-P${streams} ${reverse ? '-R server→client' : 'client→server'}`;
}

function row(label: string, cells: Partial<Record<PathName, Summary>>): MetricRow {
  const r: MetricRow = { label, cells };
  const vsDirect = ratio(cells.amesh, cells.direct);
  const vsStunnel = ratio(cells.amesh, cells.stunnel);
  if (vsDirect !== undefined) r.vsDirect = vsDirect;
  if (vsStunnel !== undefined) r.vsStunnel = vsStunnel;
  return r;
}

/** Distinct values in first-seen order. */
function distinct<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

function cellsFor<S extends { path: PathName }>(samples: readonly S[], columns: readonly PathName[], pick: (s: S) => number | undefined): Partial<Record<PathName, Summary>> {
  const cells: Partial<Record<PathName, Summary>> = {};
  for (const path of columns) {
    const summary = summarize(samples.filter((s) => s.path === path).map(pick));
    if (summary) cells[path] = summary;
  }
  return cells;
}

function throughputTables(results: BenchResults): MetricTable[] {
  const samples = results.throughput;
  if (samples.length === 0) return [];
  const paths = results.settings.paths;
  const proxies = paths.filter((p) => p !== 'direct');
  const tests = distinct(samples.map((s) => `${s.streams}/${s.reverse}`)).map((key) => {
    const [streams, reverse] = key.split('/');
    return { streams: Number(streams), reverse: reverse === 'true' };
  });
  const per = (pick: (s: ThroughputSample) => number | undefined, columns: PathName[]): MetricRow[] =>
    tests.map(({ streams, reverse }) =>
      row(throughputLabel(streams, reverse), cellsFor(samples.filter((s) => s.streams === streams && s.reverse === reverse), columns, pick)),
    );
  const base = { scenario: 'throughput' as const, expectedRuns: results.settings.runs };
  return [
    { ...base, id: 'throughput-gbps', title: 'Throughput (Gbit/s)', better: 'higher', columns: paths, rows: per((s) => s.gbps, paths) },
    { ...base, id: 'throughput-cpu-per-gb', title: 'Proxy CPU-seconds per GB (both proxies, user + system)', better: 'lower', columns: proxies, rows: per((s) => s.cpuSecondsPerGB, proxies) },
  ];
}

const PERCENTILES = [
  ['p50', (s: LatencySample) => s.p50Ms],
  ['p90', (s: LatencySample) => s.p90Ms],
  ['p99', (s: LatencySample) => s.p99Ms],
] as const;

function latencyTables(results: BenchResults): MetricTable[] {
  const samples = results.latency;
  if (samples.length === 0) return [];
  const { paths, rate, runs } = results.settings;
  const proxies = paths.filter((p) => p !== 'direct');
  const connections = distinct(samples.map((s) => s.connections));
  const label = (c: number): string => `${c} connections`;
  const per = (pick: (s: LatencySample) => number | undefined, columns: PathName[]): MetricRow[] =>
    connections.map((c) => row(label(c), cellsFor(samples.filter((s) => s.connections === c), columns, pick)));
  const base = { scenario: 'latency' as const, expectedRuns: runs };
  const tables: MetricTable[] = PERCENTILES.map(([name, pick]) => ({
    ...base,
    id: `latency-${name}`,
    title: `${name} latency (ms, from the intended send time)`,
    better: 'lower' as const,
    columns: paths,
    rows: per(pick, paths),
  }));
  if (paths.includes('direct') && proxies.length > 0) {
    const added: MetricRow[] = [];
    for (const c of connections) {
      for (const [name, pick] of PERCENTILES) {
        const byRun = (path: PathName): Map<number, number> =>
          new Map(samples.filter((s) => s.connections === c && s.path === path && pick(s) !== undefined).map((s) => [s.run, pick(s)!]));
        const direct = byRun('direct');
        const cells: Partial<Record<PathName, Summary>> = {};
        for (const path of proxies) {
          const summary = summarize(pairedDifferences(byRun(path), direct));
          if (summary) cells[path] = summary;
        }
        added.push(row(`${label(c)}, ${name}`, cells));
      }
    }
    tables.push({ ...base, id: 'latency-added', title: 'Added latency over direct (ms, path − direct, paired by run)', better: 'lower', columns: proxies, rows: added });
  }
  tables.push(
    { ...base, id: 'latency-achieved-rate', title: `Achieved rate (req/s, target ${rate})`, better: 'higher', columns: paths, rows: per((s) => s.achievedRate, paths) },
    { ...base, id: 'latency-errors', title: 'Failed requests per run', better: 'lower', columns: paths, rows: per((s) => s.errors, paths) },
    { ...base, id: 'latency-cores-per-1000rps', title: 'Proxy cores per 1000 req/s (both proxies, user + system)', better: 'lower', columns: proxies, rows: per((s) => s.coresPer1000Rps, proxies) },
    { ...base, id: 'latency-send-lag', title: 'Load generator scheduling lag p99 (ms; part of every latency above, on every path)', better: 'lower', columns: paths, rows: per((s) => s.sendLagP99Ms, paths) },
  );
  return tables;
}

export function buildTables(results: BenchResults): MetricTable[] {
  return [...throughputTables(results), ...latencyTables(results)];
}

/** A ratio column appears when the table has both amesh and that baseline (CPU tables have no direct). */
export function renderTable(table: MetricTable): string {
  const has = (p: PathName): boolean => table.columns.includes(p);
  const ratios = [
    ...(has('amesh') && has('direct') ? [{ title: 'amesh ÷ direct', pick: (r: MetricRow) => r.vsDirect }] : []),
    ...(has('amesh') && has('stunnel') ? [{ title: 'amesh ÷ stunnel', pick: (r: MetricRow) => r.vsStunnel }] : []),
  ];
  const header = ['test', ...table.columns.map((p) => PATH_LABELS[p]), ...ratios.map((r) => r.title)];
  const lines = [
    `### ${table.title} — ${table.better} is better`,
    '',
    `| ${header.join(' | ')} |`,
    `|---|${header.slice(1).map(() => '---:').join('|')}|`,
  ];
  for (const r of table.rows) {
    const cells = table.columns.map((p) => formatSummary(r.cells[p], table.expectedRuns));
    lines.push(`| ${[r.label, ...cells, ...ratios.map((ratioColumn) => formatRatio(ratioColumn.pick(r)))].join(' | ')} |`);
  }
  return lines.join('\n');
}

function failures(results: BenchResults): string[] {
  const out: string[] = [];
  for (const s of results.throughput) {
    if (s.error) out.push(`${PATH_LABELS[s.path]} iperf3 ${throughputLabel(s.streams, s.reverse)} run ${s.run}: ${s.error}`);
  }
  for (const s of results.latency) {
    if (s.error) out.push(`${PATH_LABELS[s.path]} latency ${s.connections} connections run ${s.run}: ${s.error}`);
    else if (s.errors) out.push(`${PATH_LABELS[s.path]} latency ${s.connections} connections run ${s.run}: ${s.errors} failed requests ${JSON.stringify(s.errorKinds ?? {})}`);
  }
  return out;
}

/** Whether every run produced a value and no request failed (the smoke check's verdict). */
export function harnessHealthy(results: BenchResults): boolean {
  return failures(results).length === 0;
}

export function renderMarkdown(results: BenchResults, tables: readonly MetricTable[]): string {
  const { settings: s, environment: e } = results;
  const h2 = typeof e.h2Settings === 'string' ? e.h2Settings : `\`${JSON.stringify(e.h2Settings)}\``;
  const out: string[] = [
    `# amesh benchmark — ${results.startedAt}`,
    '',
    s.quick
      ? '**Quick mode (smoke test): checks that the harness works. The numbers are not measurements.**'
      : `Each cell: median of ${s.runs} runs [min–max]. Paths were measured interleaved, run by run.`,
    '',
    `- paths: ${s.paths.map((p) => PATH_LABELS[p]).join(', ')}; runs per measurement: ${s.runs}`,
    `- bulk: iperf3 ${s.throughputSeconds} s, ${s.streams.map((n) => `-P${n}`).join(' and ')}, ${s.directions.join(' and ')}`,
    `- latency: ${s.rate} req/s open loop, ${s.responseBytes}-byte HTTP/1.1 responses over ${s.connections.join(' and ')} keep-alive connections, ${s.latencySeconds} s (+${s.warmupSeconds} s warm-up, not recorded)`,
    `- load average at start ${e.loadAverageStart.map((l) => l.toFixed(2)).join(' ')}, at end ${e.loadAverageEnd.map((l) => l.toFixed(2)).join(' ')}`,
    '',
    '| component | version |',
    '|---|---|',
    `| Node | ${e.node} |`,
    `| OpenSSL (Node) | ${e.openssl} |`,
    `| kernel | ${e.kernel} |`,
    `| CPU | ${e.cpus} |`,
    `| iperf3 | ${e.iperf3} |`,
    `| stunnel | ${e.stunnel} |`,
    `| stunnel TLS | ${e.stunnelTls} |`,
    `| amesh | ${e.amesh} |`,
    `| capture mode | ${e.captureMode} |`,
    `| HTTP/2 settings | ${h2} |`,
  ];
  for (const [scenario, heading] of [
    ['throughput', '## 1. Bulk throughput (iperf3, client pod on node1 → server pod on node2)'],
    ['latency', `## 2. Latency at ${s.rate} req/s`],
  ] as const) {
    const mine = tables.filter((t) => t.scenario === scenario);
    if (mine.length === 0) continue;
    out.push('', heading);
    for (const t of mine) out.push('', renderTable(t));
  }
  const failed = failures(results);
  if (failed.length > 0) out.push('', '## Failures', '', ...failed.map((f) => `- ${f}`));
  if (results.notes.length > 0) out.push('', '## Notes', '', ...results.notes.map((n) => `- ${n}`));
  return `${out.join('\n')}\n`;
}
