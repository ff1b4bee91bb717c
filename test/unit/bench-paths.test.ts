// npm run bench's wider coverage (issue #11): the haproxy and nginx pair configurations, the
// Debian packages a run needs, the plan and tables of scenarios 3–5, scenario 7's capture table,
// the L7 step's command line and the smoke verdict (a path without values fails it).
import { describe, expect, it } from 'vitest';
import { haproxyPairConfig } from '../../bench/comparators/haproxy-pair.js';
import { NGINX_STREAM_MODULE, nginxPairConfig } from '../../bench/comparators/nginx-pair.js';
import { l7TimeoutMs, waypointArgv } from '../../bench/l7-step.js';
import { resolveSettings } from '../../bench/options.js';
import { packagesOf, requirements } from '../../bench/packages.js';
import { buildPlan, pathsOf } from '../../bench/plan.js';
import { bestComparator, buildTables, demoteMarkdown, harnessHealthy, metricInfo, missingMeasurements, renderMarkdown, VS_BEST, VS_DIRECT } from '../../bench/report.js';
import type { BenchResults, LatencySample, MetricSample, PathName } from '../../bench/results.js';
import { summarize } from '../../bench/stats.js';
import { topologyFor } from '../../bench/testbed.js';

const tunnels = [{ name: 'http', clientPort: 28081, serverPort: 38081, targetPort: 8080 }];

describe('haproxy pair', () => {
  const spec = { crtFile: '/id/crt.pem', caFile: '/id/root.pem', serverIp: '10.244.2.3', tunnels, maxConnections: 9000 };

  it('client side: tcp mode, one thread, mutual TLS 1.3 to the server pod with the chain verified, no session reuse', () => {
    const conf = haproxyPairConfig({ ...spec, role: 'client' });
    expect(conf).toContain('  nbthread 1\n');
    expect(conf).toContain('  mode tcp\n');
    expect(conf).toContain('  maxconn 9000\n');
    expect(conf).toContain('  bind 127.0.0.1:28081\n');
    expect(conf).toMatch(/server client-http 10\.244\.2\.3:38081 ssl crt \/id\/crt\.pem ca-file \/id\/root\.pem verify required ssl-min-ver TLSv1\.3 ssl-max-ver TLSv1\.3 .* no-ssl-reuse/);
  });

  it('server side: terminates TLS requiring a client certificate, forwards to the local backend', () => {
    const conf = haproxyPairConfig({ ...spec, role: 'server' });
    expect(conf).toMatch(/bind 0\.0\.0\.0:38081 ssl crt \/id\/crt\.pem ca-file \/id\/root\.pem verify required ssl-min-ver TLSv1\.3/);
    expect(conf).toContain('server backend 127.0.0.1:8080');
  });
});

describe('nginx stream pair', () => {
  const spec = { dir: '/w', certFile: '/id/cert.pem', keyFile: '/id/key.pem', caFile: '/id/root.pem', serverIp: '10.244.2.3', tunnels, maxConnections: 9000 };

  it('client side: loads the stream module, one worker, proxy_ssl with a client certificate, TLS 1.3, no session reuse', () => {
    const conf = nginxPairConfig({ ...spec, role: 'client' });
    expect(conf.split('\n')[1]).toBe(`load_module ${NGINX_STREAM_MODULE};`);
    for (const line of ['worker_processes 1;', 'daemon off;', 'listen 127.0.0.1:28081;', 'proxy_pass 10.244.2.3:38081;', 'proxy_ssl on;', 'proxy_ssl_certificate /id/cert.pem;', 'proxy_ssl_protocols TLSv1.3;', 'proxy_ssl_session_reuse off;']) {
      expect(conf).toContain(line);
    }
    expect(conf).toContain('worker_connections 18100;');
  });

  it('server side: ssl_verify_client against the mesh root, forwards to the local backend', () => {
    const conf = nginxPairConfig({ ...spec, role: 'server' });
    for (const line of ['listen 38081 ssl;', 'ssl_client_certificate /id/root.pem;', 'ssl_verify_client on;', 'ssl_protocols TLSv1.3;', 'proxy_pass 127.0.0.1:8080;']) expect(conf).toContain(line);
    expect(conf).not.toContain('proxy_ssl on;');
  });
});

describe('packages', () => {
  it('asks for what the selected paths and scenarios need, each from its Debian package', () => {
    const all = requirements(resolveSettings({}));
    expect(packagesOf(all)).toEqual(expect.arrayContaining(['iperf3', 'wrk', 'stunnel4', 'haproxy', 'nginx-light', 'libnginx-mod-stream', 'nftables']));
    expect(all).toContainEqual({ what: NGINX_STREAM_MODULE, pkg: 'libnginx-mod-stream' });
    const small = packagesOf(requirements(resolveSettings({ paths: 'direct,amesh', scenarios: 'latency' })));
    expect(small).not.toContain('stunnel4');
    expect(small).not.toContain('iperf3');
    expect(small).not.toContain('haproxy');
    expect(small).not.toContain('wrk');
    // Every wrk scenario installs it, not only the maximum rate.
    for (const scenarios of ['connrate', 'handshakes', 'maxrate', 'l7']) expect(packagesOf(requirements(resolveSettings({ paths: 'direct,amesh', scenarios })))).toContain('wrk');
  });
});

describe('topology and plan', () => {
  it('gives each pair of pods two nodes of its own and builds only what the paths use', () => {
    const names = (paths: Parameters<typeof topologyFor>[0]): { nodes: string[]; pods: string[] } => {
      const t = topologyFor(paths);
      return { nodes: t.nodes.map((n) => n.name), pods: t.pods.map((p) => p.name) };
    };
    expect(names(['amesh'])).toEqual({ nodes: ['node1', 'node2'], pods: ['cmesh', 'smesh'] });
    expect(names(['amesh-nft'])).toEqual({ nodes: ['node3', 'node4'], pods: ['cnft', 'snft'] });
    expect(names(['direct', 'nginx'])).toEqual({ nodes: ['node5', 'node6'], pods: ['cplain', 'splain'] });
    const all = topologyFor(['direct', 'stunnel', 'haproxy', 'nginx', 'amesh', 'amesh-nft']);
    expect(all.nodes).toHaveLength(6);
    // No two paths' pods share a node, so no capture program sees another path's segments.
    const podsPerNode = new Map<string, string[]>();
    for (const p of all.pods) podsPerNode.set(p.node, [...(podsPerNode.get(p.node) ?? []), p.name]);
    expect([...podsPerNode.values()].map((pods) => pods.length)).toEqual([1, 1, 1, 1, 1, 1]);
    for (const name of [...all.nodes, ...all.pods].map((n) => n.name)) expect(`amb1a2b-${name}`.length).toBeLessThanOrEqual(15);
  });

  it('plans scenarios 3–5 interleaved by run, without a direct memory run', () => {
    const plan = buildPlan({ scenarios: ['maxrate', 'connrate', 'memory'], paths: ['direct', 'haproxy', 'amesh'], runs: 2, streams: [1], directions: ['forward'], connections: [4] });
    expect(plan.filter((t) => t.scenario === 'maxrate').map((t) => `${t.path}${t.run}`)).toEqual(['direct1', 'haproxy1', 'amesh1', 'haproxy2', 'amesh2', 'direct2']);
    expect(plan.filter((t) => t.scenario === 'memory').map((t) => t.path)).toEqual(['haproxy', 'amesh', 'amesh', 'haproxy']);
  });

  it('plans the handshake scenario for the TLS paths only, and amesh once (its nftables twin handshakes with the same code)', () => {
    const plan = buildPlan({ scenarios: ['handshakes'], paths: ['direct', 'stunnel', 'nginx', 'amesh', 'amesh-nft'], runs: 1, streams: [1], directions: ['forward'], connections: [4] });
    expect(plan.map((t) => t.path)).toEqual(['stunnel', 'nginx', 'amesh']);
    expect(pathsOf('handshakes', ['direct', 'amesh-nft'])).toEqual([]);
  });
});

describe('L7 step', () => {
  it('runs the waypoint bench with this run’s durations into a private directory', () => {
    const argv = waypointArgv({ seconds: 5, latencySeconds: 30, warmupSeconds: 2, rate: 1000 }, '/tmp/x');
    expect(argv[0]).toMatch(/waypoint\.js$/);
    // Max rate for --l7-duration, the latency run as long as scenario 2's (--latency-duration).
    expect(argv.slice(1)).toEqual(['--duration', '5', '--latency-duration', '30', '--warmup', '2', '--rate', '1000', '--out-dir', '/tmp/x']);
    expect(l7TimeoutMs({ seconds: 1, latencySeconds: 1, warmupSeconds: 0, rate: 1000 })).toBeGreaterThan(60_000);
    // Every path's latency run and its paired direct run fit, with start-up to spare.
    expect(l7TimeoutMs({ seconds: 5, latencySeconds: 30, warmupSeconds: 2, rate: 1000 })).toBeGreaterThan(6 * (5 + 2 * 30 + 3 * 2) * 1000);
  });

  it('nests the waypoint report under section 6', () => {
    expect(demoteMarkdown('# Title\n\n| a |\n## Sub\n')).toBe('| a |\n### Sub');
  });
});

describe('tables of scenarios 3–7 and the smoke verdict', () => {
  const metric = (path: PathName, run: number, values: Record<string, number>): MetricSample => ({ path, run, values });
  const lat = (path: PathName, p99: number): LatencySample => ({ path, connections: 4, run: 1, targetRate: 1000, p50Ms: p99 / 2, p90Ms: p99, p99Ms: p99, achievedRate: 1000, errors: 0, coresPer1000Rps: 0.1 });
  const paths: PathName[] = ['direct', 'stunnel', 'haproxy', 'nginx', 'amesh', 'amesh-nft'];
  const results: BenchResults = {
    schema: 1,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:01:00.000Z',
    settings: {
      quick: true, runs: 1, paths, throughputSeconds: 1, streams: [1], directions: ['forward'], latencySeconds: 1, warmupSeconds: 0, rate: 1000, connections: [4], responseBytes: 1024,
      maxRateSeconds: 1, maxRateConnections: 16, connRateSeconds: 1, connRateConcurrency: [4], memoryConnections: [100], l7Seconds: 1,
    },
    environment: {
      node: 'v20', openssl: '3.0', kernel: '6.18', iperf3: '3.12', stunnel: '5.68', haproxy: '2.6', nginx: '1.22', wrk: '4.1', amesh: '0.1.0', cpus: '2 × x', clockTicksPerSecond: 100,
      captureMode: 'ebpf', captureModeNft: 'nftables', h2Settings: 'unknown', stunnelTls: 'TLSv1.3', loadAverageStart: [0, 0, 0], loadAverageEnd: [0, 0, 0],
    },
    throughput: [],
    latency: [lat('direct', 1), lat('stunnel', 2), lat('haproxy', 2), lat('nginx', 2), lat('amesh', 3), lat('amesh-nft', 4)],
    maxrate: paths.map((p, i) => metric(p, 1, { requestsPerSecond: 1000 * (i + 1), requests: 5, mysteryRate: 3 })),
    connrate: paths.map((p, i) => metric(p, 1, { connectionsPerSecond: 100 * (i + 1), proxyCpuMsPerConnection: i })),
    memory: paths.filter((p) => p !== 'direct').map((p, i) => metric(p, 1, { idleRssKB: 1000, 'kbPerConnection@100': 10 + i })),
    l7: { document: { paths: [{ path: 'direct', maxRate: { requestsPerSecond: 9 }, latency: { p99Ms: 1 } }] }, markdown: '# Waypoint bench\n\n| path |\n' },
    notes: [],
  };
  const all = ['throughput', 'latency', 'maxrate', 'connrate', 'memory', 'l7'];
  const handshakes = (['stunnel', 'haproxy', 'nginx', 'amesh'] as const).map((p, i) => metric(p, 1, { 'connectionsPerSecond@c4': 300 + 100 * i, 'tunnelConnectionsPerConnection@c4': 1 }));
  const tables = buildTables(results);
  const byId = (id: string) => tables.find((t) => t.id === id)!;

  it('picks the best comparator per row by the metric’s direction', () => {
    const cells = { stunnel: summarize([5])!, haproxy: summarize([7])!, nginx: summarize([6])! };
    expect(bestComparator(cells, 'higher')).toBe('haproxy');
    expect(bestComparator(cells, 'lower')).toBe('stunnel');
    expect(bestComparator({ amesh: summarize([1])! }, 'lower')).toBeUndefined();
  });

  it('gives no ratio of a negative or zero median (added latency under noise, error counts)', () => {
    const noisy = { ...results, latency: [lat('direct', 5), lat('stunnel', 2), lat('haproxy', 2), lat('nginx', 2), lat('amesh', 3), lat('amesh-nft', 4)] };
    const added = buildTables(noisy).find((t) => t.id === 'latency-added')!.rows.find((r) => r.label === '4 connections, p99')!;
    expect(added.cells.amesh?.median).toBeCloseTo(-2);
    expect(added.ratios).toEqual({});
    const zero = buildTables({ ...results, maxrate: paths.map((p) => metric(p, 1, { errors: 0 })) }).find((t) => t.id === 'maxrate')!;
    expect(zero.rows[0]!.ratios).toEqual({});
  });

  it('one table per scenario, a row per named metric, hidden context left out, unknown names marked', () => {
    const maxrate = byId('maxrate');
    expect(maxrate.rows.map((r) => r.label)).toEqual(['requests/s', 'mysteryRate (higher is better, guessed)']);
    const rps = maxrate.rows[0]!;
    expect(rps.ratios[VS_DIRECT]).toBeCloseTo(5000 / 1000);
    expect(rps.bestComparator).toBe('nginx');
    expect(rps.ratios[VS_BEST]).toBeCloseTo(5000 / 4000);
    const memory = byId('memory');
    expect(memory.columns).not.toContain('direct');
    expect(memory.rows.map((r) => r.label)).toEqual(['RSS idle (KB)', 'KB per held connection, 100 held connections']);
    expect(memory.rows[1]!.bestComparator).toBe('stunnel');
    expect(metricInfo('heapUsedKB@100').guessed).toBeUndefined();
    expect(metricInfo('kbPerConnection@1000')).toEqual({ label: 'KB per held connection, 1000 held connections', better: 'lower' });
    expect(metricInfo('connectionsPerSecond@c16')).toEqual({ label: 'new connections/s (one request each), 16 concurrent', better: 'higher' });
  });

  it('scenario 7 compares eBPF with nftables capture and no capture', () => {
    const capture = byId('capture-overhead');
    expect(capture.columns).toEqual(['direct', 'amesh', 'amesh-nft']);
    expect(capture.ratioColumns).toEqual(['amesh ÷ direct', 'amesh-nft ÷ direct', 'amesh-nft ÷ amesh']);
    const p99 = capture.rows.find((r) => r.label === 'latency p99 ms, 4 connections')!;
    expect(p99.ratios['amesh-nft ÷ amesh']).toBeCloseTo(4 / 3);
    expect(capture.rows.some((r) => r.label.startsWith('connrate: new connections/s'))).toBe(true);
  });

  it('tables full handshakes for the TLS paths under section 4b; a results file from before the scenario still renders', () => {
    const withHandshakes = { ...results, handshakes };
    const table = buildTables(withHandshakes).find((t) => t.id === 'handshakes')!;
    expect(table.columns).toEqual(['stunnel', 'haproxy', 'nginx', 'amesh']);
    const rate = table.rows.find((r) => r.label === 'new connections/s (one request each), 4 concurrent')!;
    expect(rate.bestComparator).toBe('nginx');
    expect(rate.ratios[VS_BEST]).toBeCloseTo(600 / 500);
    expect(renderMarkdown(withHandshakes, buildTables(withHandshakes))).toContain('## 4b. Full mutual-TLS handshakes');
    expect(missingMeasurements({ ...withHandshakes, handshakes: handshakes.slice(0, 3) }, ['handshakes'])).toEqual(['handshakes × amesh']);
    expect(tables.some((t) => t.id === 'handshakes')).toBe(false);
    expect(renderMarkdown(results, tables)).not.toContain('## 4b.');
  });

  it('renders every section and the ratio summary; healthy when every path × scenario has a value', () => {
    const md = renderMarkdown(results, tables);
    for (const heading of ['## Ratios: amesh ÷ direct', '## 3. Maximum request rate', '## 4. Connection setup rate', '## 5. Memory', '## 6. L7', '| path |', '## 7. Capture overhead']) {
      expect(md).toContain(heading);
    }
    expect(md).not.toContain('# Waypoint bench');
    expect(missingMeasurements({ ...results, throughput: [{ path: 'direct', streams: 1, reverse: false, run: 1, gbps: 1 }] }, all)).toEqual(['throughput × stunnel', 'throughput × haproxy', 'throughput × nginx', 'throughput × amesh', 'throughput × amesh-nft']);
    expect(harnessHealthy(results, all.filter((s) => s !== 'throughput'))).toBe(true);
  });

  it('fails the smoke verdict for a path without values, a failed run or a missing L7 result', () => {
    const scenarios = ['latency', 'maxrate', 'connrate', 'memory', 'l7'];
    const noNft = { ...results, connrate: results.connrate.filter((s) => s.path !== 'amesh-nft') };
    expect(missingMeasurements(noNft, scenarios)).toEqual(['connrate × amesh-nft']);
    expect(harnessHealthy(noNft, scenarios)).toBe(false);
    const failed = { ...results, memory: [...results.memory.slice(1), { path: 'stunnel' as const, run: 1, error: 'boom' }] };
    expect(harnessHealthy(failed, scenarios)).toBe(false);
    expect(renderMarkdown(failed, buildTables(failed))).toContain('- stunnel pair memory run 1: boom');
    const { l7: _l7, ...noL7 } = results;
    expect(missingMeasurements(noL7, scenarios)).toEqual(['l7: the waypoint bench produced no result']);
    const l7Broken = { ...results, l7: { document: { paths: [{ path: 'nginx', skipped: 'nginx is not installed' }] } } };
    expect(missingMeasurements(l7Broken, scenarios)).toEqual(['l7 × nginx']);
    expect(harnessHealthy(l7Broken, scenarios)).toBe(false);
  });
});
