/**
 * Built-in stand-in for httpbin (`mccutchen/go-httpbin` on 8080, `kennethreitz/httpbin` on 80):
 * the request-inspection and failure endpoints that mesh walkthroughs use.
 *
 *   /get, /anything[/…], /headers, /ip, /uuid   JSON echo of method, path, args, headers, origin, body
 *   /status/<codes>                              a status; "503,200" picks one at random, "503:1,200:3" weighted
 *   /delay/<seconds>                             answers after the delay (max 10 s), like /get
 *   /bytes/<n>, /stream-bytes/<n>                n random bytes (max 100 MiB), the latter chunked
 *
 * The JSON echo also carries `hostname` and `version` (from $HOSTNAME / --version-string) so a
 * test can tell which backend answered — go-httpbin has neither; they are extra fields.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';

export interface HttpbinOptions {
  port: number;
  hostname: string;
  version?: string;
}

const MAX_DELAY_S = 10;
const MAX_BYTES = 100 * 1024 * 1024;
const MAX_ECHO_BODY = 1024 * 1024;

/** "503,200" → uniform; "503:1,200:3" → weighted. Undefined for malformed input. */
export function pickStatus(spec: string, random: () => number = Math.random): number | undefined {
  const entries: Array<{ code: number; weight: number }> = [];
  for (const part of spec.split(',')) {
    const [codeText = '', weightText] = part.split(':');
    const code = Number(codeText);
    const weight = weightText === undefined ? 1 : Number(weightText);
    if (!Number.isInteger(code) || code < 100 || code > 599 || !Number.isFinite(weight) || weight < 0) return undefined;
    entries.push({ code, weight });
  }
  const total = entries.reduce((sum, e) => sum + e.weight, 0);
  if (entries.length === 0 || total <= 0) return undefined;
  let r = random() * total;
  for (const e of entries) {
    if (r < e.weight) return e.code;
    r -= e.weight;
  }
  return entries.at(-1)?.code;
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_ECHO_BODY) chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function echo(req: http.IncomingMessage, url: URL, body: string, o: HttpbinOptions): Record<string, unknown> {
  const args: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) (args[k] ??= []).push(v);
  const headers: Record<string, string[]> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) (headers[req.rawHeaders[i] ?? ''] ??= []).push(req.rawHeaders[i + 1] ?? '');
  return {
    method: req.method,
    url: `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`,
    path: url.pathname,
    args,
    headers,
    origin: req.socket.remoteAddress ?? '',
    data: body,
    hostname: o.hostname,
    ...(o.version ? { version: o.version } : {}),
  };
}

export function httpbinHandler(o: HttpbinOptions): http.RequestListener {
  return (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const path = url.pathname;
      const body = await readBody(req);
      let m: RegExpExecArray | null;
      if (path === '/get' || path === '/headers' || path === '/ip' || path === '/' || path.startsWith('/anything')) return json(res, 200, echo(req, url, body, o));
      if (path === '/uuid') return json(res, 200, { uuid: randomUUID() });
      if ((m = /^\/status\/([\d:,.]+)$/.exec(path))) {
        const status = pickStatus(m[1] ?? '');
        if (status === undefined) return json(res, 400, { error: `invalid status spec ${m[1]}` });
        res.writeHead(status, { 'content-type': 'text/plain', 'x-httpbin-hostname': o.hostname });
        return res.end(status >= 200 && status !== 204 && status !== 304 ? `${status}\n` : undefined);
      }
      if ((m = /^\/delay\/(\d+(?:\.\d+)?)$/.exec(path))) {
        const seconds = Math.min(Number(m[1]), MAX_DELAY_S);
        const timer = setTimeout(() => json(res, 200, echo(req, url, body, o)), seconds * 1000);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      if ((m = /^\/(bytes|stream-bytes)\/(\d+)$/.exec(path))) {
        const n = Math.min(Number(m[2]), MAX_BYTES);
        const chunked = m[1] === 'stream-bytes';
        res.writeHead(200, { 'content-type': 'application/octet-stream', ...(chunked ? {} : { 'content-length': n }) });
        let left = n;
        const write = (): void => {
          while (left > 0) {
            const size = Math.min(left, 64 * 1024);
            left -= size;
            if (!res.write(randomBytes(size))) return void res.once('drain', write);
          }
          res.end();
        };
        return write();
      }
      json(res, 404, { error: `no such endpoint ${path}` });
    })().catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: (err as Error).message });
      else res.destroy();
    });
  };
}

export async function runHttpbin(o: HttpbinOptions): Promise<http.Server> {
  const server = http.createServer(httpbinHandler(o));
  server.listen({ port: o.port, host: '::' });
  await once(server, 'listening');
  console.error(`httpbin listening on port ${o.port}`);
  return server;
}
