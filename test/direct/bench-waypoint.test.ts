/**
 * Smoke test of the waypoint bench (bench/waypoint-harness.ts, `npm run bench:waypoint`) at tiny
 * settings: every path (haproxy also with mutual TLS in) is probed for routing and measured, the ratios and added latency are
 * derived, and no child process is left running. No timing is asserted — that is the bench's job.
 * A comparator or wrk that is not installed must show up as skipped with the reason, never as a
 * number.
 *
 * The bench's processes run compiled code (dist/bench/waypoint-roles.js, load/open-loop-client.js):
 * this test needs `npm run build:ts` first.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { haproxyConfig, haproxyTlsClientConfig } from '../../bench/comparators/haproxy.js';
import { nginxConfig } from '../../bench/comparators/nginx.js';
import { runWaypointBench, WAYPOINT_PATHS } from '../../bench/waypoint-harness.js';
import { parseWrkOutput } from '../../bench/waypoint-load.js';
import { waypointMarkdown } from '../../bench/waypoint-report.js';
import { judgeProbe, waypointBenchConfig } from '../../bench/waypoint-topology.js';

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

describe('waypoint bench: routing judgement and configs', () => {
  it('accepts a 90/10 split with every beta request on v2, refuses anything else', () => {
    const ok = { beta: { v1: 0, v2: 200, other: 0 }, plain: { v1: 180, v2: 20, other: 0 } };
    expect(judgeProbe(ok)).toEqual([]);
    expect(judgeProbe({ ...ok, beta: { v1: 1, v2: 199, other: 0 } })[0]).toContain('199/200 on v2');
    expect(judgeProbe({ ...ok, plain: { v1: 100, v2: 100, other: 0 } })[0]).toContain('v2 took 50.0 %');
    expect(judgeProbe({ ...ok, plain: { v1: 200, v2: 0, other: 0 } })[0]).toContain('v2 took 0.0 %');
    expect(judgeProbe({ ...ok, plain: { v1: 170, v2: 20, other: 10 } })[0]).toContain('answered by neither');
    expect(judgeProbe({ beta: { v1: 0, v2: 0, other: 0 }, plain: { v1: 0, v2: 0, other: 0 } })).toHaveLength(2);
  });

  it('renders the same routing for the waypoint, haproxy and nginx', () => {
    const backends = { v1: 8001, v2: 8002 };
    const config = waypointBenchConfig(backends);
    expect(config.services.map((s) => s.addresses[0])).toEqual(['10.96.0.10', '10.96.0.11']);
    const routes = config.services[0]!.ports[0]!.routes;
    expect(routes[0]!.matches[0]!.headers).toEqual([{ name: 'x-user', match: { kind: 'exact', value: 'beta' } }]);
    expect(routes[1]!.action).toMatchObject({ kind: 'forward', backends: [{ weight: 90 }, { weight: 10 }] });
    expect(config.clusters.filter((c) => c.endpoints.every((e) => e.hbone))).toHaveLength(3);
    expect(config.clusters.filter((c) => c.endpoints.every((e) => !e.hbone))).toHaveLength(3);

    const h = haproxyConfig({ listenPort: 9000, backends });
    expect(h).toContain('acl beta req.hdr(x-user) -m str beta');
    expect(h).toContain('server v1 127.0.0.1:8001 weight 90');
    expect(h).toContain('server v2 127.0.0.1:8002 weight 10');
    expect(h).toContain('http-reuse always');
    expect(h).toContain('nbthread 1');
    expect(h).not.toContain('ssl');
    const tls = { crtFile: '/x/l7.pem', caFile: '/x/root.pem' };
    expect(haproxyConfig({ listenPort: 9000, backends }, tls)).toContain('bind 127.0.0.1:9000 ssl crt /x/l7.pem ca-file /x/root.pem verify required');
    expect(haproxyTlsClientConfig({ listenPort: 9002, targetPort: 9000, tls })).toContain('server l7 127.0.0.1:9000 ssl crt /x/l7.pem ca-file /x/root.pem verify required');
    const n = nginxConfig({ listenPort: 9001, backends, dir: '/tmp/x' });
    expect(n).toContain('map $http_x_user $route { "beta" v2; default $weighted; }');
    expect(n).toContain('split_clients "${request_id}" $weighted { 90% v1; * v2; }');
    expect(n).toContain('worker_processes 1;');
    expect(n).toMatch(/upstream v1 \{ server 127\.0\.0\.1:8001; keepalive 32;/);
  });

  it('parses wrk 4 reports, errors included', () => {
    const text = `Running 2s test @ http://127.0.0.1:1/\n  1 threads and 16 connections\n  80000 requests in 2.00s, 90.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  39990.12\nTransfer/sec:     45.00MB\n`;
    expect(parseWrkOutput(text)).toEqual({ requests: 80000, seconds: 2, requestsPerSecond: 39990.12, errors: 7 });
    expect(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(/no summary/);
  });
});

describe('waypoint bench harness', () => {
  it('probes and measures every path at tiny settings, then stops every process it started', async () => {
    const lines: string[] = [];
    const result = await runWaypointBench({
      maxRateSeconds: 1,
      latencySeconds: 1,
      warmupSeconds: 0,
      rate: 200,
      connections: 4,
      responseBytes: 1024,
      // 200, not 50: at a 10 % split, 50 requests give v2 none 0.5 % of the time (0.9^50) per path,
      // which the 2–22 % acceptance then reports as a routing failure; 200 makes that ~1e-9.
      probeRequests: 200,
      waypointAccessLog: false,
      timeoutMs: 15_000,
      progress: { step: (t) => lines.push(t), info: (t) => lines.push(t) },
    });

    expect(result.paths.map((p) => p.path)).toEqual([...WAYPOINT_PATHS]);
    const haveWrk = installed('wrk', ['--version']);
    const haveHaproxy = installed('haproxy', ['-v']);
    const available: Record<string, boolean> = { haproxy: haveHaproxy, 'haproxy-mtls': haveHaproxy, nginx: installed('nginx', ['-v']) };
    for (const p of result.paths) {
      expect(p.error, `${p.path}: ${p.error}`).toBeUndefined();
      if (p.path in available && !available[p.path]) {
        expect(p.skipped).toContain('not installed');
        expect(p.maxRate).toBeUndefined();
        continue;
      }
      expect(p.skipped, `${p.path}: ${p.skipped}`).toBeUndefined();
      if (p.path !== 'direct') {
        expect(p.probe!.beta.v2).toBe(200);
        expect(judgeProbe(p.probe!)).toEqual([]);
      }
      if (haveWrk) {
        expect(p.maxRate!.requests).toBeGreaterThan(0);
        expect(p.maxRate!.errors).toBe(0);
        if (p.path !== 'direct') {
          expect(p.maxRate!.proxyCpuSeconds).toBeGreaterThan(0);
          expect(p.maxRate!.requestsPerCoreSecond).toBeGreaterThan(0);
        } else {
          expect(p.maxRate!.backendRequestsPerCoreSecond).toBeGreaterThan(0);
        }
      } else {
        expect(p.maxRate).toBeUndefined();
      }
      expect(p.latency!.completed).toBeGreaterThan(0);
      expect(p.latency!.errors).toBe(0);
      if (p.path !== 'direct') {
        expect(p.latency!.pairedDirectP99Ms).toBeGreaterThan(0);
        expect(p.latency!.addedP99Ms).toBeCloseTo(p.latency!.p99Ms - p.latency!.pairedDirectP99Ms!, 2);
      }
    }
    const hbone = result.paths.find((p) => p.path === 'amesh-hbone')!;
    if (haveWrk) {
      expect(hbone.maxRate!.clientAgentCpuSeconds).toBeGreaterThan(0);
      expect(hbone.maxRate!.destAgentCpuSeconds).toBeGreaterThan(0);
      if (haveHaproxy) {
        expect(hbone.maxRate!.ratioToHaproxy).toBeGreaterThan(0);
        expect(result.paths.find((p) => p.path === 'haproxy-mtls')!.maxRate!.clientAgentCpuSeconds).toBeGreaterThan(0);
      }
    }

    const markdown = waypointMarkdown(result);
    expect(markdown).toContain('| amesh waypoint, HBONE both hops |');
    expect(markdown).toContain('Targets (issue #6)');
    expect(lines.some((l) => l.includes('probe: beta'))).toBe(true);

    // Nothing left behind: backends, waypoint, agents and comparators were stopped by pid.
    expect(result.processes.map((p) => p.name)).toEqual(expect.arrayContaining(['backends', 'dest-agent', 'waypoint', 'client-agent']));
    for (const p of result.processes) expect(isRunning(p.pid), `${p.name} (${p.pid})`).toBe(false);
  }, 90_000);
});
