/**
 * The agent's HTTP endpoints: readiness (15021, `GET /healthz/ready`), admin on localhost
 * (15000: `/config_dump`, `/logging`, `/debug/denials`, `POST /quitquitquit`) and Prometheus
 * metrics (15020, `/metrics`). Each is its own server so a slow scrape never delays readiness.
 * Waypoints and gateways use the same servers (src/l7/proxy-process.ts).
 *
 * `/logging` (GET or POST, as Envoy/ztunnel): without `level` it shows the default level and each
 * component's; `level=debug` sets all, `level=xds:debug,access:off` sets components (see
 * LogLevels). A bad level or component is a 400 naming it and the valid ones; nothing changes.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { AmeshError } from '../errors/amesh-error.js';
import { LOG_LEVELS, logLevels, type Logger, type LogLevels } from '../telemetry/logger.js';

export interface AdminHandlers {
  ready(): { ready: boolean; [key: string]: unknown };
  configDump(): unknown;
  quit(): void;
  /** The process's root logger: `/logging` changes the levels of its components. */
  logger: Logger;
  /** Recent policy denials for `GET /debug/denials`; absent: 404 (the proxy keeps none). */
  denials?: () => unknown;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class AdminServers {
  readonly registry = new Registry();
  private readonly servers: http.Server[] = [];

  private readonly levels: LogLevels;

  constructor(private readonly handlers: AdminHandlers) {
    collectDefaultMetrics({ register: this.registry });
    this.levels = logLevels(handlers.logger);
  }

  private async serve(host: string, port: number, handler: http.RequestListener): Promise<number> {
    const server = http.createServer(handler);
    server.listen({ host, port });
    try {
      await once(server, 'listening');
    } catch (err) {
      throw new AmeshError('AMESH_PORT_IN_USE', `cannot listen on ${host}:${port}`, { cause: err, hint: 'is another agent running in this network namespace?' });
    }
    this.servers.push(server);
    return (server.address() as AddressInfo).port;
  }

  async start(ports: { readiness: number; admin: number; metrics: number }): Promise<{ readiness: number; admin: number; metrics: number }> {
    const h = this.handlers;
    const readiness = await this.serve('0.0.0.0', ports.readiness, (req, res) => {
      if (req.url?.startsWith('/healthz/ready')) {
        const r = h.ready();
        json(res, r.ready ? 200 : 503, r);
      } else json(res, 404, { error: `no such path ${req.url}; try /healthz/ready` });
    });
    const admin = await this.serve('127.0.0.1', ports.admin, (req, res) => {
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
      else json(res, 404, { error: `no such path ${url.pathname}; try /config_dump, /logging[?level=…]${h.denials ? ', /debug/denials' : ''}, POST /quitquitquit` });
    });
    const metrics = await this.serve('0.0.0.0', ports.metrics, (req, res) => {
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

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => { s.close(() => resolve()); s.closeAllConnections(); })));
  }
}
