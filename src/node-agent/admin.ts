/**
 * The agent's HTTP endpoints: readiness (15021, `GET /healthz/ready`), admin on localhost
 * (15000: `/config_dump`, `/logging`, `/debug/denials`, `POST /debug/gc`, `POST /quitquitquit`) and Prometheus
 * metrics (15020, `/metrics`). Each is its own server so a slow scrape never delays readiness.
 * Waypoints and gateways use the same servers (src/l7/proxy-process.ts).
 *
 * `/logging` (GET or POST, as Envoy/ztunnel): without `level` it shows the default level and each
 * component's; `level=debug` sets all, `level=xds:debug,access:off` sets components (see
 * LogLevels). A bad level or component is a 400 naming it and the valid ones; nothing changes.
 *
 * `POST /debug/gc` runs a full garbage collection and answers the heap and RSS before and after,
 * so memory can be read without garbage (the benchmarks' memory scenario). It needs V8's gc(),
 * which exists only under `--expose-gc` (NODE_OPTIONS=--expose-gc); otherwise it is a 501 saying
 * so. The admin server listens on loopback only.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { AmeshError } from '../errors/amesh-error.js';
import { LOG_LEVELS, logLevels, type Logger, type LogLevels } from '../telemetry/logger.js';
import { handleFd, type HandedListener } from './handoff/handoff.js';

export interface AdminHandlers {
  ready(): { ready: boolean; [key: string]: unknown };
  configDump(): unknown;
  quit(): void;
  /** The process's root logger: `/logging` changes the levels of its components. */
  logger: Logger;
  /** Recent policy denials for `GET /debug/denials`; absent: 404 (the proxy keeps none). */
  denials?: () => unknown;
  /** Full GC for `POST /debug/gc`; absent: V8's `gc` when the process runs with --expose-gc. */
  gc?: () => void;
}

function collectGarbage(res: http.ServerResponse, gc: (() => void) | undefined): void {
  if (!gc) {
    return json(res, 501, { error: 'garbage collection is not exposed in this process', hint: 'start it with --expose-gc (NODE_OPTIONS=--expose-gc) to use POST /debug/gc' });
  }
  const before = process.memoryUsage();
  const started = process.hrtime.bigint();
  gc();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const after = process.memoryUsage();
  // heapTotal is what V8 has committed (a young generation grown by a burst of allocation stays
  // committed after a full GC); spaces says which space holds it.
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
  json(res, 200, {
    collected: true,
    ms,
    heapUsedBefore: before.heapUsed,
    heapUsedAfter: after.heapUsed,
    heapTotalAfter: after.heapTotal,
    // Memory of C++ objects tied to JavaScript ones (Buffers, TLS and HTTP/2 sessions): grows with a
    // native-side leak that the heap figures do not show.
    externalAfter: after.external,
    arrayBuffersAfter: after.arrayBuffers,
    rssBefore: before.rss,
    rssAfter: after.rss,
    spaces,
  });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Sampling period of prom-client's event-loop-lag histogram (nodejs_eventloop_lag_*). Its default,
 * 10 ms, is a libuv timer that wakes an idle agent ≈ 155 times a second (epoll_pwait returning no
 * events) — most of an idle agent's CPU. Every 100 ms still catches any stall long enough to matter
 * (a stall delays the next sample by up to its length) at a tenth of the wake-ups.
 */
const EVENT_LOOP_MONITORING_PRECISION_MS = 100;

/** The admin listeners by hand-off name (docs/upgrade.md). */
export type AdminListenerName = 'readiness' | 'admin' | 'metrics';

export class AdminServers {
  readonly registry = new Registry();
  private readonly servers: Array<{ name: AdminListenerName; server: http.Server; port: number }> = [];
  /** Inherited listeners not served yet (see start's `inherited`, serveInherited). */
  private readonly pending: Array<{ server: http.Server; fd: number }> = [];

  private readonly levels: LogLevels;

  constructor(private readonly handlers: AdminHandlers) {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_PRECISION_MS });
    this.levels = logLevels(handlers.logger);
  }

  private async serve(name: AdminListenerName, host: string, port: number, handler: http.RequestListener): Promise<number> {
    const server = http.createServer(handler);
    const handed = this.inherited?.(name);
    if (handed) {
      // Served by serveInherited() once the agent is ready; the old agent answers until then.
      this.pending.push({ server, fd: handed.fd });
      this.servers.push({ name, server, port: handed.port });
      return handed.port;
    }
    server.listen({ host, port });
    try {
      await once(server, 'listening');
    } catch (err) {
      throw new AmeshError('AMESH_PORT_IN_USE', `cannot listen on ${host}:${port}`, { cause: err, hint: 'is another agent running in this network namespace?' });
    }
    const bound = (server.address() as AddressInfo).port;
    this.servers.push({ name, server, port: bound });
    return bound;
  }

  private inherited: ((name: AdminListenerName) => HandedListener | undefined) | undefined;

  /**
   * Listens on the ports, or — for the names `inherited` returns a listener for (an old agent's
   * socket, docs/upgrade.md) — prepares to serve those, which serveInherited() then starts.
   */
  async start(ports: { readiness: number; admin: number; metrics: number }, inherited?: (name: AdminListenerName) => HandedListener | undefined): Promise<{ readiness: number; admin: number; metrics: number }> {
    this.inherited = inherited;
    const h = this.handlers;
    const readiness = await this.serve('readiness', '0.0.0.0', ports.readiness, (req, res) => {
      if (req.url?.startsWith('/healthz/ready')) {
        const r = h.ready();
        json(res, r.ready ? 200 : 503, r);
      } else json(res, 404, { error: `no such path ${req.url}; try /healthz/ready` });
    });
    const admin = await this.serve('admin', '127.0.0.1', ports.admin, (req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/config_dump') json(res, 200, h.configDump());
      else if (url.pathname === '/quitquitquit' && req.method === 'POST') {
        json(res, 200, { quitting: true });
        h.quit();
      } else if (url.pathname === '/logging') {
        const spec = url.searchParams.get('level');
        if (spec === null) return json(res, 200, this.levels.view());
        try {
          json(res, 200, this.levels.set(spec));
        } catch (err) {
          if (!(err instanceof AmeshError)) throw err;
          json(res, 400, { error: err.message, hint: err.hint, validLevels: LOG_LEVELS, components: [...this.levels.components()].sort() });
        }
      } else if (url.pathname === '/debug/denials' && h.denials) json(res, 200, h.denials());
      else if (url.pathname === '/debug/gc' && req.method === 'POST') collectGarbage(res, h.gc ?? (globalThis as { gc?: () => void }).gc);
      else json(res, 404, { error: `no such path ${url.pathname}; try /config_dump, /logging[?level=…]${h.denials ? ', /debug/denials' : ''}, POST /debug/gc, POST /quitquitquit` });
    });
    const metrics = await this.serve('metrics', '0.0.0.0', ports.metrics, (req, res) => {
      if (req.url?.startsWith('/metrics')) {
        this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(text);
          },
          (err: Error) => json(res, 500, { error: err.message }),
        );
      } else json(res, 404, { error: 'try /metrics' });
    });
    return { readiness, admin, metrics };
  }

  /** Starts serving the inherited listeners start() prepared; returns how many. */
  async serveInherited(): Promise<number> {
    const pending = this.pending.splice(0);
    await Promise.all(
      pending.map(async ({ server, fd }) => {
        server.listen({ fd });
        await once(server, 'listening');
      }),
    );
    return pending.length;
  }

  /** The listening sockets, for a new agent taking over (docs/upgrade.md). */
  listeners(): HandedListener[] {
    return this.servers.filter((s) => s.server.listening).map((s) => ({ name: s.name, port: s.port, fd: handleFd(s.server) }));
  }

  /** Servers stopAccepting() closed whose last connection has not ended yet. */
  private readonly closing = new Set<http.Server>();

  /** Stops accepting (a new agent may hold the same sockets); open requests finish. */
  stopAccepting(): void {
    for (const { server } of this.servers) {
      if (!server.listening) continue;
      this.closing.add(server);
      server.close(() => this.closing.delete(server));
    }
  }

  async close(): Promise<void> {
    await Promise.all(
      this.servers.map(
        ({ server }) =>
          new Promise<void>((resolve) => {
            // Requests in progress finish (a probe accepted just before a hand-off gets its
            // answer — also when stopAccepting() already closed the listener); idle keep-alive
            // connections close now, the rest after 1 s at most.
            const done = (): void => {
              clearTimeout(force);
              resolve();
            };
            const force = setTimeout(() => server.closeAllConnections(), 1000);
            force.unref();
            if (server.listening) server.close(done);
            else if (this.closing.has(server)) server.once('close', done);
            else {
              server.closeAllConnections();
              done();
              return;
            }
            server.closeIdleConnections();
          }),
      ),
    );
    // Inherited but never served (closed before ready): the process exits next, the fds with it.
    this.pending.length = 0;
  }
}
