/**
 * Built-in stand-in for hashicorp/http-echo: answers every path with `-text` plus a newline, and
 * `/health` with `{"status":"ok"}`. Flags follow the real program (Go `flag` syntax: `-name=value`,
 * `-name value`, one or two dashes), so Deployments written for the real image work unchanged.
 */
import http from 'node:http';
import { once } from 'node:events';

export interface HttpEchoOptions {
  text: string;
  /** Host part may be empty (all addresses), like Go's ":5678". */
  host: string;
  port: number;
  statusCode: number;
}

/** Parses http-echo's flags; returns an error message (as the real one prints) instead of throwing. */
export function parseHttpEchoArgs(argv: readonly string[]): HttpEchoOptions | { error: string } {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const m = /^--?([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m?.[1]) return { error: `unexpected argument "${arg}": flags look like -text="hello"` };
    const name = m[1];
    if (name === 'version') return { error: 'http-echo (amesh built-in) 1.0.0' };
    let value = m[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined) return { error: `flag needs an argument: -${name}` };
      i++;
    }
    values.set(name, value);
  }
  for (const name of values.keys()) {
    if (!['text', 'listen', 'status-code'].includes(name)) return { error: `flag provided but not defined: -${name}` };
  }
  const text = values.get('text');
  if (text === undefined || text === '') return { error: 'Missing -text option!' };
  const listen = values.get('listen') ?? ':5678';
  const colon = listen.lastIndexOf(':');
  const port = Number(listen.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) return { error: `-listen=${listen}: expected [host]:port` };
  const statusCode = Number(values.get('status-code') ?? 200);
  if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) return { error: `-status-code=${values.get('status-code')}: expected 100-599` };
  return { text, host: listen.slice(0, colon).replace(/^\[|\]$/g, ''), port, statusCode };
}

export async function runHttpEcho(o: HttpEchoOptions): Promise<http.Server> {
  const body = `${o.text}\n`;
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}\n');
      return;
    }
    res.writeHead(o.statusCode, { 'content-type': 'text/plain; charset=utf-8', 'x-app-name': 'http-echo', 'x-app-version': '1.0.0' });
    res.end(body);
  });
  server.listen({ port: o.port, host: o.host === '' ? '::' : o.host });
  await once(server, 'listening');
  console.error(`[INFO] server is listening on ${o.host}:${o.port}`);
  return server;
}
