/**
 * Issue #7 end to end in the sandbox, with real kubectl and the amesh CLI, using the manifests a
 * reader applies by hand (samples/resilience/, docs/resilience.md). A waypoint for the demo
 * namespace enforces:
 * - retries: flaky v2 (amesh/flaky, 503 on every 2nd request) gives ~50 % success over 500
 *   requests with `attempts: 0` and ≥ 99 % with `retries: {attempts: 3, retryOn: 5xx}`;
 * - a 1 s route timeout answers httpbin's /delay/3 with 504 after ~1 s; fault delay 10 % × 2 s and
 *   abort 20 % × 500 show within ±5 points over 1 000 requests;
 * - outlier detection ejects the always-failing endpoint of two within its interval and re-admits
 *   it after baseEjectionTime; maxConnections 1 under concurrent load answers 503 flagged UO (in
 *   the response header and the waypoint's access log); consistent hashing keeps a user on one pod;
 * - the seeds' policy: only frontend's service account may GET /api/v1* on backend; a POST,
 *   another path or another caller gets 403, logged with the policy's name; the policy's status
 *   says the waypoint enforces it;
 * - a JWT-protected route: a valid token passes, a wrong-issuer, expired or foreign-key token gets
 *   401, no token 403;
 * - DestinationRule / VirtualService conditions name the fields the waypoint ignores.
 * Each case removes its objects (in `finally`), so a failing case does not break the next one.
 * Measured figures are printed with console.log.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster, HttpRoute, WaypointConfig } from '../../src/l7/config.js';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';

const guard = requireRoot('sandbox resilience and L7 authorization', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'unshare'] });
const REPO = join(import.meta.dirname, '..', '..');
const AMESH = join(REPO, 'bin', 'amesh.js');
const SAMPLES = join(REPO, 'samples', 'resilience');
const WAYPOINT_POD_SELECTOR = 'gateway.networking.k8s.io/gateway-name=waypoint';
/** Marks curl's `-w` line per transfer so it can be told apart from response bodies. */
const MARK = '@@amesh@@';
const WRITE_OUT = `\n${MARK} %{http_code} %{time_total} %header{x-amesh-response-flags}\n`;
const ISSUER = 'https://issuer.amesh.example';

interface Sample {
  /** 0 when curl got no HTTP answer. */
  code: number;
  seconds: number;
  /** `x-amesh-response-flags`, '' when absent. */
  flags: string;
}

interface Outcome {
  samples: Sample[];
  stdout: string;
  stderr: string;
  status: number | null;
  elapsedMs: number;
}

interface ConfigDump {
  config: WaypointConfig | null;
  clusters?: Array<{ name: string; endpoints: Array<{ address: string; health: string }> }>;
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

type AccessRecord = Record<string, unknown> & { msg?: string; status?: number; path?: string; method?: string; authz?: string; responseFlags?: string; requestPrincipal?: string };

function parseSamples(stdout: string): Sample[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith(`${MARK} `))
    .map((line) => {
      const [, code = '0', seconds = '0', flags = ''] = line.split(' ');
      return { code: Number(code), seconds: Number(seconds), flags: flags.trim() };
    });
}

const count = (samples: readonly Sample[], predicate: (s: Sample) => boolean): number => samples.filter(predicate).length;
const pct = (n: number, total: number): string => `${((100 * n) / Math.max(total, 1)).toFixed(1)} %`;
const codes = (samples: readonly Sample[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const s of samples) out[s.code] = (out[s.code] ?? 0) + 1;
  return out;
};

describe.skipIf(!guard.run)('resilience policies and L7 authorization (privileged sandbox)', () => {
  const name = `ar${Math.random().toString(16).slice(2, 5)}`;
  let dir = '';
  const { env, kubectl, kubectlOk, apply, amesh, exec } = sandboxCli(() => dir, { maxBuffer: 256 * 1024 * 1024 });
  const applySample = (file: string): void => void kubectlOk('apply', '-f', join(SAMPLES, file));
  /** Cleanup that must not throw (it runs in `finally`, maybe after a failed assertion). */
  const remove = (...objects: string[]): void => {
    for (const object of objects) kubectl('delete', '-n', 'demo', object, '--ignore-not-found', '--wait=false');
  };

  /** curl from a pod (host curl in the pod's network namespace); one `-w` line per transfer. */
  const curlArgs = (url: string, opts: { parallel?: number; rate?: string; headers?: string[]; method?: string; maxTime?: number }): string[] => [
    'curl',
    '-s',
    '-S',
    '--max-time',
    String(opts.maxTime ?? 10),
    '-w',
    WRITE_OUT,
    ...(opts.method ? ['-X', opts.method] : []),
    ...(opts.headers ?? []).flatMap((h) => ['-H', h]),
    ...(opts.parallel ? ['--parallel', '--parallel-immediate', '--parallel-max', String(opts.parallel)] : []),
    ...(opts.rate ? ['--rate', opts.rate] : []),
    url,
  ];
  const load = (ref: string, url: string, opts: Parameters<typeof curlArgs>[1] = {}): Outcome => {
    const started = Date.now();
    const r = exec(ref, ...curlArgs(url, opts));
    return { samples: parseSamples(r.stdout), stdout: r.stdout, stderr: r.stderr, status: r.status, elapsedMs: Date.now() - started };
  };
  /** As `load`, without blocking the test: something else can be observed while it runs. */
  const loadAsync = (ref: string, url: string, opts: Parameters<typeof curlArgs>[1] = {}, timeoutMs = 120_000): Promise<Outcome> =>
    new Promise((resolve) => {
      const started = Date.now();
      const child = spawn(process.execPath, [AMESH, 'sandbox', 'exec', '--dir', dir, ref, '--', ...curlArgs(url, opts)], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('close', (status) => {
        clearTimeout(timer);
        resolve({ samples: parseSamples(stdout), stdout, stderr, status, elapsedMs: Date.now() - started });
      });
    });
  /** One request: status, response flags and the body (the `-w` line removed). */
  const request = (ref: string, url: string, opts: Parameters<typeof curlArgs>[1] = {}): Sample & { body: string; stderr: string } => {
    const r = load(ref, url, opts);
    const sample = r.samples[0] ?? { code: 0, seconds: 0, flags: '' };
    return { ...sample, body: r.stdout.slice(0, r.stdout.lastIndexOf(`\n${MARK}`)), stderr: r.stderr };
  };

  const waypointPod = (): string => kubectlOk('get', 'pods', '-n', 'demo', '-l', WAYPOINT_POD_SELECTOR, '-o', 'jsonpath={.items[0].metadata.name}').trim();
  /** The waypoint's own view (its admin port, localhost inside its pod). */
  const configDump = (): ConfigDump => {
    const r = exec(`demo/${waypointPod()}`, 'curl', '-s', '-S', '--max-time', '5', 'http://127.0.0.1:15000/config_dump');
    expect(r.status, `waypoint config_dump: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout) as ConfigDump;
  };
  const routeNamed = (dump: ConfigDump, route: string): HttpRoute | undefined =>
    dump.config?.services.flatMap((s) => s.ports.flatMap((p) => p.routes)).find((r) => r.name === route);
  const clusterOf = (dump: ConfigDump, host: string, subset = ''): Cluster | undefined => dump.config?.clusters.find((c) => c.name === `outbound|80|${subset}|${host}.demo.svc.cluster.local`);
  const waypointLog = (): string => amesh('sandbox', 'logs', '--dir', dir, `demo/${waypointPod()}`).stdout;
  const accessRecords = (): AccessRecord[] =>
    waypointLog()
      .split('\n')
      .map((line) => {
        const start = line.indexOf('{');
        if (start < 0) return undefined;
        try {
          return JSON.parse(line.slice(start)) as AccessRecord;
        } catch {
          return undefined;
        }
      })
      .filter((r): r is AccessRecord => r?.msg === 'access');
  const conditions = (kind: string, object: string): Condition[] =>
    (JSON.parse(kubectlOk('get', kind, '-n', 'demo', object, '-o', 'json')) as { status?: { conditions?: Condition[] } }).status?.conditions ?? [];
  const describeConditions = (list: readonly Condition[]): string => list.map((c) => `${c.type}=${c.status} (${c.reason ?? ''}): ${c.message ?? ''}`).join(' | ') || 'no conditions';
  /** "where it is enforced": a True condition whose type or message names the waypoint. */
  const expectEnforcedByWaypoint = (kind: string, object: string): void => {
    const list = conditions(kind, object);
    expect(
      list.some((c) => c.status === 'True' && /waypoint/i.test(`${c.type} ${c.message ?? ''}`)),
      `${kind} ${object}: a True condition saying the waypoint enforces it; has ${describeConditions(list)}`,
    ).toBe(true);
  };

  /** When a waypoint does not become Programmed: its pods, their status and log tails. */
  const waypointDiagnostics = (): string => {
    const pods = kubectl('get', 'pods', '-n', 'demo', '-l', WAYPOINT_POD_SELECTOR, '-o', 'wide').stdout;
    const names = kubectl('get', 'pods', '-n', 'demo', '-l', WAYPOINT_POD_SELECTOR, '-o', 'jsonpath={.items[*].metadata.name}').stdout.split(' ').filter(Boolean);
    const details = names.map((pod) => {
      const status = kubectl('get', 'pod', '-n', 'demo', pod, '-o', 'jsonpath={.status}').stdout;
      const log = amesh('sandbox', 'logs', '--dir', dir, `demo/${pod}`).stdout.split('\n').slice(-30).join('\n');
      return `--- ${pod} status: ${status}\n--- ${pod} log tail:\n${log}`;
    });
    return `waypoint pods:\n${pods}\n${details.join('\n')}`;
  };
  /** For a failed assertion's message: did the policies reach the waypoint (controller) or not (then the engine)? */
  const policiesInWaypoint = (): string => {
    const config = configDump().config;
    return `waypoint config: policies ${JSON.stringify(config?.policies ?? null)}, jwtRules ${JSON.stringify((config?.jwtRules ?? null) && config?.jwtRules?.map((r) => ({ ...r, jwks: r.jwks ? '…' : undefined })))}`;
  };
  /** A status check whose failure says what the waypoint was given. */
  const expectCode = (code: number, expected: number): void => {
    if (code !== expected) expect(code, policiesInWaypoint()).toBe(expected);
  };
  /** The waypoint log's last lines, for a failed assertion's message. */
  const logTail = (lines = 20): string => `\nwaypoint log tail:\n${waypointLog().split('\n').slice(-lines).join('\n')}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-resilience-test-'));
    await sandboxUp({ dir, name, nodes: 2 });
    kubectlOk('apply', '-f', join(REPO, 'samples', 'demo', 'demo.yaml'));
    applySample('apps.yaml');
    kubectlOk('label', 'ns', 'demo', 'istio.io/dataplane-mode=ambient');
    await eventually(
      () => {
        const r = kubectlOk('get', 'deploy', '-n', 'demo', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas} {end}');
        expect(r.trim().split(' ').sort()).toEqual(['backend-v1=1', 'backend-v2=1', 'client=1', 'flaky-v2=1', 'frontend=1', 'httpbin=1', 'outlier-failing=1', 'outlier-healthy=1']);
        expect(request('demo/client', 'http://backend.demo/').code).toBe(200);
        expect(request('demo/client', 'http://httpbin.demo/get').code).toBe(200);
      },
      { timeoutMs: 90_000, intervalMs: 1000, description: 'demo and the resilience apps running in the mesh' },
    );
  }, 240_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
  }, 120_000);

  it('a waypoint for demo becomes Programmed (`amesh waypoint apply -n demo --enroll-namespace --wait`)', async () => {
    const r = amesh('waypoint', 'apply', '-n', 'demo', '--enroll-namespace', '--wait', '--timeout', '120s');
    expect(r.status, `${r.stdout}\n${r.stderr}\n${waypointDiagnostics()}`).toBe(0);
    await eventually(
      () => {
        const dump = configDump();
        for (const host of ['backend', 'flaky', 'httpbin', 'outlier']) expect(clusterOf(dump, host)?.endpoints.length ?? 0, `${host} endpoints in the waypoint`).toBeGreaterThan(0);
      },
      { timeoutMs: 30_000, intervalMs: 500, description: 'the waypoint serves demo’s services' },
    );
  }, 180_000);

  it('retries: flaky v2 (503 on every 2nd request) gives ~50 % success without retries and ≥ 99 % with attempts 3 on 5xx', async () => {
    try {
      applySample('no-retries-virtual-service.yaml');
      await eventually(
        () => {
          const route = routeNamed(configDump(), 'VirtualService/demo/flaky#0');
          expect(route).toBeDefined();
          expect(route?.retries?.attempts ?? 0).toBe(0);
        },
        { timeoutMs: 15_000, intervalMs: 500, description: 'the flaky route without retries in the waypoint' },
      );
      const without = load('demo/client', 'http://flaky.demo/?[1-500]', { maxTime: 120 });
      const withoutOk = count(without.samples, (s) => s.code === 200);
      console.log(`retries off (attempts 0): ${withoutOk}/500 succeeded (${pct(withoutOk, 500)}), codes ${JSON.stringify(codes(without.samples))}, ${without.elapsedMs} ms`);
      expect(without.samples.length, without.stderr).toBe(500);
      expect(withoutOk).toBeGreaterThanOrEqual(225);
      expect(withoutOk).toBeLessThanOrEqual(275);

      applySample('retries-virtual-service.yaml');
      await eventually(
        () => {
          const retries = routeNamed(configDump(), 'VirtualService/demo/flaky#0')?.retries;
          expect(retries?.attempts).toBe(3);
          expect(retries?.retryOn).toContain('5xx');
        },
        { timeoutMs: 15_000, intervalMs: 500, description: 'retries {attempts: 3, retryOn: 5xx} in the waypoint' },
      );
      const withRetries = load('demo/client', 'http://flaky.demo/?[1-500]', { maxTime: 120 });
      const withOk = count(withRetries.samples, (s) => s.code === 200);
      const retried = accessRecords().filter((r) => typeof r.authority === 'string' && r.authority.startsWith('flaky') && typeof r.attempts === 'number' && r.attempts > 1).length;
      console.log(`retries on (attempts 3, 5xx): ${withOk}/500 succeeded (${pct(withOk, 500)}), codes ${JSON.stringify(codes(withRetries.samples))}, ${withRetries.elapsedMs} ms; access-log lines with attempts > 1: ${retried}`);
      expect(withRetries.samples.length, withRetries.stderr).toBe(500);
      expect(withOk, `codes ${JSON.stringify(codes(withRetries.samples))}${logTail()}`).toBeGreaterThanOrEqual(495);
    } finally {
      remove('virtualservice/flaky');
    }
  }, 180_000);

  it('timeout 1s: httpbin /delay/3 gets 504 after about 1 s', async () => {
    try {
      applySample('timeout-virtual-service.yaml');
      await eventually(() => expect(routeNamed(configDump(), 'VirtualService/demo/httpbin#0')?.timeoutMs).toBe(1000), {
        timeoutMs: 15_000,
        intervalMs: 500,
        description: 'the 1 s timeout in the waypoint',
      });
      const quick = request('demo/client', 'http://httpbin.demo/delay/0');
      expect(quick.code, 'a quick answer is not affected').toBe(200);
      const slow = load('demo/client', 'http://httpbin.demo/delay/3?try=[1-3]', { maxTime: 10 });
      console.log(`timeout 1s vs /delay/3: ${slow.samples.map((s) => `${s.code} after ${s.seconds.toFixed(2)} s${s.flags ? ` (${s.flags})` : ''}`).join(', ')}`);
      expect(slow.samples).toHaveLength(3);
      for (const s of slow.samples) {
        expect(s.code).toBe(504);
        expect(s.seconds).toBeGreaterThanOrEqual(0.9);
        expect(s.seconds).toBeLessThan(1.8);
      }
    } finally {
      remove('virtualservice/httpbin');
    }
  }, 120_000);

  it('fault injection: delay 10 % × 2 s and abort 20 % × 500 within ±5 points over 1 000 requests', async () => {
    try {
      applySample('fault-virtual-service.yaml');
      await eventually(
        () => {
          const fault = routeNamed(configDump(), 'VirtualService/demo/httpbin#0')?.fault;
          expect(fault?.delay).toEqual({ percent: 10, delayMs: 2000 });
          expect(fault?.abort).toMatchObject({ percent: 20, httpStatus: 500 });
        },
        { timeoutMs: 15_000, intervalMs: 500, description: 'the fault policy in the waypoint' },
      );
      // Sequentially, 100 delayed requests would take 200 s: 50 at a time.
      const r = load('demo/client', 'http://httpbin.demo/status/200?n=[1-1000]', { parallel: 50, maxTime: 20 });
      const total = r.samples.length;
      const aborted = count(r.samples, (s) => s.code === 500);
      const delayed = count(r.samples, (s) => s.seconds >= 1.9);
      const abortedFlagged = count(r.samples, (s) => s.code === 500 && s.flags.split(',').includes('FI'));
      const other = count(r.samples, (s) => s.code !== 200 && s.code !== 500);
      console.log(
        `fault over ${total} requests in ${r.elapsedMs} ms: aborted ${aborted} (${pct(aborted, total)}, ${abortedFlagged} flagged FI), delayed ≥ 1.9 s ${delayed} (${pct(delayed, total)}), other failures ${other}`,
      );
      expect(total, r.stderr).toBe(1000);
      expect(other, `codes ${JSON.stringify(codes(r.samples))}`).toBe(0);
      expect(aborted).toBeGreaterThanOrEqual(150);
      expect(aborted).toBeLessThanOrEqual(250);
      expect(delayed).toBeGreaterThanOrEqual(50);
      expect(delayed).toBeLessThanOrEqual(150);
      expect(abortedFlagged, 'every injected abort carries the FI flag').toBe(aborted);
    } finally {
      remove('virtualservice/httpbin');
    }
  }, 180_000);

  it('outlier detection ejects the failing endpoint within its interval and re-admits it after baseEjectionTime', async () => {
    try {
      applySample('outlier-destination-rule.yaml');
      await eventually(
        () => {
          const dump = configDump();
          const cluster = clusterOf(dump, 'outlier');
          expect(cluster?.outlierDetection).toMatchObject({ consecutive5xxErrors: 3, intervalMs: 1000, baseEjectionTimeMs: 5000, maxEjectionPercent: 100 });
          expect(cluster?.endpoints).toHaveLength(2);
          const route = routeNamed(dump, 'VirtualService/demo/outlier#0');
          expect(route).toBeDefined();
          expect(route?.retries?.attempts ?? 0).toBe(0);
        },
        { timeoutMs: 15_000, intervalMs: 500, description: 'outlier detection and the no-retry route in the waypoint' },
      );
      // 120 requests paced at 10/s on one connection: request i starts at about i × 100 ms.
      const running = loadAsync('demo/client', 'http://outlier.demo/?n=[1-120]', { rate: '10/s', maxTime: 5 });
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const during = configDump().clusters?.find((c) => c.name === 'outbound|80||outlier.demo.svc.cluster.local');
      const r = await running;
      const samples = r.samples;
      expect(samples.length, r.stderr).toBe(120);
      const secondsPerRequest = r.elapsedMs / 1000 / samples.length;
      const failures = samples.flatMap((s, i) => (s.code === 200 ? [] : [i]));
      const at = (i: number): string => `${(i * secondsPerRequest).toFixed(1)} s`;
      console.log(
        `outlier detection over ${samples.length} requests in ${r.elapsedMs} ms: failures at ${failures.map(at).join(', ')}; endpoints at 2.5 s: ${JSON.stringify(during?.endpoints.map((e) => e.health))}`,
      );
      expect(count(samples, (s) => s.code !== 200 && s.code !== 503), `codes ${JSON.stringify(codes(samples))}`).toBe(0);
      // The failing endpoint answers until consecutive5xxErrors (3) are seen…
      expect(failures.length, 'the failing endpoint was in rotation').toBeGreaterThanOrEqual(3);
      const third = failures[2] ?? 0;
      const secondsAfterThird = (i: number): number => (i - third) * secondsPerRequest;
      // …then it is out within the 1 s interval, and stays out until baseEjectionTime (5 s) is near.
      const whileEjected = failures.filter((i) => secondsAfterThird(i) > 1.1 && secondsAfterThird(i) < 4.5);
      expect(whileEjected.map(at), 'failures while the endpoint should be ejected').toEqual([]);
      const firstWindow = failures.filter((i) => secondsAfterThird(i) > 0 && secondsAfterThird(i) <= 1.1);
      expect(firstWindow.length, 'at most a few failures before the ejection takes effect').toBeLessThanOrEqual(5);
      // After baseEjectionTime (plus up to one interval) it is back and fails again.
      const readmitted = failures.find((i) => secondsAfterThird(i) >= 4.5);
      expect(readmitted, 'a failure again after baseEjectionTime').toBeDefined();
      expect(secondsAfterThird(readmitted ?? 0)).toBeLessThanOrEqual(8);
      console.log(`outlier: third failure at ${at(third)}, next failure after ejection at ${readmitted === undefined ? 'never' : at(readmitted)}`);
    } finally {
      remove('destinationrule/outlier', 'virtualservice/outlier');
    }
  }, 120_000);

  it('maxConnections 1 under concurrent load answers 503 flagged UO, in the header and the access log', async () => {
    try {
      applySample('circuit-breaker-destination-rule.yaml');
      await eventually(
        () => {
          const dump = configDump();
          expect(clusterOf(dump, 'httpbin')?.connectionPool).toMatchObject({ maxConnections: 1, maxPendingRequests: 1, maxRequestsPerConnection: 1 });
          expect(routeNamed(dump, 'VirtualService/demo/httpbin#0'), 'no VirtualService left from an earlier case').toBeUndefined();
        },
        { timeoutMs: 15_000, intervalMs: 500, description: 'the connection pool limits (and nothing else) in the waypoint' },
      );
      // 20 concurrent 1 s requests: one in flight, one waiting, the rest overflow.
      const r = load('demo/client', 'http://httpbin.demo/delay/1?n=[1-20]', { parallel: 20, maxTime: 15 });
      const ok = count(r.samples, (s) => s.code === 200);
      const overflow = count(r.samples, (s) => s.code === 503 && s.flags.split(',').includes('UO'));
      console.log(`circuit breaker (maxConnections 1, 1 pending) with 20 concurrent: ${ok} × 200, ${overflow} × 503 UO, codes ${JSON.stringify(codes(r.samples))}, ${r.elapsedMs} ms`);
      expect(r.samples.length, r.stderr).toBe(20);
      expect(ok, 'the limited cluster still serves').toBeGreaterThanOrEqual(1);
      expect(overflow).toBeGreaterThanOrEqual(10);
      expect(ok + overflow, `every other answer is an overflow: ${JSON.stringify(r.samples)}`).toBe(20);
      await eventually(
        () => expect(accessRecords().some((a) => a.status === 503 && String(a.responseFlags).split(',').includes('UO') && String(a.path).startsWith('/delay/1'))).toBe(true),
        { timeoutMs: 10_000, intervalMs: 1000, description: 'an access-log line with status 503 and flag UO' },
      );
    } finally {
      remove('destinationrule/httpbin');
    }
  }, 120_000);

  it('consistent hashing on a header keeps each user on one backend pod', async () => {
    try {
      applySample('consistent-hash-destination-rule.yaml');
      await eventually(() => expect(clusterOf(configDump(), 'backend')?.hash).toMatchObject({ kind: 'header', name: 'x-user' }), {
        timeoutMs: 15_000,
        intervalMs: 500,
        description: 'the hash policy in the waypoint',
      });
      const byUser = new Map<string, Set<string>>();
      for (let u = 1; u <= 12; u++) {
        const r = exec('demo/client', 'curl', '-s', '-S', '--max-time', '30', '-H', `x-user: user-${u}`, 'http://backend.demo/?[1-8]');
        byUser.set(`user-${u}`, new Set(r.stdout.match(/Version: \d\.0\.0/g) ?? []));
      }
      const summary = [...byUser].map(([user, seen]) => `${user}→${[...seen].join('/')}`).join(', ');
      console.log(`consistent hash on x-user: ${summary}`);
      for (const [user, seen] of byUser) expect(seen.size, `${user} saw ${[...seen].join(', ')}`).toBe(1);
      expect(new Set([...byUser.values()].flatMap((s) => [...s])).size, 'users spread over both versions').toBe(2);
    } finally {
      remove('destinationrule/backend');
    }
  }, 120_000);

  it('only frontend’s service account may GET /api/v1* on backend; a POST, another path or another caller gets 403 logged with the policy', async () => {
    try {
      applySample('authorization-policy.yaml');
      await eventually(() => expectCode(request('demo/client', 'http://backend.demo/api/v1/warm-up').code, 403), {
        timeoutMs: 15_000,
        intervalMs: 500,
        description: 'the policy in force at the waypoint',
      });
      const allowed = request('demo/frontend', 'http://backend.demo/api/v1/items');
      const post = request('demo/frontend', 'http://backend.demo/api/v1/method-check', { method: 'POST' });
      const path = request('demo/frontend', 'http://backend.demo/api/v2/path-check');
      const caller = request('demo/client', 'http://backend.demo/api/v1/caller-check');
      console.log(`authz: frontend GET /api/v1 → ${allowed.code}, frontend POST → ${post.code}, frontend GET /api/v2 → ${path.code}, client GET /api/v1 → ${caller.code}`);
      expect(allowed.code, allowed.body).toBe(200);
      expect(allowed.body).toContain('Hello, world!');
      for (const [what, r] of [
        ['POST', post],
        ['another path', path],
        ['another caller', caller],
      ] as const) {
        expect(r.code, `${what}: ${r.body}`).toBe(403);
        expect(r.body, what).toContain('RBAC: access denied');
      }
      const records = await eventually(
        () => {
          const found = accessRecords();
          for (const p of ['/api/v1/method-check', '/api/v2/path-check', '/api/v1/caller-check']) {
            const line = found.find((a) => a.path === p && a.status === 403);
            expect(line, `an access-log line for the denied ${p}`).toBeDefined();
            expect(line?.authz, `${p}: the authz field names the policy`).toMatch(/demo\/frontend-api-only/);
          }
          const letIn = found.find((a) => a.path === '/api/v1/items' && a.status === 200);
          expect(letIn?.authz, 'the allowed request: the authz field names the ALLOW policy and rule').toBe('demo/frontend-api-only rule 0');
          return found;
        },
        { timeoutMs: 10_000, intervalMs: 1000, description: 'denials logged with the policy' },
      );
      const denial = records.find((a) => a.path === '/api/v1/caller-check');
      console.log(`authz: access-log authz field of the denied caller: ${JSON.stringify(denial?.authz)}; allowed: ${JSON.stringify(records.find((a) => a.path === '/api/v1/items')?.authz)}`);
      await eventually(() => expectEnforcedByWaypoint('authorizationpolicy', 'frontend-api-only'), { timeoutMs: 15_000, intervalMs: 500, description: 'the policy’s status names the waypoint' });
      console.log(`authz: status ${describeConditions(conditions('authorizationpolicy', 'frontend-api-only'))}`);
    } finally {
      remove('authorizationpolicy/frontend-api-only');
    }
  }, 120_000);

  it('a JWT-protected route: a valid token passes; wrong issuer, expired or foreign-key tokens get 401; no token 403', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const foreign = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'amesh-test', alg: 'ES256', use: 'sig' };
    const jwks = JSON.stringify({ keys: [jwk] });
    const now = Math.floor(Date.now() / 1000);
    const sign = (key: CryptoKey, claims: { iss: string; iat: number; exp: number }): Promise<string> =>
      new SignJWT({ group: 'testers' }).setProtectedHeader({ alg: 'ES256', kid: 'amesh-test', typ: 'JWT' }).setIssuer(claims.iss).setSubject('tester').setIssuedAt(claims.iat).setExpirationTime(claims.exp).sign(key);
    const valid = await sign(privateKey, { iss: ISSUER, iat: now, exp: now + 3600 });
    const wrongIssuer = await sign(privateKey, { iss: 'https://someone-else.example', iat: now, exp: now + 3600 });
    const expired = await sign(privateKey, { iss: ISSUER, iat: now - 7200, exp: now - 3600 });
    const foreignKey = await sign(foreign.privateKey, { iss: ISSUER, iat: now, exp: now + 3600 });
    const bearer = (token: string): string[] => [`Authorization: Bearer ${token}`];
    const protectedUrl = 'http://httpbin.demo/anything/protected';
    try {
      const yaml = await readFile(join(SAMPLES, 'jwt.yaml'), 'utf8');
      expect(yaml).toContain('REPLACE_WITH_JWKS');
      // Every occurrence (the file's comment names the placeholder too), as `sed s|…|…|` does line by line.
      apply(yaml.replaceAll('REPLACE_WITH_JWKS', () => jwks));
      await eventually(
        () => {
          expectCode(request('demo/client', protectedUrl).code, 403);
          const code = request('demo/client', protectedUrl, { headers: bearer(expired) }).code;
          if (code !== 401) expect(code, `${policiesInWaypoint()}; RequestAuthentication status: ${describeConditions(conditions('requestauthentication', 'jwt-demo'))}`).toBe(401);
        },
        { timeoutMs: 20_000, intervalMs: 500, description: 'the RequestAuthentication and the policy in force' },
      );
      const results = {
        valid: request('demo/client', protectedUrl, { headers: bearer(valid) }),
        wrongIssuer: request('demo/client', protectedUrl, { headers: bearer(wrongIssuer) }),
        expired: request('demo/client', protectedUrl, { headers: bearer(expired) }),
        foreignKey: request('demo/client', protectedUrl, { headers: bearer(foreignKey) }),
        noToken: request('demo/client', protectedUrl),
        openPath: request('demo/client', 'http://httpbin.demo/anything/open'),
      };
      console.log(`jwt: ${Object.entries(results).map(([k, r]) => `${k} → ${r.code}`).join(', ')}`);
      expect(results.valid.code, results.valid.body).toBe(200);
      expect((JSON.parse(results.valid.body) as { path: string }).path).toBe('/anything/protected');
      expect(results.wrongIssuer.code, results.wrongIssuer.body).toBe(401);
      expect(results.expired.code, results.expired.body).toBe(401);
      expect(results.foreignKey.code, results.foreignKey.body).toBe(401);
      expect(results.noToken.code, results.noToken.body).toBe(403);
      expect(results.openPath.code, 'other paths need no token').toBe(200);
      await eventually(
        () => expect(accessRecords().some((a) => a.path === '/anything/protected' && a.status === 200 && a.requestPrincipal === `${ISSUER}/tester`)).toBe(true),
        { timeoutMs: 10_000, intervalMs: 1000, description: 'the verified principal in the access log' },
      );
      await eventually(
        () => {
          expectEnforcedByWaypoint('authorizationpolicy', 'require-jwt');
          expectEnforcedByWaypoint('requestauthentication', 'jwt-demo');
        },
        { timeoutMs: 15_000, intervalMs: 500, description: 'both policies’ status names the waypoint' },
      );
    } finally {
      remove('requestauthentication/jwt-demo', 'authorizationpolicy/require-jwt');
    }
  }, 120_000);

  it('DestinationRule and VirtualService conditions name the fields the waypoint ignores; the rest applies', async () => {
    try {
      applySample('ignored-fields.yaml');
      await eventually(
        () => {
          const dr = conditions('destinationrule', 'httpbin');
          expect(dr.find((c) => c.type === 'Accepted')?.status, describeConditions(dr)).toBe('True');
          const drWarning = dr.find((c) => c.type === 'Warning' && c.status === 'True')?.message ?? '';
          expect(drWarning, describeConditions(dr)).toMatch(/tunnel/);
          expect(drWarning, 'connectionPool is supported now').not.toMatch(/connectionPool/);
          const vs = conditions('virtualservice', 'httpbin');
          expect(vs.find((c) => c.type === 'Accepted')?.status, describeConditions(vs)).toBe('True');
          const vsWarning = vs.find((c) => c.type === 'Warning' && c.status === 'True')?.message ?? '';
          expect(vsWarning, describeConditions(vs)).toMatch(/corsPolicy/);
          expect(vsWarning, 'retries and timeout are supported now').not.toMatch(/retries|timeout/);
        },
        { timeoutMs: 15_000, intervalMs: 500, description: 'conditions naming tunnel and corsPolicy' },
      );
      await eventually(
        () => {
          const dump = configDump();
          expect(clusterOf(dump, 'httpbin')?.connectionPool?.maxRequestsPerConnection).toBe(10);
          expect(routeNamed(dump, 'VirtualService/demo/httpbin#0')?.timeoutMs).toBe(10_000);
          expect(routeNamed(dump, 'VirtualService/demo/httpbin#0')?.retries).toMatchObject({ attempts: 2, retryOn: ['gateway-error'] });
        },
        { timeoutMs: 15_000, intervalMs: 500, description: 'the supported fields in the waypoint' },
      );
      console.log(
        `status: DestinationRule ${describeConditions(conditions('destinationrule', 'httpbin'))}; VirtualService ${describeConditions(conditions('virtualservice', 'httpbin'))}`,
      );
    } finally {
      remove('destinationrule/httpbin', 'virtualservice/httpbin');
    }
  }, 120_000);
});
