/**
 * The dashboard's HTTP server (node:http): the page, its JSON API and the two libraries it draws
 * with, read from node_modules — no CDN, the page works offline.
 *
 *   GET /                       index.html        GET /api/graph       the service graph
 *   GET /app.js, /style.css     the page's code   GET /api/services    golden signals + history
 *   GET /vendor/cytoscape.min.js, /vendor/uPlot.iife.min.js, /vendor/uPlot.min.css
 *   GET /api/namespaces         enrolment, waypoints, policies per namespace
 *
 * Invariants: a fixed set of paths (nothing is looked up from the URL on disk); GET/HEAD only;
 * API answers are never cached; a Host header naming something other than an IP address or
 * localhost is refused, so a web page elsewhere cannot read the mesh state through DNS rebinding.
 * The page's files live in src/dashboard/public/ under the package root — the same place from
 * src/ under vitest and from dist/ after a build (tsc does not copy them; they need no build).
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { AmeshError } from '../errors/amesh-error.js';
import { PACKAGE_ROOT } from '../os/package-root.js';

export const PUBLIC_DIR = join(PACKAGE_ROOT, 'src', 'dashboard', 'public');

export interface DashboardApi {
  graph(): unknown;
  services(): unknown;
  namespaces(): unknown;
}

interface StaticFile {
  path: () => string;
  type: string;
}

const require = createRequire(import.meta.url);

const STATIC: Record<string, StaticFile> = {
  '/': { path: () => join(PUBLIC_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/index.html': { path: () => join(PUBLIC_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { path: () => join(PUBLIC_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { path: () => join(PUBLIC_DIR, 'style.css'), type: 'text/css; charset=utf-8' },
  '/vendor/cytoscape.min.js': { path: () => require.resolve('cytoscape/dist/cytoscape.min.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/uPlot.iife.min.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/uPlot.min.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
};

/** Host header → allowed? IP literals and localhost only (DNS rebinding). */
export function allowedHost(host: string | undefined): boolean {
  if (!host) return false;
  const hostname = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return hostname === 'localhost' || net.isIP(hostname) !== 0;
}

export function createDashboardServer(api: DashboardApi): http.Server {
  const cache = new Map<string, Buffer>();
  return http.createServer((req, res) => {
    const send = (status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'GET only\n', { allow: 'GET, HEAD' });
    if (!allowedHost(req.headers.host)) return send(403, 'text/plain', 'use the address the dashboard printed (an IP address or localhost)\n');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const json = (value: unknown): void => send(200, 'application/json', JSON.stringify(value), { 'cache-control': 'no-store' });
    try {
      if (path === '/api/graph') return json(api.graph());
      if (path === '/api/services') return json(api.services());
      if (path === '/api/namespaces') return json(api.namespaces());
    } catch (err) {
      return send(500, 'application/json', JSON.stringify({ error: (err as Error).message }));
    }
    const file = STATIC[path];
    if (!file) return send(404, 'text/plain', 'not found\n');
    const cached = cache.get(path);
    if (cached) return send(200, file.type, cached, { 'cache-control': 'no-cache' });
    readFile(file.path()).then(
      (body) => {
        cache.set(path, body);
        send(200, file.type, body, { 'cache-control': 'no-cache' });
      },
      (err: Error) => send(500, 'text/plain', `cannot read ${path}: ${err.message}\n`),
    );
  });
}

/** Listens; AMESH_PORT_IN_USE names the address when taken. */
export async function listen(server: http.Server, host: string, port: number): Promise<{ url: string; port: number }> {
  try {
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void => reject(err);
      server.once('error', failed);
      server.listen({ host, port }, () => {
        server.off('error', failed);
        resolve();
      });
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AmeshError(code === 'EADDRINUSE' ? 'AMESH_PORT_IN_USE' : 'AMESH_COMMAND_FAILED', `dashboard: cannot listen on ${host}:${port}: ${(err as Error).message}`, {
      cause: err,
      ...(code === 'EADDRINUSE' ? { hint: 'another dashboard running? pick another with --port' } : {}),
    });
  }
  const actual = (server.address() as AddressInfo).port;
  const shown = net.isIPv6(host) ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return { url: `http://${shown}:${actual}/`, port: actual };
}
