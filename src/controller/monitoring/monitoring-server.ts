/**
 * The controller's monitoring HTTP server (AMESH_CONTROLLER_MONITORING_PORT, default 15014 as
 * istiod's): `/metrics` (Prometheus text), `/debug/syncz` (JSON: which proxies are connected and
 * in sync, xds/sync-status.ts — what `amesh proxy-status` reads), `/ready` (200 when the
 * controller is ready, else 503, with the readiness details).
 *
 * It is a window, not a dependency: a port already taken is reported (error log) and the
 * controller runs on without it. `close()` drops open connections (a scraper's keep-alive must not
 * hold shutdown).
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describeError } from '../../errors/amesh-error.js';
import type { Logger } from '../../telemetry/logger.js';
import type { ProxySyncStatus } from '../xds/sync-status.js';
import type { Registry } from 'prom-client';

export interface MonitoringServerOptions {
  host: string;
  port: number;
  registry: Registry;
  syncz: () => ProxySyncStatus[];
  readiness: () => { ready: boolean };
  log: Logger;
}

export class MonitoringServer {
  readonly #opts: MonitoringServerOptions;
  #server: http.Server | undefined;

  constructor(opts: MonitoringServerOptions) {
    this.#opts = opts;
  }

  /** Listens; resolves with the port, or undefined when it cannot listen (logged). */
  async listen(): Promise<number | undefined> {
    const { host, port, log } = this.#opts;
    const server = http.createServer((req, res) => void this.#handle(req, res));
    server.listen({ host, port });
    try {
      await once(server, 'listening');
    } catch (err) {
      log.error({ host, port, err: describeError(err) }, 'cannot listen for monitoring (/metrics, /debug/syncz); the controller runs on without it (AMESH_CONTROLLER_MONITORING_PORT)');
      return undefined;
    }
    this.#server = server;
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    const closed = once(server, 'close');
    server.close();
    server.closeAllConnections();
    await closed;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'GET only\n');
      if (path === '/metrics') return send(200, this.#opts.registry.contentType, await this.#opts.registry.metrics());
      if (path === '/debug/syncz') return send(200, 'application/json', JSON.stringify(this.#opts.syncz()));
      if (path === '/ready') {
        const r = this.#opts.readiness();
        return send(r.ready ? 200 : 503, 'application/json', JSON.stringify(r));
      }
      send(404, 'application/json', JSON.stringify({ error: `no such path ${path ?? ''}; try /metrics, /debug/syncz or /ready` }));
    } catch (err) {
      this.#opts.log.warn({ path, err: describeError(err) }, 'monitoring request failed');
      if (!res.headersSent) send(500, 'text/plain', 'internal error\n');
      else res.destroy();
    }
  }
}
