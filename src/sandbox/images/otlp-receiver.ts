/**
 * `amesh/otlp-receiver`: amesh's own stand-in for an OpenTelemetry collector, small enough to
 * read in a minute. It speaks OTLP/HTTP for traces only:
 *
 *   POST /v1/traces   application/json or application/x-protobuf (optionally gzip-encoded):
 *                     every span is printed as one JSON line on stdout
 *                     {traceId, spanId, parentSpanId, name, kind, service, attributes}
 *                     (so `kubectl logs` shows the traces), answered 200 with an empty
 *                     ExportTraceServiceResponse — `{}` for JSON, an empty body for protobuf.
 *   GET  /spans       the spans received so far as a JSON array (tests, demos); at most the
 *                     last MAX_KEPT_SPANS are kept.
 *   GET  /healthz     200 (probes).
 *
 * Anything else: 404; another content type: 415; a body that does not decode: 400 with the
 * reason; larger than MAX_BODY_BYTES: 413 — the codes OTLP/HTTP clients treat as not retryable.
 * Used in-process by the direct tests too (port 0, `out` collecting lines).
 */
import http from 'node:http';
import { once } from 'node:events';
import { gunzipSync } from 'node:zlib';
import { decodeOtlpTraces, otlpEncoding, type ReceivedSpan } from '../../telemetry/trace-otlp-decode.js';

export const OTLP_HTTP_PORT = 4318;
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
export const MAX_KEPT_SPANS = 10_000;

export interface OtlpReceiverOptions {
  port: number;
  /** Listen address; default all (`::`). */
  host?: string;
  /** Where span lines go; default stdout. */
  out?: (line: string) => void;
  /** Where the startup line goes; default stderr. */
  log?: (line: string) => void;
}

export interface OtlpReceiver {
  server: http.Server;
  /** The spans received so far, oldest first (the same list GET /spans answers). */
  spans(): ReceivedSpan[];
  /** The bound port (useful with port 0). */
  port: number;
}

export async function runOtlpReceiver(o: OtlpReceiverOptions): Promise<OtlpReceiver> {
  const kept: ReceivedSpan[] = [];
  const out = o.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/spans') return reply(res, 200, 'application/json', JSON.stringify(kept));
    if (req.method === 'GET' && path === '/healthz') return reply(res, 200, 'text/plain', 'ok\n');
    if (path !== '/v1/traces') return reply(res, 404, 'text/plain', 'not found: OTLP/HTTP traces go to POST /v1/traces\n');
    if (req.method !== 'POST') return reply(res, 405, 'text/plain', 'POST only\n');
    const encoding = otlpEncoding(req.headers['content-type']);
    if (!encoding) {
      req.resume();
      return reply(res, 415, 'text/plain', `unsupported content-type ${req.headers['content-type'] ?? '(none)'}: send application/json or application/x-protobuf\n`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return reply(res, 413, 'text/plain', `body larger than ${MAX_BODY_BYTES} bytes\n`);
      let spans: ReceivedSpan[];
      try {
        let body = Buffer.concat(chunks);
        if ((req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip') body = gunzipSync(body, { maxOutputLength: MAX_BODY_BYTES });
        spans = decodeOtlpTraces(body, encoding);
      } catch (err) {
        return reply(res, 400, 'text/plain', `cannot decode the OTLP ${encoding} body: ${err instanceof Error ? err.message : String(err)}\n`);
      }
      for (const span of spans) {
        out(JSON.stringify(span));
        kept.push(span);
      }
      if (kept.length > MAX_KEPT_SPANS) kept.splice(0, kept.length - MAX_KEPT_SPANS);
      if (encoding === 'json') reply(res, 200, 'application/json', '{}');
      else reply(res, 200, 'application/x-protobuf', '');
    });
    req.on('error', () => res.destroy());
  });
  server.listen({ port: o.port, host: o.host ?? '::' });
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  (o.log ?? console.error)(`otlp-receiver: listening on ${o.host ?? '::'}:${port} (POST /v1/traces, GET /spans)`);
  return { server, port, spans: () => [...kept] };
}

function reply(res: http.ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
