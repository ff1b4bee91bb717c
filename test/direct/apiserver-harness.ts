/**
 * Shared setup for the API server's direct tests: a self-signed loopback certificate, the
 * HTTPS server on 127.0.0.1 port 0 with a static bearer token, a kubeconfig for kubectl and
 * @kubernetes/client-node, and a small `request` helper. Everything lives in a temp dir that
 * `close()` removes.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:https';
import { createApiServer } from '../../src/sandbox/apiserver/http-server.js';
import { createMemoryStore, type MemoryStore, type MemoryStoreOptions } from '../../src/sandbox/apiserver/memory-store.js';

export const TOKEN = 'test-admin-token';

export interface Harness {
  dir: string;
  store: MemoryStore;
  server: Server;
  port: number;
  ca: string;
  kubeconfig: string;
  /** Starts a fresh server (same store) on the same port, after `stopServer`. */
  restartServer(): Promise<void>;
  stopServer(): Promise<void>;
  request(method: string, path: string, options?: { body?: string | Buffer; contentType?: string; accept?: string; token?: string | null }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>;
  close(): Promise<void>;
}

export async function startHarness(storeOptions: MemoryStoreOptions = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'amesh-apiserver-'));
  const keyFile = join(dir, 'tls.key');
  const certFile = join(dir, 'tls.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=amesh-test-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  const store = createMemoryStore(storeOptions);
  const makeServer = (): Server =>
    createApiServer({
      store,
      tls: { cert, key },
      authenticate: (token) => (token === TOKEN ? { authenticated: true, user: { username: 'admin', uid: 'admin', groups: ['system:masters'] } } : { authenticated: false, error: 'unknown token' }),
      tokenReview: (token) => (token === TOKEN ? { authenticated: true, user: { username: 'admin', uid: 'admin', groups: ['system:masters'] } } : { authenticated: false, error: 'invalid token' }),
    });
  let server = makeServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'sandbox', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(cert).toString('base64') } }],
      users: [{ name: 'admin', user: { token: TOKEN } }],
      contexts: [{ name: 'sandbox', context: { cluster: 'sandbox', user: 'admin' } }],
      'current-context': 'sandbox',
    }),
  );
  const stopServer = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = once(server, 'close');
    server.close();
    server.closeAllConnections();
    await closed;
  };
  const harness: Harness = {
    dir,
    store,
    get server() {
      return server;
    },
    port,
    ca: cert,
    kubeconfig,
    stopServer,
    async restartServer() {
      await stopServer();
      server = makeServer();
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
    request(method, path, options = {}) {
      return new Promise((resolve, reject) => {
        const headers: Record<string, string | number> = {};
        if (options.token !== null) headers.Authorization = `Bearer ${options.token ?? TOKEN}`;
        if (options.contentType) headers['Content-Type'] = options.contentType;
        if (options.accept) headers.Accept = options.accept;
        if (options.body !== undefined) headers['Content-Length'] = Buffer.byteLength(options.body);
        const req = httpsRequest({ host: '127.0.0.1', port, method, path, headers, ca: cert, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.setTimeout(10_000, () => req.destroy(new Error(`request ${method} ${path} timed out`)));
        req.end(options.body);
      });
    },
    async close() {
      await stopServer();
      store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return harness;
}
