/**
 * Built-in stand-in for gcr.io/google-samples/hello-app: answers every path on PORT (default
 * 8080) with the real image's three lines. Run inside a pod's network namespace.
 */
import http from 'node:http';
import { once } from 'node:events';

export interface HelloAppOptions {
  port: number;
  version: string;
  hostname: string;
}

export function helloBody(o: Pick<HelloAppOptions, 'version' | 'hostname'>): string {
  return `Hello, world!\nVersion: ${o.version}\nHostname: ${o.hostname}\n`;
}

export async function runHelloApp(o: HelloAppOptions): Promise<http.Server> {
  const body = helloBody(o);
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.listen({ port: o.port, host: '::' });
  await once(server, 'listening');
  console.error(`Server listening on port ${o.port}`);
  return server;
}
