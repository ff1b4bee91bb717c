/**
 * `amesh/flaky`: amesh's own sample app (no upstream image), made for the resilience walkthroughs
 * (docs/resilience.md). It answers every Nth request with an error status and the others with
 * 200, counting requests in arrival order across all connections:
 *
 *   --fail-every 2 (default)  requests 2, 4, 6 … fail: exactly half, so a retry (which is the
 *                             next request the server counts) always succeeds
 *   --fail-every 1            every request fails (an endpoint for outlier detection to eject)
 *   --fail-every 0            never fails
 *
 * Why not httpbin's `/status/503,200`: with independent 50 % failures, 1 try + 3 retries succeed
 * only 93.75 % of the time, so "retries make ≥ 99 % succeed" would be a coin toss. A fixed pattern
 * makes the expected figures exact (50 % without retries, 100 % with one).
 *
 * `/healthz` always answers 200 and is not counted, so readiness probes neither fail nor shift
 * the pattern. Every answer is text naming the status, version, hostname and request number
 * (also in `x-flaky-request`), so a test can tell who answered and when.
 */
import http from 'node:http';
import { once } from 'node:events';

export interface FlakyOptions {
  port: number;
  /** Listen address; default all (`::`). */
  host?: string;
  /** Every Nth counted request fails; 0 = never. */
  failEvery: number;
  /** The failing requests' status. */
  status: number;
  version: string;
  hostname: string;
}

export const FLAKY_DEFAULTS = Object.freeze({ port: 8080, failEvery: 2, status: 503, version: '2.0.0' });
export const FLAKY_HEALTH_PATH = '/healthz';

/** The status of the `n`th counted request (1-based). */
export function flakyStatus(n: number, failEvery: number, status: number): number {
  return failEvery > 0 && n % failEvery === 0 ? status : 200;
}

export function flakyBody(o: { status: number; version: string; hostname: string; request: number }): string {
  const outcome = o.status === 200 ? 'ok' : `failing on purpose (${o.status})`;
  return `amesh/flaky: ${outcome}\nVersion: ${o.version}\nHostname: ${o.hostname}\nRequest: ${o.request}\n`;
}

/** Validates the CLI's strings; returns an error message instead of throwing. */
export function parseFlakyOptions(o: { port?: string; failEvery?: string; status?: string; versionString?: string; hostname: string }): FlakyOptions | { error: string } {
  const port = Number(o.port ?? FLAKY_DEFAULTS.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return { error: `--port ${o.port}: expected 0-65535` };
  const failEvery = Number(o.failEvery ?? FLAKY_DEFAULTS.failEvery);
  if (!Number.isInteger(failEvery) || failEvery < 0) return { error: `--fail-every ${o.failEvery}: expected a whole number ≥ 0 (0 = never fail)` };
  const status = Number(o.status ?? FLAKY_DEFAULTS.status);
  if (!Number.isInteger(status) || status < 100 || status > 599) return { error: `--status ${o.status}: expected 100-599` };
  return { port, failEvery, status, version: o.versionString ?? FLAKY_DEFAULTS.version, hostname: o.hostname };
}

export async function runFlaky(o: FlakyOptions): Promise<http.Server> {
  let counted = 0;
  const server = http.createServer((req, res) => {
    // Drain any request body so a keep-alive connection stays usable.
    req.resume();
    if (req.url === FLAKY_HEALTH_PATH) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('ok\n');
      return;
    }
    const request = ++counted;
    const status = flakyStatus(request, o.failEvery, o.status);
    const body = flakyBody({ status, version: o.version, hostname: o.hostname, request });
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-flaky-request': String(request) });
    res.end(body);
  });
  server.listen({ port: o.port, host: o.host ?? '::' });
  await once(server, 'listening');
  const pattern = o.failEvery > 0 ? `requests ${o.failEvery}, ${2 * o.failEvery}, ${3 * o.failEvery}… answer ${o.status}` : 'every request answers 200';
  console.error(`amesh/flaky listening on port ${o.port}: ${pattern}`);
  return server;
}
