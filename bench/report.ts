/**
 * Turns raw samples into the report: one table per metric, each cell the median of the runs with
 * its spread, and the ratios amesh ÷ direct and amesh ÷ best comparator (the best of the stunnel,
 * haproxy and nginx pairs for that row) on the medians; a summary of every ratio; scenario 7
 * (capture overhead) derived from the latency and connection-rate samples of direct, amesh (eBPF)
 * and amesh-nft. Pure: the same results always render the same Markdown.
 */
import { pathsOf } from './plan.js';
import {
  COMPARATORS,
  METRIC_SCENARIOS,
  PATH_LABELS,
  type BenchResults,
  type LatencySample,
  type MetricSample,
  type MetricScenario,
  type PathName,
  type ThroughputSample,
} from './results.js';
import { pairedDifferences, ratio, summarize, type Summary } from './stats.js';

export type Better = 'higher' | 'lower';
export type TableScenario = 'throughput' | 'latency' | MetricScenario | 'capture';

export interface MetricRow {
  label: string;
  /** Overrides the table's direction (tables of scenarios 3–5 and 7 mix metrics). */
  better?: Better;
  cells: Partial<Record<PathName, Summary>>;
  /** Keyed by the table's ratioColumns titles, e.g. "amesh ÷ direct". */
  ratios: Record<string, number>;
  /** The comparator with the best median in this row (the denominator of amesh ÷ best comparator). */
  bestComparator?: PathName;
}

export interface MetricTable {
  id: string;
  scenario: TableScenario;
  title: string;
  better: Better;
  columns: PathName[];
  rows: MetricRow[];
  /** Ratio column titles, in order. */
  ratioColumns: string[];
  /** Runs each cell should have; fewer means some runs failed. */
  expectedRuns: number;
}

export const VS_DIRECT = 'amesh ÷ direct';
export const VS_BEST = 'amesh ÷ best comparator';

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

/** The comparator with the best median (highest or lowest by `better`) among the row's cells. */
export function bestComparator(cells: Partial<Record<PathName, Summary>>, better: Better): PathName | undefined {
  let best: PathName | undefined;
  for (const path of COMPARATORS) {
    const c = cells[path];
    if (!c) continue;
    const current = best ? cells[best]! : undefined;
    if (!current || (better === 'higher' ? c.median > current.median : c.median < current.median)) best = path;
  }
  return best;
}

/** amesh ÷ direct and amesh ÷ best comparator, as far as the columns allow. */
function ameshRatios(columns: readonly PathName[]): string[] {
  if (!columns.includes('amesh')) return [];
  return [...(columns.includes('direct') ? [VS_DIRECT] : []), ...(columns.some((p) => COMPARATORS.includes(p)) ? [VS_BEST] : [])];
}

/**
 * `a ÷ b` on medians, only when both are positive: a ratio of differences that can be negative
 * (added latency on a noisy machine) or of zeros (error counts) says nothing.
 */
function positiveRatio(a: Summary | undefined, b: Summary | undefined): number | undefined {
  return a && b && a.median > 0 && b.median > 0 ? ratio(a, b) : undefined;
}

function row(label: string, cells: Partial<Record<PathName, Summary>>, better: Better, rowBetter?: Better): MetricRow {
  const r: MetricRow = { label, cells, ratios: {} };
  if (rowBetter) r.better = rowBetter;
  const vsDirect = positiveRatio(cells.amesh, cells.direct);
  if (vsDirect !== undefined) r.ratios[VS_DIRECT] = vsDirect;
  const best = bestComparator(cells, rowBetter ?? better);
  if (best) {
    r.bestComparator = best;
    const vsBest = positiveRatio(cells.amesh, cells[best]);
    if (vsBest !== undefined) r.ratios[VS_BEST] = vsBest;
  }
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

function table(t: Omit<MetricTable, 'ratioColumns'>): MetricTable {
  return { ...t, ratioColumns: ameshRatios(t.columns) };
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
  const per = (pick: (s: ThroughputSample) => number | undefined, columns: PathName[], better: Better): MetricRow[] =>
    tests.map(({ streams, reverse }) =>
      row(throughputLabel(streams, reverse), cellsFor(samples.filter((s) => s.streams === streams && s.reverse === reverse), columns, pick), better),
    );
  const base = { scenario: 'throughput' as const, expectedRuns: results.settings.runs };
  return [
    table({ ...base, id: 'throughput-gbps', title: 'Throughput (Gbit/s)', better: 'higher', columns: paths, rows: per((s) => s.gbps, paths, 'higher') }),
    table({ ...base, id: 'throughput-cpu-per-gb', title: 'Proxy CPU-seconds per GB (both proxies, user + system)', better: 'lower', columns: proxies, rows: per((s) => s.cpuSecondsPerGB, proxies, 'lower') }),
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
  const per = (pick: (s: LatencySample) => number | undefined, columns: PathName[], better: Better): MetricRow[] =>
    connections.map((c) => row(label(c), cellsFor(samples.filter((s) => s.connections === c), columns, pick), better));
  const base = { scenario: 'latency' as const, expectedRuns: runs };
  const tables: MetricTable[] = PERCENTILES.map(([name, pick]) =>
    table({ ...base, id: `latency-${name}`, title: `${name} latency (ms, from the intended send time)`, better: 'lower', columns: paths, rows: per(pick, paths, 'lower') }),
  );
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
        added.push(row(`${label(c)}, ${name}`, cells, 'lower'));
      }
    }
    tables.push(table({ ...base, id: 'latency-added', title: 'Added latency over direct (ms, path − direct, paired by run)', better: 'lower', columns: proxies, rows: added }));
  }
  tables.push(
    table({ ...base, id: 'latency-achieved-rate', title: `Achieved rate (req/s, target ${rate})`, better: 'higher', columns: paths, rows: per((s) => s.achievedRate, paths, 'higher') }),
    table({ ...base, id: 'latency-errors', title: 'Failed requests per run', better: 'lower', columns: paths, rows: per((s) => s.errors, paths, 'lower') }),
    table({ ...base, id: 'latency-cores-per-1000rps', title: 'Proxy cores per 1000 req/s (both proxies, user + system)', better: 'lower', columns: proxies, rows: per((s) => s.coresPer1000Rps, proxies, 'lower') }),
    table({ ...base, id: 'latency-send-lag', title: 'Load generator scheduling lag p99 (ms; part of every latency above, on every path)', better: 'lower', columns: paths, rows: per((s) => s.sendLagP99Ms, paths, 'lower') }),
  );
  if (samples.some((s) => s.stealPercent !== undefined)) {
    // Context for the rows above, not a property of a path: no ratios.
    tables.push({ ...base, id: 'latency-steal', title: 'CPU steal during the run (% of the machine’s CPU time the hypervisor gave to other guests)', better: 'lower', columns: paths, rows: per((s) => s.stealPercent, paths, 'lower'), ratioColumns: [] });
  }
  return tables;
}

/**
 * Labels and directions of the metric names scenarios 3–5 report (bench/scenarios/*: the
 * samples' number fields; memory's per-count fields end in `@<connections>`). Hidden ones are
 * context kept in the JSON (counts, durations). A name not listed is shown as is, its direction
 * guessed from the name (rates higher, the rest lower) and marked "guessed".
 */
export const METRIC_INFO: Readonly<Record<string, { label: string; better: Better; hidden?: true }>> = {
  requestsPerSecond: { label: 'requests/s', better: 'higher' },
  requestsPerProxyCoreSecond: { label: 'requests per proxy CPU-second', better: 'higher' },
  proxyCoresPer1000Rps: { label: 'proxy cores per 1000 req/s', better: 'lower' },
  connectionsPerSecond: { label: 'new connections/s (one request each)', better: 'higher' },
  connectionsPerProxyCoreSecond: { label: 'new connections per proxy CPU-second', better: 'higher' },
  proxyCpuMsPerConnection: { label: 'proxy CPU-ms per new connection', better: 'lower' },
  tunnelConnectionsPerConnection: { label: 'server-side TCP accepts per client connection', better: 'lower' },
  latencyP50Ms: { label: 'p50 latency ms (closed loop)', better: 'lower' },
  latencyP99Ms: { label: 'p99 latency ms (closed loop)', better: 'lower' },
  errors: { label: 'errors', better: 'lower' },
  connectErrors: { label: 'connect errors', better: 'lower' },
  proxyCpuSeconds: { label: 'proxy CPU-seconds', better: 'lower', hidden: true },
  requests: { label: 'requests', better: 'higher', hidden: true },
  connections: { label: 'connections', better: 'higher', hidden: true },
  seconds: { label: 'seconds', better: 'lower', hidden: true },
  idleRssKB: { label: 'RSS idle (KB)', better: 'lower' },
  releasedRssKB: { label: 'RSS after release (KB)', better: 'lower' },
  rssKB: { label: 'RSS (KB)', better: 'lower' },
  kbPerConnection: { label: 'KB per held connection', better: 'lower' },
  idleHeapUsedKB: { label: 'V8 heap in use idle (KB, Node proxies)', better: 'lower' },
  heapUsedKB: { label: 'V8 heap in use (KB, Node proxies)', better: 'lower' },
  idleHeapCommittedKB: { label: 'V8 heap committed idle (KB, Node proxies)', better: 'lower' },
  heapCommittedKB: { label: 'V8 heap committed (KB, Node proxies)', better: 'lower' },
  releasedHeapUsedKB: { label: 'V8 heap in use after release (KB, Node proxies)', better: 'lower' },
  secondsToOpen: { label: 'seconds to open', better: 'lower', hidden: true },
};

export function metricInfo(key: string): { label: string; better: Better; hidden?: true; guessed?: true } {
  const [name = key, count] = key.split('@');
  const known = METRIC_INFO[name];
  // `@1000`: held connections (memory); `@c16`: connections in flight (connection rate).
  const suffix = count === undefined ? '' : count.startsWith('c') ? `, ${count.slice(1)} concurrent` : `, ${count} held connections`;
  if (known) return { ...known, label: `${known.label}${suffix}` };
  return { label: key, better: /rate|persecond|rps|gbps|throughput|handshakes/i.test(key) ? 'higher' : 'lower', guessed: true };
}

const METRIC_TITLES: Readonly<Record<MetricScenario, string>> = {
  maxrate: 'Maximum request rate',
  connrate: 'Connection setup rate',
  handshakes: 'Full mutual-TLS handshakes: a new connection per request, each with its own TLS handshake',
  memory: 'Memory (proxy RSS, both proxies)',
};

function metricTable(results: BenchResults, scenario: MetricScenario): MetricTable[] {
  const samples: readonly MetricSample[] = results[scenario] ?? [];
  if (samples.length === 0) return [];
  const columns = pathsOf(scenario, results.settings.paths);
  const keys = distinct(samples.flatMap((s) => Object.keys(s.values ?? {}))).filter((k) => !metricInfo(k).hidden);
  const rows = keys.map((key) => {
    const info = metricInfo(key);
    return row(`${info.label}${info.guessed ? ` (${info.better} is better, guessed)` : ''}`, cellsFor(samples, columns, (s) => s.values?.[key]), info.better, info.better);
  });
  return [table({ id: scenario, scenario, title: METRIC_TITLES[scenario], better: rows[0]?.better ?? 'higher', columns, rows, expectedRuns: results.settings.runs })];
}

/** Scenario 7: direct vs amesh with eBPF capture vs amesh with nftables capture, from scenarios 2 and 4. */
function captureTable(results: BenchResults): MetricTable[] {
  const columns = (['direct', 'amesh', 'amesh-nft'] as const).filter((p) => results.settings.paths.includes(p));
  if (!columns.includes('amesh') || !columns.includes('amesh-nft')) return [];
  const rows: MetricRow[] = [];
  const capture = (label: string, cells: Partial<Record<PathName, Summary>>, better: Better): MetricRow => {
    const r: MetricRow = { label, better, cells, ratios: {} };
    const add = (title: string, a: PathName, b: PathName): void => {
      const x = positiveRatio(cells[a], cells[b]);
      if (x !== undefined) r.ratios[title] = x;
    };
    add('amesh ÷ direct', 'amesh', 'direct');
    add('amesh-nft ÷ direct', 'amesh-nft', 'direct');
    add('amesh-nft ÷ amesh', 'amesh-nft', 'amesh');
    return r;
  };
  for (const c of distinct(results.latency.map((s) => s.connections))) {
    const samples = results.latency.filter((s) => s.connections === c);
    for (const [name, pick] of PERCENTILES) rows.push(capture(`latency ${name} ms, ${c} connections`, cellsFor(samples, columns, pick), 'lower'));
    rows.push(capture(`proxy cores per 1000 req/s, ${c} connections`, cellsFor(samples, columns, (s) => s.coresPer1000Rps), 'lower'));
  }
  for (const key of distinct(results.connrate.flatMap((s) => Object.keys(s.values ?? {}))).filter((k) => !metricInfo(k).hidden)) {
    const info = metricInfo(key);
    rows.push(capture(`connrate: ${info.label}`, cellsFor(results.connrate, columns, (s) => s.values?.[key]), info.better));
  }
  if (rows.length === 0) return [];
  const ratioColumns = [...(columns.includes('direct') ? ['amesh ÷ direct', 'amesh-nft ÷ direct'] : []), 'amesh-nft ÷ amesh'];
  return [{ id: 'capture-overhead', scenario: 'capture', title: 'Capture overhead: eBPF vs nftables TPROXY vs no capture', better: 'lower', columns, rows, ratioColumns, expectedRuns: results.settings.runs }];
}

export function buildTables(results: BenchResults): MetricTable[] {
  return [...throughputTables(results), ...latencyTables(results), ...METRIC_SCENARIOS.flatMap((s) => metricTable(results, s)), ...captureTable(results)];
}

function ratioCell(table: MetricTable, r: MetricRow, title: string): string {
  const text = formatRatio(r.ratios[title]);
  return title === VS_BEST && r.bestComparator && r.ratios[title] !== undefined ? `${text} (${r.bestComparator})` : text;
}

export function renderTable(t: MetricTable): string {
  const mixed = t.rows.some((r) => (r.better ?? t.better) !== t.better);
  const header = ['test', ...t.columns.map((p) => PATH_LABELS[p]), ...t.ratioColumns];
  const lines = [
    mixed ? `### ${t.title}` : `### ${t.title} — ${t.better} is better`,
    '',
    `| ${header.join(' | ')} |`,
    `|---|${header.slice(1).map(() => '---:').join('|')}|`,
  ];
  for (const r of t.rows) {
    const label = mixed && !r.label.includes('is better') ? `${r.label} (${r.better ?? t.better} is better)` : r.label;
    const cells = t.columns.map((p) => formatSummary(r.cells[p], t.expectedRuns));
    lines.push(`| ${[label, ...cells, ...t.ratioColumns.map((c) => ratioCell(t, r, c))].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Every row with an amesh ratio, in one table: the headline of the report. */
export function renderRatioSummary(tables: readonly MetricTable[]): string {
  const lines = [
    '## Ratios: amesh ÷ direct and amesh ÷ best comparator (medians)',
    '',
    '| metric | better | amesh | amesh ÷ direct | amesh ÷ best comparator |',
    '|---|---|---:|---:|---:|',
  ];
  for (const t of tables) {
    if (t.scenario === 'capture' || (!t.ratioColumns.includes(VS_DIRECT) && !t.ratioColumns.includes(VS_BEST))) continue;
    for (const r of t.rows) {
      if (r.ratios[VS_DIRECT] === undefined && r.ratios[VS_BEST] === undefined) continue;
      const amesh = r.cells.amesh ? formatNumber(r.cells.amesh.median) : '—';
      lines.push(`| ${t.title}: ${r.label} | ${r.better ?? t.better} | ${amesh} | ${ratioCell(t, r, VS_DIRECT)} | ${ratioCell(t, r, VS_BEST)} |`);
    }
  }
  return lines.join('\n');
}

const SCENARIO_OF_TASK: Readonly<Record<MetricScenario, string>> = { maxrate: 'maximum request rate', connrate: 'connection rate', handshakes: 'handshake rate', memory: 'memory' };

function failures(results: BenchResults): string[] {
  const out: string[] = [];
  for (const s of results.throughput) {
    if (s.error) out.push(`${PATH_LABELS[s.path]} iperf3 ${throughputLabel(s.streams, s.reverse)} run ${s.run}: ${s.error}`);
  }
  for (const s of results.latency) {
    if (s.error) out.push(`${PATH_LABELS[s.path]} latency ${s.connections} connections run ${s.run}: ${s.error}`);
    else if (s.errors) out.push(`${PATH_LABELS[s.path]} latency ${s.connections} connections run ${s.run}: ${s.errors} failed requests ${JSON.stringify(s.errorKinds ?? {})}`);
  }
  for (const scenario of METRIC_SCENARIOS) {
    for (const s of results[scenario] ?? []) {
      if (s.error) out.push(`${PATH_LABELS[s.path]} ${SCENARIO_OF_TASK[scenario]} run ${s.run}: ${s.error}`);
      else if (!s.values || Object.keys(s.values).length === 0) out.push(`${PATH_LABELS[s.path]} ${SCENARIO_OF_TASK[scenario]} run ${s.run}: no values`);
    }
  }
  if (results.l7?.error) out.push(`L7 (waypoint bench): ${results.l7.error}`);
  for (const p of l7Paths(results.l7?.document)) {
    if (p.skipped || p.error) out.push(`L7 ${p.path}: ${p.skipped ? `skipped: ${p.skipped}` : p.error}`);
  }
  return out;
}

/** The per-path entries of the waypoint bench's document (bench/waypoint-harness.ts WaypointPathResult), loosely typed. */
export function l7Paths(doc: unknown): { path: string; skipped?: string; error?: string; requestsPerSecond?: number; p99Ms?: number }[] {
  const paths = (doc as { paths?: unknown } | undefined)?.paths;
  if (!Array.isArray(paths)) return [];
  return paths.map((p: { path?: unknown; skipped?: unknown; error?: unknown; maxRate?: { requestsPerSecond?: unknown }; latency?: { p99Ms?: unknown } }) => ({
    path: String(p.path),
    ...(typeof p.skipped === 'string' ? { skipped: p.skipped } : {}),
    ...(typeof p.error === 'string' ? { error: p.error } : {}),
    ...(typeof p.maxRate?.requestsPerSecond === 'number' ? { requestsPerSecond: p.maxRate.requestsPerSecond } : {}),
    ...(typeof p.latency?.p99Ms === 'number' ? { p99Ms: p.latency.p99Ms } : {}),
  }));
}

/**
 * Path × scenario pairs the run asked for that produced no value at all (every run failed or
 * none ran) — the smoke check's other half: a path that silently measured nothing fails it.
 */
export function missingMeasurements(results: BenchResults, scenarios: readonly string[]): string[] {
  const out: string[] = [];
  const has = (scenario: string, path: PathName): boolean => {
    if (scenario === 'throughput') return results.throughput.some((s) => s.path === path && s.gbps !== undefined);
    if (scenario === 'latency') return results.latency.some((s) => s.path === path && s.p99Ms !== undefined);
    const samples: readonly MetricSample[] = results[scenario as MetricScenario] ?? [];
    return samples.some((s) => s.path === path && s.values !== undefined && Object.keys(s.values).length > 0);
  };
  for (const scenario of scenarios) {
    if (scenario === 'l7') {
      if (!results.l7 || l7Paths(results.l7.document).length === 0) out.push('l7: the waypoint bench produced no result');
      for (const p of l7Paths(results.l7?.document)) if (p.requestsPerSecond === undefined || p.p99Ms === undefined) out.push(`l7 × ${p.path}`);
      continue;
    }
    for (const path of pathsOf(scenario, results.settings.paths)) if (!has(scenario, path)) out.push(`${scenario} × ${path}`);
  }
  return out;
}

/** Whether every run produced a value and no request failed (the smoke check's verdict). */
export function harnessHealthy(results: BenchResults, scenarios: readonly string[] = []): boolean {
  return failures(results).length === 0 && missingMeasurements(results, scenarios).length === 0;
}

/** The waypoint bench's Markdown under this report's section 6: its headings one level down, its title dropped. */
export function demoteMarkdown(markdown: string): string {
  return markdown
    .split('\n')
    .filter((line) => !/^# /.test(line))
    .map((line) => (/^#{1,5} /.test(line) ? `#${line}` : line))
    .join('\n')
    .trim();
}

const SECTIONS: readonly (readonly [TableScenario, (r: BenchResults) => string])[] = [
  ['throughput', () => '## 1. Bulk throughput (iperf3, client pod → server pod on another node)'],
  ['latency', (r) => `## 2. Latency at ${r.settings.rate} req/s`],
  ['maxrate', (r) => `## 3. Maximum request rate (closed loop, ${r.settings.maxRateConnections} connections, ${r.settings.maxRateSeconds} s)`],
  ['connrate', (r) => `## 4. Connection setup rate (a new connection per request, ${r.settings.connRateSeconds} s)`],
  [
    'handshakes',
    (r) =>
      `## 4b. Full mutual-TLS handshakes (a new connection per request, ${r.settings.connRateSeconds} s, ${r.settings.connRateConcurrency[0] ?? 4} concurrent; amesh's agents restarted with AMESH_HBONE_POOL_MAX_STREAMS=1 and AMESH_HBONE_POOL_IDLE_TIMEOUT_MS=0, so no HBONE connection is reused — the pairs always handshake)`,
  ],
  ['memory', (r) => `## 5. Memory (RSS idle and with ${r.settings.memoryConnections.join(' and ')} held connections)`],
];

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
    `- maximum rate: ${s.maxRateSeconds} s closed loop over ${s.maxRateConnections} connections; connection rate: ${s.connRateSeconds} s, ${s.connRateConcurrency.join(' and ')} concurrent; memory: ${s.memoryConnections.join(' and ')} held connections; L7 (waypoint): ${s.l7Seconds} s at the maximum rate, latency runs as long as scenario 2's (${s.latencySeconds} s)`,
    `- load average at start ${e.loadAverageStart.map((l) => l.toFixed(2)).join(' ')}, at end ${e.loadAverageEnd.map((l) => l.toFixed(2)).join(' ')}`,
    '',
    '| component | version |',
    '|---|---|',
    `| Node | ${e.node} |`,
    ...(e.agentNode ? [`| Node (amesh's node agents, BENCH_AGENT_NODE; not scenario 6's, which runs on the bench's node) | ${e.agentNode} |`] : []),
    `| OpenSSL (Node) | ${e.openssl} |`,
    `| kernel | ${e.kernel} |`,
    `| CPU | ${e.cpus} |`,
    `| iperf3 | ${e.iperf3} |`,
    `| wrk | ${e.wrk} |`,
    `| stunnel | ${e.stunnel} |`,
    `| stunnel TLS | ${e.stunnelTls} |`,
    `| haproxy | ${e.haproxy} |`,
    `| nginx | ${e.nginx} |`,
    `| amesh | ${e.amesh} |`,
    `| capture mode (amesh / amesh-nft) | ${e.captureMode} / ${e.captureModeNft} |`,
    `| HTTP/2 settings | ${h2} |`,
  ];
  if (tables.some((t) => t.ratioColumns.includes(VS_DIRECT) || t.ratioColumns.includes(VS_BEST))) out.push('', renderRatioSummary(tables));
  for (const [scenario, heading] of SECTIONS) {
    const mine = tables.filter((t) => t.scenario === scenario);
    if (mine.length === 0) continue;
    out.push('', heading(results));
    for (const t of mine) out.push('', renderTable(t));
  }
  if (results.l7) {
    out.push('', '## 6. L7: one waypoint hop vs haproxy and nginx doing the same routing (npm run bench:waypoint)', '');
    out.push(results.l7.markdown ? demoteMarkdown(results.l7.markdown) : `failed: ${results.l7.error ?? 'no report'}`);
  }
  const capture = tables.filter((t) => t.scenario === 'capture');
  if (capture.length > 0) {
    out.push('', '## 7. Capture overhead (from scenarios 2 and 4)');
    for (const t of capture) out.push('', renderTable(t));
  }
  const failed = failures(results);
  if (failed.length > 0) out.push('', '## Failures', '', ...failed.map((f) => `- ${f}`));
  if (results.notes.length > 0) out.push('', '## Notes', '', ...results.notes.map((n) => `- ${n}`));
  return `${out.join('\n')}\n`;
}
