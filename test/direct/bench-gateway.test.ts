/**
 * Smoke test of the gateway bench (bench/gateway-harness.ts, `npm run bench:gateway`) at tiny
 * settings: every path is probed (the right backend, the edge certificate for the host name),
 * measured twice, summarized (median, spread, added p99, amesh ÷ nginx), rendered, and no child
 * process is left running. No timing is asserted — that is the bench's job. nginx or wrk missing
 * must show up as skipped with the reason, never as a number.
 *
 * The bench's processes run compiled code (dist/bench/gateway-roles.js, waypoint-roles.js,
 * load/open-loop-client.js): this test needs `npm run build:ts` first.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { nginxEdgeConfig, parseNginxOpenssl } from '../../bench/comparators/nginx.js';
import { GATEWAY_PATHS, runGatewayBench } from '../../bench/gateway-harness.js';
import { judgeEdgeProbe } from '../../bench/gateway-load.js';
import { gatewayMarkdown } from '../../bench/gateway-report.js';
import { EDGE_HOST, EDGE_PORT, gatewayBenchConfig } from '../../bench/gateway-topology.js';
import { GATEWAY_LISTENER_ADDRESS } from '../../src/l7/config.js';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function installed(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch (err) {
    // `wrk --version` exits 1 after printing its banner: only a missing program counts.
    return (err as { code?: string }).code !== 'ENOENT';
  }
}

describe('gateway bench: configs and probe judgement', () => {
  it('gives the gateway and nginx the same host, certificate and backend', () => {
    const cert = { certChain: '-----BEGIN CERTIFICATE-----\n', privateKey: '-----BEGIN PRIVATE KEY-----\n' };
    expect(gatewayBenchConfig(8001, cert, 'plain').clusters[0]!.endpoints[0]!.hbone).toBe(false);
    const config = gatewayBenchConfig(8001, cert);
    expect(config.kind).toBe('gateway');
    expect(config.listeners).toEqual([expect.objectContaining({ port: EDGE_PORT, protocol: 'HTTPS', certificates: [expect.objectContaining({ hostnames: [EDGE_HOST], ...cert })] })]);
    expect(config.services[0]!.addresses).toEqual([GATEWAY_LISTENER_ADDRESS]);
    const port = config.services[0]!.ports[0]!;
    expect(port).toMatchObject({ port: EDGE_PORT, defaultCluster: '' });
    expect(port.routes[0]!.matches).toEqual([{ authority: { kind: 'exact', value: EDGE_HOST } }]);
    expect(config.clusters[0]!.endpoints).toEqual([expect.objectContaining({ address: '127.0.0.1', port: 8001, hbone: true })]);

    const n = nginxEdgeConfig({ listenPort: 9443, backendPort: 8001, dir: '/tmp/x', serverName: EDGE_HOST, certFile: '/x/edge.crt', keyFile: '/x/edge.key' });
    expect(n).toContain('listen 127.0.0.1:9443 ssl;');
    expect(n).toContain(`server_name ${EDGE_HOST};`);
    expect(n).toContain('ssl_certificate /x/edge.crt;');
    expect(n).toContain('ssl_protocols TLSv1.3;');
    expect(n).toContain('worker_processes 1;');
    expect(n).toMatch(/upstream backend \{ server 127\.0\.0\.1:8001; keepalive 32;/);
    expect(n).toContain('proxy_set_header Connection "";');
    expect(parseNginxOpenssl('built with OpenSSL 3.0.22 25 Aug 2026 (running with OpenSSL 3.0.19 27 Jan 2026)')).toBe('OpenSSL 3.0.19');
  });

  it('refuses a probe with a wrong answer or the wrong certificate', () => {
    const ok = { requests: 10, ok: 10, failures: {}, certificateNames: [EDGE_HOST] };
    expect(judgeEdgeProbe(ok, EDGE_HOST)).toEqual([]);
    expect(judgeEdgeProbe({ ...ok, ok: 9, failures: { 'HTTP 404': 1 } }, EDGE_HOST)[0]).toContain('9/10');
    expect(judgeEdgeProbe({ ...ok, certificateNames: ['other.example.com'] }, EDGE_HOST)[0]).toContain('not bench.example.com');
    expect(judgeEdgeProbe({ requests: 0, ok: 0, failures: {} })).toHaveLength(1);
  });
});

describe('gateway bench harness', () => {
  it('probes and measures every path at tiny settings, then stops every process it started', async () => {
    const lines: string[] = [];
    const result = await runGatewayBench({
      runs: 2,
      maxRateSeconds: 1,
      latencySeconds: 1,
      warmupSeconds: 0,
      rate: 200,
      connections: 4,
      responseBytes: 1024,
      probeRequests: 10,
      gatewayAccessLog: false,
      timeoutMs: 15_000,
      progress: { step: (t) => lines.push(t), info: (t) => lines.push(t) },
    });

    expect(result.paths.map((p) => p.path)).toEqual([...GATEWAY_PATHS]);
    const haveWrk = installed('wrk', ['--version']);
    const haveNginx = installed('nginx', ['-v']);
    for (const p of result.paths) {
      if (p.path === 'nginx' && !haveNginx) {
        expect(p.skipped).toContain('not installed');
        expect(p.runs).toEqual([]);
        continue;
      }
      expect(p.skipped, `${p.path}: ${p.skipped}`).toBeUndefined();
      expect(judgeEdgeProbe(p.probe!, p.path === 'direct' ? undefined : EDGE_HOST)).toEqual([]);
      expect(p.runs.map((r) => r.run)).toEqual([1, 2]);
      for (const r of p.runs) {
        expect(r.error, `${p.path} run ${r.run}: ${r.error}`).toBeUndefined();
        if (haveWrk) {
          expect(r.maxRate!.requests).toBeGreaterThan(0);
          expect(r.maxRate!.errors).toBe(0);
          if (p.path === 'direct') expect(r.maxRate!.backendRequestsPerCoreSecond).toBeGreaterThan(0);
          else expect(r.maxRate!.requestsPerCoreSecond).toBeGreaterThan(0);
        } else {
          expect(r.maxRate).toBeUndefined();
        }
        expect(r.latency!.completed).toBeGreaterThan(0);
        expect(r.latency!.errors).toBe(0);
      }
      expect(p.summary.p99Ms!.n).toBe(2);
      if (p.path !== 'direct') {
        expect(p.summary.addedP99Ms!.n).toBe(2);
        expect(p.summary.coresPer1000Rps!.median).toBeGreaterThan(0);
      }
    }
    // Into the mesh: the destination agent (the HBONE terminator) carried the gateway's requests.
    const amesh = result.paths.find((p) => p.path === 'amesh')!;
    expect(amesh.runs.every((r) => (r.latency!.destAgentCpuSeconds ?? -1) >= 0)).toBe(true);
    if (haveWrk) expect(amesh.runs.some((r) => r.maxRate!.destAgentCpuSeconds! > 0)).toBe(true);
    if (haveNginx) {
      expect(result.ratios.p99).toBeGreaterThan(0);
      if (haveWrk) expect(result.ratios.requestsPerCoreSecond).toBeGreaterThan(0);
      expect(result.ratios.plainP99).toBeGreaterThan(0);
    }
    // The plain-upstream variant has no destination agent.
    expect(result.paths.find((p) => p.path === 'amesh-plain')!.runs.every((r) => r.latency!.destAgentCpuSeconds === undefined)).toBe(true);
    expect(result.environment.kernel).not.toBe('');

    const markdown = gatewayMarkdown(result);
    expect(markdown).toContain('| amesh gateway (TLS 1.3 termination → HBONE into the mesh) |');
    expect(markdown).toContain('**amesh ÷ nginx**');
    expect(lines.some((l) => l.startsWith('run 2/2'))).toBe(true);

    // Nothing left behind: backend, destination agent, gateway and nginx were stopped by pid.
    expect(result.processes.map((p) => p.name)).toEqual(expect.arrayContaining(['backends', 'dest-agent', 'gateway', 'gateway-plain', ...(haveNginx ? ['nginx'] : [])]));
    for (const p of result.processes) expect(isRunning(p.pid), `${p.name} (${p.pid})`).toBe(false);
  }, 120_000);
});
