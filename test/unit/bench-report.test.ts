// The benchmark's pure pieces: statistics, /proc parsing, iperf3 output, the open-loop report,
// settings, the measurement plan, stunnel configuration and the Markdown report.
import { describe, expect, it } from 'vitest';
import { firstCertificate, negotiatedTls, stunnelConfig } from '../../bench/comparators/stunnel.js';
import { parseIperf3Version, parseStunnelVersion } from '../../bench/environment.js';
import { iperf3ClientArgv, parseIperf3Json } from '../../bench/iperf3.js';
import { connectionFor, dueOffsetMs, parseOpenLoopReport } from '../../bench/load/open-loop.js';
import { resolveSettings } from '../../bench/options.js';
import { buildPlan, rotate } from '../../bench/plan.js';
import { CpuMeter, machineCpuShares, parseMachineCpu, parseProcStat, treeCpuTicks, type ProcStat } from '../../bench/proc-stat.js';
import { buildTables, formatNumber, formatRatio, formatSummary, harnessHealthy, renderMarkdown, renderTable, VS_BEST, VS_DIRECT } from '../../bench/report.js';
import type { BenchResults, LatencySample, ThroughputSample } from '../../bench/results.js';
import { median, pairedDifferences, ratio, summarize } from '../../bench/stats.js';

describe('stats', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeUndefined();
  });

  it('summarizes finite values only, with min–max spread', () => {
    expect(summarize([5, undefined, 1, Number.NaN, 3])).toEqual({ median: 3, min: 1, max: 5, n: 3, values: [5, 1, 3] });
    expect(summarize([undefined])).toBeUndefined();
  });

  it('pairs differences by run and skips runs missing on either side', () => {
    const path = new Map([[1, 1.5], [2, 2.0], [3, 9]]);
    const base = new Map([[1, 1.0], [2, 1.5]]);
    expect(pairedDifferences(path, base)).toEqual([0.5, 0.5]);
  });

  it('divides medians and refuses a zero or missing denominator', () => {
    expect(ratio(summarize([2]), summarize([8]))).toBe(0.25);
    expect(ratio(summarize([2]), summarize([0]))).toBeUndefined();
    expect(ratio(undefined, summarize([1]))).toBeUndefined();
  });
});

describe('/proc/<pid>/stat', () => {
  // A real line shape; comm "(node) x" contains a space and a parenthesis.
  const line = '4242 ((node) x) S 4000 4242 4000 0 -1 4194560 2935 0 0 0 1234 567 8 9 20 0 11 0 144368 1139453952 12000 18446744073709551615';

  it('counts fields from the last parenthesis', () => {
    expect(parseProcStat(line)).toEqual({ pid: 4242, comm: '(node) x', state: 'S', ppid: 4000, utime: 1234, stime: 567, cutime: 8, cstime: 9 });
  });

  it('rejects lines that are not stat lines', () => {
    expect(parseProcStat('')).toBeUndefined();
    expect(parseProcStat('12 (x) S')).toBeUndefined();
  });

  const p = (pid: number, ppid: number, utime: number, stime = 0): ProcStat => ({ pid, ppid, comm: 'x', state: 'S', utime, stime, cutime: 0, cstime: 0 });
  const table = [p(1, 0, 1000), p(10, 1, 100, 50), p(11, 10, 7, 3), p(12, 11, 1), p(20, 1, 999), p(30, 10, 2)];

  it('sums a process and all its descendants, not its siblings or parent', () => {
    expect(treeCpuTicks(table, [10])).toBe(150 + 10 + 1 + 2);
    expect(treeCpuTicks(table, [10, 20])).toBe(163 + 999);
    expect(treeCpuTicks(table, [11, 10])).toBe(163);
    expect(treeCpuTicks(table, [404])).toBe(0);
  });

  it('measures the CPU seconds spent while the work runs', async () => {
    const snapshots = [[p(10, 1, 100)], [p(10, 1, 350, 50)]];
    const meter = new CpuMeter(100, async () => snapshots.shift()!);
    const { result, cpuSeconds } = await meter.measure([10], async () => 'done');
    expect(result).toBe('done');
    expect(cpuSeconds).toBe(3);
  });
});

describe('iperf3', () => {
  // Trimmed from a real `iperf3 -c … -P 2 -R --json` (3.12) run.
  const output = JSON.stringify({
    start: { version: 'iperf 3.12', test_start: { protocol: 'TCP', num_streams: 2, duration: 1, reverse: 1 } },
    intervals: [],
    end: {
      sum_sent: { start: 0, end: 1.000846, seconds: 1.000846, bytes: 1710489600, bits_per_second: 13672349991.906849, retransmits: 7, sender: false },
      sum_received: { start: 0, end: 1.00024, seconds: 1.00024, bytes: 1708457931, bits_per_second: 13664383995.841, sender: false },
    },
  });

  it('reports the receiver side', () => {
    expect(parseIperf3Json(output)).toEqual({ bytes: 1708457931, seconds: 1.00024, bitsPerSecond: 13664383995.841, retransmits: 7, streams: 2, reverse: true });
  });

  it('turns the error field into a failure even though iperf3 exits 0', () => {
    const failed = JSON.stringify({ start: { connected: [] }, intervals: [], end: {}, error: 'unable to connect to server: Connection refused' });
    expect(() => parseIperf3Json(failed)).toThrow(/unable to connect to server/);
  });

  it('rejects output that is not JSON or lacks the receiver summary', () => {
    expect(() => parseIperf3Json('iperf3: error - the server is busy')).toThrow(/did not print JSON/);
    expect(() => parseIperf3Json(JSON.stringify({ end: { sum_sent: {} } }))).toThrow(/sum_received/);
  });

  it('adds --reverse only for the reverse direction', () => {
    const argv = iperf3ClientArgv({ host: '10.244.2.3', port: 5201, seconds: 10, streams: 4, reverse: false });
    expect(argv).toEqual(expect.arrayContaining(['--client', '10.244.2.3', '--parallel', '4', '--time', '10', '--json']));
    expect(argv).not.toContain('--reverse');
    expect(iperf3ClientArgv({ host: 'h', port: 1, seconds: 1, streams: 1, reverse: true })).toContain('--reverse');
  });
});

describe('open-loop load generator', () => {
  it('schedules by wall clock and spreads requests round-robin', () => {
    expect(dueOffsetMs(0, 1000)).toBe(0);
    expect(dueOffsetMs(1500, 1000)).toBe(1500);
    expect(dueOffsetMs(3, 4)).toBe(750);
    expect([0, 1, 2, 3, 4, 5].map((i) => connectionFor(i, 4))).toEqual([0, 1, 2, 3, 0, 1]);
  });

  const report = {
    ok: true, targetRate: 1000, connections: 4, durationSeconds: 2, warmupRequests: 500, scheduled: 2000, completed: 2000, errors: 0, errorKinds: {},
    achievedRate: 999.5, latencyMs: { p50: 0.2, p90: 0.4, p99: 1.1, p999: 2, max: 3, mean: 0.3 }, sendLagMs: { p50: 0.5, p90: 0.9, p99: 1, p999: 1, max: 2, mean: 0.5 }, connectionsOpened: 4,
  };

  it('reads the last stdout line as the report', () => {
    expect(parseOpenLoopReport(`noise\n${JSON.stringify(report)}\n`).latencyMs.p99).toBe(1.1);
  });

  it('surfaces the generator’s own failure', () => {
    expect(() => parseOpenLoopReport('{"ok":false,"error":"ECONNREFUSED"}')).toThrow(/ECONNREFUSED/);
    expect(() => parseOpenLoopReport('')).toThrow(/did not print a JSON report/);
  });
});

describe('settings and plan', () => {
  it('uses the full defaults', () => {
    const s = resolveSettings({});
    expect(s).toMatchObject({ quick: false, runs: 3, throughputSeconds: 10, streams: [1, 4], latencySeconds: 30, rate: 1000, connections: [4, 16], paths: ['direct', 'stunnel', 'haproxy', 'nginx', 'amesh', 'amesh-nft'] });
    expect(s).toMatchObject({ maxRateSeconds: 10, connRateSeconds: 10, connRateConcurrency: [4, 16], memoryConnections: [1000, 10_000], l7Seconds: 10 });
  });

  it('--quick shrinks the defaults, explicit flags still win', () => {
    expect(resolveSettings({ quick: true })).toMatchObject({ runs: 1, throughputSeconds: 1, streams: [1], latencySeconds: 1, connections: [4], memoryConnections: [100], l7Seconds: 1 });
    expect(resolveSettings({ quick: true, runs: '2', paths: 'amesh,direct' })).toMatchObject({ runs: 2, paths: ['direct', 'amesh'] });
    expect(resolveSettings({ quick: true }).connRateConcurrency).toEqual([4]);
    expect(resolveSettings({ connrateConcurrency: '8,32' }).connRateConcurrency).toEqual([8, 32]);
  });

  it('rejects bad values naming the flag', () => {
    expect(() => resolveSettings({ runs: '0' })).toThrow(/--runs 0/);
    expect(() => resolveSettings({ paths: 'direct,envoy' })).toThrow(/--paths/);
    expect(() => resolveSettings({ scenarios: 'latency,l8' })).toThrow(/--scenarios/);
    expect(() => resolveSettings({ memoryConnections: '0' })).toThrow(/--memory-connections/);
    expect(() => resolveSettings({ connrateConcurrency: '4,0' })).toThrow(/--connrate-concurrency/);
    expect(() => resolveSettings({ streams: '1,x' })).toThrow(/--streams/);
    expect(() => resolveSettings({ captureMode: 'tproxy' })).toThrow(/--capture-mode/);
  });

  it('rotates the path order each run', () => {
    expect(rotate(['a', 'b', 'c'], 1)).toEqual(['b', 'c', 'a']);
    expect(rotate(['a', 'b', 'c'], 4)).toEqual(['b', 'c', 'a']);
    const plan = buildPlan({ scenarios: ['throughput', 'latency'], paths: ['direct', 'stunnel', 'amesh'], runs: 2, streams: [1, 4], directions: ['forward', 'reverse'], connections: [4] });
    expect(plan).toHaveLength(2 * 2 * 2 * 3 + 1 * 2 * 3);
    expect(plan.slice(0, 6).map((t) => `${t.path}${t.run}`)).toEqual(['direct1', 'stunnel1', 'amesh1', 'stunnel2', 'amesh2', 'direct2']);
    expect(plan.at(-1)).toMatchObject({ scenario: 'latency', connections: 4, run: 2 });
  });
});

describe('stunnel comparator', () => {
  it('configures mutual TLS 1.3 with chain and peer verification, no SNI on the client', () => {
    const conf = stunnelConfig({ role: 'client', certFile: '/c.pem', keyFile: '/k.pem', trustFile: '/t.pem', logFile: '/l', services: [{ name: 'x', accept: '127.0.0.1:1', connect: '10.0.0.1:2' }] });
    for (const line of ['client = yes', 'sni =', 'verifyChain = yes', 'verifyPeer = yes', 'sslVersionMin = TLSv1.3', 'CAfile = /t.pem', 'accept = 127.0.0.1:1', 'foreground = yes']) {
      expect(conf.split('\n')).toContain(line);
    }
    expect(stunnelConfig({ role: 'server', certFile: '', keyFile: '', trustFile: '', logFile: '', services: [] })).not.toContain('client = yes');
  });

  it('takes the leaf from a chain and reads the negotiated suite from the log', () => {
    const leaf = '-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n';
    expect(firstCertificate(`${leaf}-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n`)).toBe(leaf);
    const log = 'LOG6[0]: TLSv1.3 ciphersuite: TLS_AES_256_GCM_SHA384 (256-bit encryption)\nLOG6[0]: Peer temporary key: X25519, 253 bits\n';
    expect(negotiatedTls(log)).toBe('TLSv1.3 TLS_AES_256_GCM_SHA384, X25519');
    expect(negotiatedTls('nothing')).toBeUndefined();
  });

  it('parses tool versions', () => {
    expect(parseIperf3Version('iperf 3.12 (cJSON 1.7.15)\nLinux vm')).toBe('3.12');
    expect(parseStunnelVersion('stunnel 5.68 on x86_64-pc-linux-gnu platform\nCompiled with OpenSSL 3.0.9 30 May 2023\nRunning  with OpenSSL 3.0.19 27 Jan 2026')).toBe('5.68 (OpenSSL 3.0.19)');
  });
});

describe('report', () => {
  it('formats numbers, spreads and ratios', () => {
    expect(formatNumber(23.456)).toBe('23.5');
    expect(formatNumber(4.216)).toBe('4.22');
    expect(formatNumber(0.1234)).toBe('0.123');
    expect(formatNumber(0)).toBe('0');
    expect(formatSummary(summarize([4.1, 4.3, 4.2]), 3)).toBe('4.20 [4.10–4.30]');
    expect(formatSummary(summarize([4.1, 4.3]), 3)).toBe('4.20 [4.10–4.30] (n=2)');
    expect(formatSummary(undefined, 3)).toBe('—');
    expect(formatRatio(0.1234)).toBe('0.12×');
    expect(formatRatio(undefined)).toBe('—');
  });

  const tp = (path: ThroughputSample['path'], run: number, gbps: number, cpu?: number): ThroughputSample => ({
    path, streams: 1, reverse: false, run, gbps, ...(cpu === undefined ? {} : { cpuSecondsPerGB: cpu }),
  });
  const lat = (path: LatencySample['path'], run: number, p50: number, p99: number, cores?: number): LatencySample => ({
    path, connections: 4, run, targetRate: 1000, p50Ms: p50, p90Ms: p50 * 2, p99Ms: p99, achievedRate: 1000, errors: 0, sendLagP99Ms: 1, stealPercent: run, ...(cores === undefined ? {} : { coresPer1000Rps: cores }),
  });
  const results: BenchResults = {
    schema: 1,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:10:00.000Z',
    settings: {
      quick: false, runs: 3, paths: ['direct', 'stunnel', 'amesh'], throughputSeconds: 10, streams: [1], directions: ['forward'], latencySeconds: 30, warmupSeconds: 2, rate: 1000, connections: [4], responseBytes: 1024,
      maxRateSeconds: 10, maxRateConnections: 16, connRateSeconds: 10, connRateConcurrency: [4], memoryConnections: [1000], l7Seconds: 10,
    },
    environment: {
      node: 'v20', openssl: '3.0', kernel: '6.18', iperf3: '3.12', stunnel: '5.68', haproxy: '2.6', nginx: '1.22', wrk: '4.1', amesh: '0.1.0', cpus: '2 × x', clockTicksPerSecond: 100,
      captureMode: 'ebpf', captureModeNft: 'n/a', h2Settings: { streamWindowBytes: 4194304 }, stunnelTls: 'TLSv1.3', loadAverageStart: [0, 0, 0], loadAverageEnd: [0, 0, 0],
    },
    throughput: [tp('direct', 1, 30), tp('direct', 2, 20), tp('direct', 3, 25), tp('stunnel', 1, 4, 2), tp('stunnel', 2, 4, 2), tp('stunnel', 3, 4, 2), tp('amesh', 1, 3, 3), tp('amesh', 2, 3, 3), tp('amesh', 3, 2, 4)],
    latency: [
      lat('direct', 1, 0.1, 0.5), lat('direct', 2, 0.2, 0.6), lat('direct', 3, 0.1, 0.5),
      lat('stunnel', 1, 0.2, 0.8, 0.15), lat('stunnel', 2, 0.3, 0.9, 0.15), lat('stunnel', 3, 0.2, 0.8, 0.15),
      lat('amesh', 1, 0.3, 1.0, 0.3), lat('amesh', 2, 0.4, 1.1, 0.3), lat('amesh', 3, 0.3, 1.5, 0.3),
    ],
    maxrate: [],
    connrate: [],
    memory: [],
    notes: ['a note'],
  };
  const tables = buildTables(results);
  const table = (id: string) => tables.find((t) => t.id === id)!;

  it('computes amesh ÷ direct and amesh ÷ best comparator on medians', () => {
    const row = table('throughput-gbps').rows[0]!;
    expect(row.label).toBe('-P1 client→server');
    expect(row.cells.direct?.median).toBe(25);
    expect(row.ratios[VS_DIRECT]).toBeCloseTo(3 / 25);
    expect(row.ratios[VS_BEST]).toBeCloseTo(3 / 4);
    expect(row.bestComparator).toBe('stunnel');
    const cpu = table('throughput-cpu-per-gb');
    expect(cpu.columns).toEqual(['stunnel', 'amesh']);
    expect(cpu.ratioColumns).toEqual([VS_BEST]);
    expect(cpu.rows[0]!.ratios[VS_BEST]).toBeCloseTo(1.5);
    expect(cpu.rows[0]!.ratios[VS_DIRECT]).toBeUndefined();
  });

  it('computes added latency run by run against direct', () => {
    const added = table('latency-added');
    const p99 = added.rows.find((r) => r.label === '4 connections, p99')!;
    // amesh − direct per run: 0.5, 0.5, 1.0 → median 0.5; stunnel: 0.3, 0.3, 0.3.
    expect(p99.cells.amesh?.median).toBeCloseTo(0.5);
    expect(p99.cells.amesh?.min).toBeCloseTo(0.5);
    expect(p99.cells.amesh?.max).toBeCloseTo(1.0);
    expect(p99.cells.stunnel?.median).toBeCloseTo(0.3);
    expect(p99.ratios[VS_BEST]).toBeCloseTo(0.5 / 0.3);
    expect(table('latency-cores-per-1000rps').rows[0]!.cells.amesh?.median).toBe(0.3);
    // Steal is the machine's, shown per path beside the latencies, never as an amesh ratio.
    const steal = table('latency-steal');
    expect(steal.rows[0]!.cells.amesh?.max).toBe(3);
    expect(steal.ratioColumns).toEqual([]);
  });

  it('renders one Markdown table per metric with both ratio columns', () => {
    const md = renderTable(table('throughput-gbps'));
    expect(md).toContain('| test | direct | stunnel pair | amesh | amesh ÷ direct | amesh ÷ best comparator |');
    expect(md).toContain('| -P1 client→server | 25.0 [20.0–30.0] | 4.00 [4.00–4.00] | 3.00 [2.00–3.00] | 0.12× | 0.75× (stunnel) |');
    expect(renderTable(table('throughput-cpu-per-gb'))).toContain('| test | stunnel pair | amesh | amesh ÷ best comparator |\n');
    const full = renderMarkdown(results, tables);
    expect(full).toContain('| capture mode (amesh / amesh-nft) | ebpf / n/a |');
    expect(full).toContain('"streamWindowBytes":4194304');
    expect(full).toContain('## 2. Latency at 1000 req/s');
    expect(full).not.toContain('## Failures');
    expect(full).toContain('## Ratios: amesh ÷ direct and amesh ÷ best comparator (medians)');
    expect(full).toContain('| Throughput (Gbit/s): -P1 client→server | higher | 3.00 | 0.12× | 0.75× (stunnel) |');
    expect(harnessHealthy(results, ['throughput', 'latency'])).toBe(true);
  });

  it('lists failed runs and failed requests, and marks the harness unhealthy', () => {
    const broken: BenchResults = {
      ...results,
      throughput: [...results.throughput, { path: 'amesh', streams: 1, reverse: false, run: 4, error: 'iperf3 failed: boom' }],
      latency: [...results.latency.slice(1), { ...lat('direct', 1, 0.1, 0.5), errors: 3, errorKinds: { TIMEOUT: 3 } }],
    };
    const md = renderMarkdown(broken, buildTables(broken));
    expect(md).toContain('## Failures');
    expect(md).toContain('amesh iperf3 -P1 client→server run 4: iperf3 failed: boom');
    expect(md).toContain('3 failed requests {"TIMEOUT":3}');
    expect(harnessHealthy(broken)).toBe(false);
  });
});

describe('machine CPU from /proc/stat', () => {
  const stat = (user: number, idle: number, steal: number): string =>
    `cpu  ${user} 0 ${user / 2} ${idle} 0 0 ${user / 10} ${steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2\n`;

  it('reads the all-CPU line and splits busy, idle and steal', () => {
    expect(parseMachineCpu(stat(100, 400, 20))).toEqual({ busy: 160, idle: 400, steal: 20 });
    expect(parseMachineCpu('intr 1 2\n')).toBeUndefined();
    expect(parseMachineCpu('cpu  1 2 x 4 5 6 7 8\n')).toBeUndefined();
  });

  it('gives the shares between two readings', () => {
    const a = { busy: 100, idle: 100, steal: 0 };
    const shares = machineCpuShares(a, { busy: 190, idle: 100, steal: 10 });
    expect(shares).toEqual({ busyPercent: 90, idlePercent: 0, stealPercent: 10 });
    expect(machineCpuShares(a, a)).toBeUndefined();
  });
});
