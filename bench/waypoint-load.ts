/**
 * Load of the waypoint bench: the routing probe (node:http, sequential, keep-alive), the
 * closed-loop maximum rate (wrk, one thread, `connections` connections) and the open-loop latency
 * run (bench/load/open-loop-client.ts in its own process). Each is bounded in time. The gateway
 * bench uses the last two over HTTPS with a Host header (EdgeTarget).
 */
import { execFile } from 'node:child_process';
import { Agent, request } from 'node:http';
import { promisify } from 'node:util';
import { parseOpenLoopReport, type OpenLoopReport } from './load/open-loop.js';
import { OPEN_LOOP_ENTRY } from './waypoint-processes.js';
import { BACKEND_HEADER, ROUTE_HEADER, ROUTE_HEADER_VALUE, type ProbeCounts } from './waypoint-topology.js';

const run = promisify(execFile);

/** Sends `perKind` requests with `x-user: beta` and `perKind` without; counts who answered. */
export async function probeRouting(port: number, perKind: number, timeoutMs: number): Promise<ProbeCounts> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const counts: ProbeCounts = { beta: { v1: 0, v2: 0, other: 0 }, plain: { v1: 0, v2: 0, other: 0 } };
  const one = (beta: boolean): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent, headers: beta ? { [ROUTE_HEADER]: ROUTE_HEADER_VALUE } : {} }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode === 200 ? String(res.headers[BACKEND_HEADER] ?? '') : `HTTP ${res.statusCode}`));
        res.once('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`probe request timed out after ${timeoutMs} ms`)));
      req.once('error', reject);
      req.end();
    });
  try {
    for (let i = 0; i < perKind * 2; i++) {
      const beta = i % 2 === 0;
      const who = await one(beta);
      const bucket = beta ? counts.beta : counts.plain;
      if (who === 'v1') bucket.v1++;
      else if (who === 'v2') bucket.v2++;
      else bucket.other++;
    }
  } finally {
    agent.destroy();
  }
  return counts;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** Non-2xx/3xx responses plus socket errors (connect, read, write, timeout). */
  errors: number;
}

/** Parses wrk 4's text report. */
export function parseWrkOutput(text: string): WrkResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!total || !rps) throw new Error(`wrk printed no summary: ${text.slice(0, 300)}`);
  const unit = { us: 1e-6, ms: 1e-3, s: 1, m: 60 }[total[3] as 'us' | 'ms' | 's' | 'm'];
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const socketErrors = socket ? socket.slice(1, 5).reduce((n, v) => n + Number(v), 0) : 0;
  return { requests: Number(total[1]), seconds: Number(total[2]) * unit, requestsPerSecond: Number(rps[1]), errors: non2xx + socketErrors };
}

/** How the load reaches an edge proxy (the gateway bench): TLS (SNI and CA for the open-loop client) and a Host header. */
export interface EdgeTarget {
  https?: { caFile: string; servername: string };
  hostHeader?: string;
}

/** Closed loop: `wrk -t1 -c<connections> -d<seconds>s` against 127.0.0.1:port (https:// with `edge.https`; wrk does not verify the certificate). */
export async function wrk(port: number, connections: number, seconds: number, edge: EdgeTarget = {}): Promise<WrkResult> {
  const url = `${edge.https ? 'https' : 'http'}://127.0.0.1:${port}/`;
  const host = edge.hostHeader ? ['-H', `Host: ${edge.hostHeader}`] : [];
  const { stdout } = await run('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', ...host, url], { timeout: (seconds + 30) * 1000 });
  return parseWrkOutput(stdout);
}

/** "debian/4.1.0-3+b2" from `wrk --version` (which prints its banner and exits 1); undefined when wrk is missing. */
export async function wrkVersion(): Promise<string | undefined> {
  let text: string;
  try {
    const { stdout, stderr } = await run('wrk', ['--version'], { timeout: 5000 });
    text = `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: unknown };
    if (e.code === 'ENOENT') return undefined;
    text = `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
  return /wrk (\S+)/.exec(text)?.[1] ?? 'unknown';
}

/** Open loop at `rate` over `connections` for `seconds` (+ `warmup`), in a child process. */
export async function openLoop(port: number, o: { rate: number; connections: number; seconds: number; warmup: number }, edge: EdgeTarget = {}): Promise<OpenLoopReport> {
  const args = [OPEN_LOOP_ENTRY, '--host', '127.0.0.1', '--port', String(port), '--rate', String(o.rate), '--connections', String(o.connections), '--duration', String(o.seconds), '--warmup', String(o.warmup)];
  if (edge.https) args.push('--https', '--ca-file', edge.https.caFile, '--servername', edge.https.servername);
  if (edge.hostHeader) args.push('--host-header', edge.hostHeader);
  try {
    const { stdout } = await run(process.execPath, args, { timeout: (o.seconds + o.warmup + 30) * 1000 });
    return parseOpenLoopReport(stdout);
  } catch (err) {
    const e = err as { stdout?: string };
    if (e.stdout) return parseOpenLoopReport(e.stdout);
    throw err;
  }
}
