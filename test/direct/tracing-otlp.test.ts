// ProxyTracing exporting over real OTLP/HTTP (OTLPTraceExporter, JSON) to the amesh/otlp-receiver
// program running in-process on 127.0.0.1:0:
//   - a request with a caller traceparent: the SERVER span (parent = caller span) and the CLIENT
//     span (parent = SERVER span) arrive within the batch delay, as GET /spans and as stdout lines;
//   - the receiver also takes protobuf (OpenTelemetry's serializer) and gzip, refuses other
//     content types (415), bad bodies (400), other paths (404);
//   - a collector that is down: requests unaffected, one warning, then recovery when it is back.
import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { ExportResultCode } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOtlpReceiver, type OtlpReceiver } from '../../src/sandbox/images/otlp-receiver.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import type { ReceivedSpan } from '../../src/telemetry/trace-otlp-decode.js';
import { ProxyTracing } from '../../src/telemetry/tracing.js';
import { eventually } from '../helpers/eventually.js';

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const REQUEST = { method: 'GET', authority: 'reviews.demo.svc.cluster.local:9080', path: '/reviews/1', protocol: 'HTTP/1.1', peerIdentity: 'spiffe://cluster.local/ns/demo/sa/productpage', clientAddress: '127.0.0.1:5000', role: 'waypoint' as const };

let receiver: OtlpReceiver;
const lines: string[] = [];
let base: string;

async function getSpans(): Promise<ReceivedSpan[]> {
  const res = await fetch(`${base}/spans`, { signal: AbortSignal.timeout(2000) });
  expect(res.status).toBe(200);
  return (await res.json()) as ReceivedSpan[];
}

beforeAll(async () => {
  receiver = await runOtlpReceiver({ port: 0, host: '127.0.0.1', out: (l) => lines.push(l), log: () => {} });
  base = `http://127.0.0.1:${receiver.port}`;
});

afterAll(async () => {
  receiver.server.closeAllConnections();
  receiver.server.close();
  await once(receiver.server, 'close');
});

describe('ProxyTracing → OTLP/HTTP → amesh/otlp-receiver', () => {
  it('SERVER and CLIENT spans arrive with the right parents, without waiting for close()', async () => {
    const tracing = new ProxyTracing({ serviceName: 'waypoint.demo', serviceNamespace: 'demo', logger: silentLogger });
    tracing.configure({ provider: 'otel', endpoint: `${base}/v1/traces`, samplingPercentage: 100, customTags: { suite: 'tracing-otlp' } });
    try {
      const trace = tracing.startRequest({ traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` }, REQUEST);
      const attempt = trace?.startTry({ cluster: 'outbound|9080||reviews.demo.svc.cluster.local', endpoint: '127.0.0.1:9080' });
      attempt?.end(200);
      trace?.end({ status: 200, responseFlags: '-' });
      const upstreamSpanId = /^00-[0-9a-f]{32}-([0-9a-f]{16})-01$/.exec(attempt?.headers.traceparent ?? '')?.[1];
      expect(upstreamSpanId).toBeDefined();

      const spans = await eventually(
        async () => {
          const mine = (await getSpans()).filter((s) => s.traceId === CALLER_TRACE);
          expect(mine).toHaveLength(2);
          return mine;
        },
        { timeoutMs: 10_000, description: 'two spans of the caller trace at the receiver' },
      );
      const server = spans.find((s) => s.kind === 'SERVER');
      const client = spans.find((s) => s.kind === 'CLIENT');
      expect(server).toMatchObject({ parentSpanId: CALLER_SPAN, name: 'reviews.demo.svc.cluster.local:9080/reviews/1', service: 'waypoint.demo' });
      expect(server?.attributes).toMatchObject({ 'http.method': 'GET', 'http.status_code': 200, response_flags: '-', 'source.principal': REQUEST.peerIdentity, suite: 'tracing-otlp' });
      expect(client).toMatchObject({ parentSpanId: server?.spanId, spanId: upstreamSpanId, service: 'waypoint.demo' });
      expect(client?.attributes).toMatchObject({ upstream_cluster: 'outbound|9080||reviews.demo.svc.cluster.local', 'http.status_code': 200 });
      // stdout: one JSON line per span, the same records.
      const printed = lines.map((l) => JSON.parse(l) as ReceivedSpan).filter((s) => s.traceId === CALLER_TRACE);
      expect(printed).toEqual(spans);
      expect(Object.keys(printed[0] ?? {})).toEqual(['traceId', 'spanId', 'parentSpanId', 'name', 'kind', 'service', 'attributes']);
    } finally {
      await tracing.close();
    }
  });

  it('close() flushes what is queued at once', async () => {
    const tracing = new ProxyTracing({ serviceName: 'gateway.edge', logger: silentLogger });
    tracing.configure({ provider: 'otel', endpoint: `${base}/v1/traces`, samplingPercentage: 100 });
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const trace = tracing.startRequest({}, { ...REQUEST, role: 'gateway' });
      const attempt = trace?.startTry({ cluster: 'c', endpoint: 'e' });
      ids.add(/^00-([0-9a-f]{32})-/.exec(attempt?.headers.traceparent ?? '')?.[1] ?? '');
      attempt?.end(200);
      trace?.end({ status: 200, responseFlags: '-' });
    }
    await tracing.close();
    const got = (await getSpans()).filter((s) => ids.has(s.traceId));
    expect(got).toHaveLength(40);
    expect(new Set(got.map((s) => s.service))).toEqual(new Set(['gateway.edge']));
  });
});

describe('the receiver itself', () => {
  it('takes protobuf (also gzip-encoded) and answers an empty protobuf response', async () => {
    const spans: ReadableSpan[] = [];
    const tracing = new ProxyTracing({
      serviceName: 'proto.test',
      logger: silentLogger,
      createExporter: () => ({ export: (b, done) => (spans.push(...b), done({ code: ExportResultCode.SUCCESS })), shutdown: async () => {} }),
    });
    tracing.configure({ provider: 'otel', endpoint: 'http://unused/v1/traces', samplingPercentage: 100 });
    tracing.startRequest({}, REQUEST)?.end({ status: 204, responseFlags: '-' });
    await tracing.close();
    const body = ProtobufTraceSerializer.serializeRequest(spans);
    if (!body) throw new Error('no body');
    const plain = await fetch(`${base}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
    expect(plain.status).toBe(200);
    expect(plain.headers.get('content-type')).toBe('application/x-protobuf');
    expect((await plain.arrayBuffer()).byteLength).toBe(0);
    const zipped = await fetch(`${base}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' }, body: gzipSync(body) });
    expect(zipped.status).toBe(200);
    const got = (await getSpans()).filter((s) => s.service === 'proto.test');
    expect(got).toHaveLength(2);
    expect(got[0]?.attributes['http.status_code']).toBe(204);
  });

  it('415 for another content type, 400 for a bad body, 404 elsewhere, 405 for GET /v1/traces', async () => {
    const post = (type: string, body: string) => fetch(`${base}/v1/traces`, { method: 'POST', headers: { 'content-type': type }, body });
    expect((await post('text/plain', 'x')).status).toBe(415);
    const bad = await post('application/json', '{"resourceSpans": [');
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/cannot decode the OTLP json body/);
    expect((await post('application/json', '{}')).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/v1/traces`)).status).toBe(405);
  });
});

describe('a collector that is down', () => {
  it('requests are unaffected, the failure is logged once, and export recovers when the collector is back', async () => {
    // A port that was free a moment ago: connection refused until the receiver takes it.
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    probe.close();
    await once(probe, 'close');

    const records: Array<Record<string, unknown>> = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _e, done) {
          records.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    );
    const tracing = new ProxyTracing({ serviceName: 'waypoint.down', logger });
    tracing.configure({ provider: 'otel', endpoint: `http://127.0.0.1:${port}/v1/traces`, samplingPercentage: 100 });
    let late: OtlpReceiver | undefined;
    try {
      const started = Date.now();
      for (let i = 0; i < 200; i++) {
        const trace = tracing.startRequest({}, REQUEST);
        trace?.startTry({ cluster: 'c', endpoint: 'e' }).end(200);
        trace?.end({ status: 200, responseFlags: '-' });
      }
      // 200 requests with an unreachable collector take no network time on the request path.
      expect(Date.now() - started).toBeLessThan(2000);
      await eventually(() => expect(records.filter((r) => r.msg?.toString().startsWith('trace export failed'))).toHaveLength(1), {
        timeoutMs: 15_000,
        description: 'the export failure warning',
      });
      const warning = records.find((r) => r.msg?.toString().startsWith('trace export failed'));
      expect(warning).toMatchObject({ level: 40, endpoint: `http://127.0.0.1:${port}/v1/traces` });

      late = await runOtlpReceiver({ port, host: '127.0.0.1', out: () => {}, log: () => {} });
      const trace = tracing.startRequest({}, REQUEST);
      trace?.end({ status: 200, responseFlags: '-' });
      await eventually(() => expect(late?.spans().some((s) => s.service === 'waypoint.down')).toBe(true), { timeoutMs: 15_000, description: 'spans after the collector came back' });
      await eventually(() => expect(records.some((r) => r.msg === 'trace export recovered')).toBe(true), { timeoutMs: 5_000, description: 'the recovery line' });
    } finally {
      await tracing.close();
      if (late) {
        late.server.closeAllConnections();
        late.server.close();
      }
    }
  }, 40_000);
});
