// ProxyTracing without a network: spans go to a collecting exporter (createExporter), so the
// propagation formats, the sampling rules and the span contents are checked exactly.
//   - off → startRequest undefined (never configured, and after configure(undefined));
//   - extract W3C, B3 multi, B3 single (64-bit ids too), W3C wins over B3, garbage → new root;
//   - inject: traceparent + b3 + x-b3-* naming the try's CLIENT span, tracestate passed on;
//   - sampling 0 / 100 at the root; a parent's sampled flag wins both ways; a seeded 50 %;
//   - percentage changes apply without a rebuild; an endpoint change rebuilds and flushes the old;
//   - span names and attributes (Envoy's tags, custom tags, status, error);
//   - a failing exporter: requests unaffected, failures logged once per interval.
import { Writable } from 'node:stream';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace as otelTrace } from '@opentelemetry/api';
import { ExportResultCode, TraceState, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { TracingSettings } from '../../src/telemetry/telemetry-config.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { clientSpanName, serverSpanName } from '../../src/telemetry/trace-attributes.js';
import { ReportingExporter } from '../../src/telemetry/trace-exporter.js';
import { injectTraceHeaders, traceHeadersFor } from '../../src/telemetry/trace-propagation.js';
import { ProxyTracing, TRACE_HEADER_NAMES } from '../../src/telemetry/tracing.js';
import { seededRandom } from '../helpers/seeded-random.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const REQUEST = { method: 'GET', authority: 'reviews.demo.svc.cluster.local:9080', path: '/reviews/0?user=1', protocol: 'HTTP/1.1', peerIdentity: 'spiffe://cluster.local/ns/demo/sa/productpage', clientAddress: '10.0.0.7:41000', role: 'waypoint' as const };
const TRY = { cluster: 'outbound|9080||reviews.demo.svc.cluster.local', endpoint: '10.0.1.5:9080' };

/** Every span ever exported to any endpoint, with the endpoint (survives shutdown, unlike InMemorySpanExporter). */
function collector(): { created: string[]; shutdowns: string[]; spans: Array<{ endpoint: string; span: ReadableSpan }>; factory: (endpoint: string) => SpanExporter } {
  const created: string[] = [];
  const shutdowns: string[] = [];
  const spans: Array<{ endpoint: string; span: ReadableSpan }> = [];
  return {
    created,
    shutdowns,
    spans,
    factory: (endpoint) => {
      created.push(endpoint);
      return {
        export(batch: ReadableSpan[], done: (r: ExportResult) => void): void {
          for (const span of batch) spans.push({ endpoint, span });
          done({ code: ExportResultCode.SUCCESS });
        },
        shutdown: async () => {
          shutdowns.push(endpoint);
        },
      };
    },
  };
}

function settings(samplingPercentage: number, over: Partial<TracingSettings> = {}): TracingSettings {
  return { provider: 'otel', endpoint: 'http://collector.observability:4318/v1/traces', samplingPercentage, ...over };
}

function tracingWith(c: ReturnType<typeof collector>, extra: { random?: () => number } = {}): ProxyTracing {
  return new ProxyTracing({ serviceName: 'waypoint.demo', serviceNamespace: 'demo', logger: silentLogger, createExporter: c.factory, ...extra });
}

/** One request with one try; returns the upstream headers. */
function oneRequest(t: ProxyTracing, headers: Record<string, string> = {}, status = 200): Record<string, string> {
  const trace = t.startRequest(headers, REQUEST);
  if (!trace) throw new Error('tracing is off');
  const attempt = trace.startTry(TRY);
  attempt.end(status);
  trace.end({ status, responseFlags: '-', route: 'reviews' });
  return attempt.headers;
}

function parseTraceparent(v: string | undefined): { traceId: string; spanId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(v ?? '');
  if (!m) throw new Error(`bad traceparent ${v}`);
  return { traceId: m[1] ?? '', spanId: m[2] ?? '', flags: m[3] ?? '' };
}

describe('ProxyTracing: off', () => {
  it('never configured: startRequest is undefined', () => {
    const t = new ProxyTracing({ serviceName: 'w', logger: silentLogger });
    expect(t.startRequest({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` }, REQUEST)).toBeUndefined();
    expect(t.enabled).toBe(false);
  });

  it('configured then configure(undefined): undefined again, the exporter flushed and shut down', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100));
    oneRequest(t);
    t.configure(undefined);
    expect(t.startRequest({}, REQUEST)).toBeUndefined();
    await t.close();
    expect(c.spans).toHaveLength(2);
    expect(c.shutdowns).toEqual([settings(100).endpoint]);
  });
});

describe('ProxyTracing: propagation', () => {
  it('W3C in: the SERVER span is the caller span\'s child, the CLIENT span the SERVER\'s, and upstream gets W3C + B3 for the CLIENT span', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(0));
    const headers = oneRequest(t, { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=opaque' });
    await t.close();
    const server = c.spans.find((s) => s.span.kind === SpanKind.SERVER)?.span;
    const client = c.spans.find((s) => s.span.kind === SpanKind.CLIENT)?.span;
    expect(server?.spanContext().traceId).toBe(TRACE_ID);
    expect(server?.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(client?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
    const clientId = client?.spanContext().spanId ?? '';
    expect(parseTraceparent(headers.traceparent)).toEqual({ traceId: TRACE_ID, spanId: clientId, flags: '01' });
    expect(headers.tracestate).toBe('vendor=opaque');
    expect(headers['x-b3-traceid']).toBe(TRACE_ID);
    expect(headers['x-b3-spanid']).toBe(clientId);
    expect(headers['x-b3-sampled']).toBe('1');
    expect(headers.b3).toBe(`${TRACE_ID}-${clientId}-1`);
    // Only names the proxy strips may be set.
    for (const name of Object.keys(headers)) expect(TRACE_HEADER_NAMES as readonly string[]).toContain(name);
  });

  it('B3 multi in: the trace continues (sampled flag, parent id)', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(0));
    const headers = oneRequest(t, { 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '1' });
    await t.close();
    const server = c.spans.find((s) => s.span.kind === SpanKind.SERVER)?.span;
    expect(server?.spanContext().traceId).toBe(TRACE_ID);
    expect(server?.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(parseTraceparent(headers.traceparent).traceId).toBe(TRACE_ID);
  });

  it('B3 single in, with a 64-bit trace id: continued, the id left-padded to 128 bits', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(0));
    const headers = oneRequest(t, { b3: `a3ce929d0e0e4736-${PARENT_ID}-1` });
    await t.close();
    const server = c.spans.find((s) => s.span.kind === SpanKind.SERVER)?.span;
    expect(server?.spanContext().traceId).toBe('0000000000000000a3ce929d0e0e4736');
    expect(server?.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(headers['x-b3-traceid']).toBe('0000000000000000a3ce929d0e0e4736');
  });

  it('W3C and B3 both present: W3C wins', () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100));
    const other = 'ffffffffffffffffffffffffffffffff';
    const headers = oneRequest(t, { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-b3-traceid': other, 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '1' });
    expect(parseTraceparent(headers.traceparent).traceId).toBe(TRACE_ID);
  });

  it('an invalid traceparent falls back to B3, garbage everywhere starts a new trace', () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100));
    const viaB3 = oneRequest(t, { traceparent: '00-zzzz-yyyy-01', 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID });
    expect(parseTraceparent(viaB3.traceparent).traceId).toBe(TRACE_ID);
    const fresh = oneRequest(t, { traceparent: `00-${'0'.repeat(32)}-${PARENT_ID}-01`, b3: 'nonsense' });
    const id = parseTraceparent(fresh.traceparent).traceId;
    expect(id).not.toBe('0'.repeat(32));
    expect(id).not.toBe(TRACE_ID);
  });

  it('each try gets its own CLIENT span id, all children of the one SERVER span', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100));
    const trace = t.startRequest({}, REQUEST);
    const first = trace?.startTry(TRY);
    first?.end(503);
    const second = trace?.startTry({ ...TRY, endpoint: '10.0.1.6:9080' });
    second?.end(200);
    trace?.end({ status: 200, responseFlags: 'URX' });
    await t.close();
    const a = parseTraceparent(first?.headers.traceparent);
    const b = parseTraceparent(second?.headers.traceparent);
    expect(a.traceId).toBe(b.traceId);
    expect(a.spanId).not.toBe(b.spanId);
    const server = c.spans.find((s) => s.span.kind === SpanKind.SERVER)?.span;
    const clients = c.spans.filter((s) => s.span.kind === SpanKind.CLIENT).map((s) => s.span);
    expect(clients.map((s) => s.spanContext().spanId).sort()).toEqual([a.spanId, b.spanId].sort());
    for (const client of clients) expect(client.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
  });
});

describe('traceHeadersFor (the fast writer) equals the OpenTelemetry propagators\' output', () => {
  it.each([
    ['sampled', TraceFlags.SAMPLED, undefined],
    ['not sampled', TraceFlags.NONE, undefined],
    ['sampled with tracestate', TraceFlags.SAMPLED, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'],
    ['not sampled with tracestate', TraceFlags.NONE, 'vendor=x'],
  ])('%s', (_name, traceFlags, state) => {
    const span = { traceId: TRACE_ID, spanId: PARENT_ID, traceFlags, isRemote: false, ...(state ? { traceState: new TraceState(state) } : {}) };
    const reference = injectTraceHeaders(otelTrace.setSpanContext(ROOT_CONTEXT, span));
    expect(Object.keys(reference).length).toBeGreaterThanOrEqual(5);
    expect(traceHeadersFor(span)).toEqual(reference);
  });
});

describe('ProxyTracing: sampling', () => {
  it('0 %: no parent → nothing exported, upstream told "not sampled" with fresh ids', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(0));
    const headers = [oneRequest(t), oneRequest(t), oneRequest(t)];
    await t.close();
    expect(c.spans).toHaveLength(0);
    for (const h of headers) {
      expect(parseTraceparent(h.traceparent).flags).toBe('00');
      expect(h['x-b3-sampled']).toBe('0');
    }
    expect(new Set(headers.map((h) => parseTraceparent(h.traceparent).traceId)).size).toBe(3);
  });

  it('100 %: every root request exported (SERVER + CLIENT)', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100));
    for (let i = 0; i < 50; i++) expect(parseTraceparent(oneRequest(t).traceparent).flags).toBe('01');
    await t.close();
    expect(c.spans).toHaveLength(100);
  });

  it('the parent\'s flag wins: sampled parent at 0 % is exported, unsampled parent at 100 % is not (and stays unsampled upstream)', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(0));
    oneRequest(t, { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` });
    t.configure(settings(100));
    const unsampled = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const headers = oneRequest(t, { traceparent: `00-${unsampled}-${PARENT_ID}-00` });
    const b3Unsampled = oneRequest(t, { 'x-b3-traceid': unsampled, 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '0' });
    await t.close();
    expect(new Set(c.spans.map((s) => s.span.spanContext().traceId))).toEqual(new Set([TRACE_ID]));
    expect(c.spans).toHaveLength(2);
    expect(parseTraceparent(headers.traceparent)).toMatchObject({ traceId: unsampled, flags: '00' });
    expect(b3Unsampled['x-b3-sampled']).toBe('0');
  });

  it('50 % with a seeded coin: about half of 2 000 root requests', async () => {
    const c = collector();
    const t = tracingWith(c, { random: seededRandom(9) });
    t.configure(settings(50));
    let sampled = 0;
    for (let i = 0; i < 2000; i++) if (parseTraceparent(oneRequest(t).traceparent).flags === '01') sampled++;
    await t.close();
    expect(sampled).toBeGreaterThan(900);
    expect(sampled).toBeLessThan(1100);
    expect(c.spans).toHaveLength(sampled * 2);
  });

  it('50 % by trace id (no coin injected): about half as well', () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(50));
    let sampled = 0;
    for (let i = 0; i < 2000; i++) if (parseTraceparent(oneRequest(t).traceparent).flags === '01') sampled++;
    expect(sampled).toBeGreaterThan(850);
    expect(sampled).toBeLessThan(1150);
  });
});

describe('ProxyTracing: reconfigure', () => {
  it('a sampling or custom-tag change applies at once without a new exporter', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(0));
    expect(parseTraceparent(oneRequest(t).traceparent).flags).toBe('00');
    t.configure(settings(100, { customTags: { cluster_name: 'east' } }));
    expect(parseTraceparent(oneRequest(t).traceparent).flags).toBe('01');
    await t.close();
    expect(c.created).toHaveLength(1);
    expect(c.spans.map((s) => s.span.attributes.cluster_name)).toEqual(['east', 'east']);
  });

  it('an endpoint change rebuilds: spans before go to the old endpoint (flushed), after to the new', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100, { endpoint: 'http://old:4318/v1/traces' }));
    oneRequest(t);
    t.configure(settings(100, { endpoint: 'http://new:4318/v1/traces' }));
    oneRequest(t);
    oneRequest(t);
    await t.close();
    expect(c.created).toEqual(['http://old:4318/v1/traces', 'http://new:4318/v1/traces']);
    expect(c.spans.filter((s) => s.endpoint === 'http://old:4318/v1/traces')).toHaveLength(2);
    expect(c.spans.filter((s) => s.endpoint === 'http://new:4318/v1/traces')).toHaveLength(4);
    expect(c.shutdowns.sort()).toEqual(['http://new:4318/v1/traces', 'http://old:4318/v1/traces']);
  });

  it('a provider rename with the same endpoint rebuilds too', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100));
    t.configure(settings(100, { provider: 'otel-2' }));
    await t.close();
    expect(c.created).toHaveLength(2);
  });
});

describe('ProxyTracing: span contents', () => {
  it('names, Envoy-style attributes, custom tags (which cannot override ours), status', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100, { customTags: { team: 'reviews', 'http.method': 'FORGED' } }));
    const trace = t.startRequest({ 'user-agent': 'curl/8', 'x-request-id': 'req-1' }, { ...REQUEST, role: 'gateway' });
    const attempt = trace?.startTry(TRY);
    attempt?.end(undefined, 'upstream connect error');
    trace?.end({ status: 503, responseFlags: 'UF', route: 'reviews-route', error: 'no healthy upstream' });
    await t.close();
    const server = c.spans.find((s) => s.span.kind === SpanKind.SERVER)?.span;
    const client = c.spans.find((s) => s.span.kind === SpanKind.CLIENT)?.span;
    expect(server?.name).toBe('reviews.demo.svc.cluster.local:9080/reviews/0');
    expect(server?.name).toBe(serverSpanName(REQUEST));
    expect(server?.attributes).toMatchObject({
      'http.method': 'GET',
      'http.url': 'http://reviews.demo.svc.cluster.local:9080/reviews/0?user=1',
      'http.protocol': 'HTTP/1.1',
      'http.status_code': 503,
      'http.route': 'reviews-route',
      response_flags: 'UF',
      'source.principal': REQUEST.peerIdentity,
      'peer.address': REQUEST.clientAddress,
      'amesh.role': 'gateway',
      node_id: 'waypoint.demo',
      'istio.namespace': 'demo',
      user_agent: 'curl/8',
      'guid:x-request-id': 'req-1',
      team: 'reviews',
    });
    expect(server?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no healthy upstream' });
    expect(server?.resource.attributes['service.name']).toBe('waypoint.demo');
    expect(server?.resource.attributes['service.namespace']).toBe('demo');
    expect(client?.name).toBe(clientSpanName(TRY.cluster));
    expect(client?.name).toBe('router outbound|9080||reviews.demo.svc.cluster.local egress');
    expect(client?.attributes).toMatchObject({ upstream_cluster: TRY.cluster, upstream_address: TRY.endpoint, 'http.method': 'GET', team: 'reviews', 'error.message': 'upstream connect error' });
    expect(client?.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('a 2xx leaves the status unset; ending twice changes nothing', async () => {
    const c = collector();
    const t = tracingWith(c);
    t.configure(settings(100));
    const trace = t.startRequest({}, REQUEST);
    const attempt = trace?.startTry(TRY);
    attempt?.end(200);
    attempt?.end(500);
    trace?.end({ status: 200, responseFlags: '-' });
    trace?.end({ status: 500, responseFlags: 'UF' });
    await t.close();
    expect(c.spans).toHaveLength(2);
    for (const { span } of c.spans) {
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.attributes['http.status_code']).toBe(200);
    }
  });
});

describe('export failures', () => {
  it('requests carry on; failures are logged at once, then at most once per interval with counts', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    let now = 0;
    const failing: SpanExporter = {
      export: (_spans, done) => done({ code: ExportResultCode.FAILED, error: new Error('ECONNREFUSED') }),
      shutdown: async () => {},
    };
    const exporter = new ReportingExporter(failing, logger, 'http://down:4318/v1/traces', () => now, 60_000);
    const results: ExportResult[] = [];
    for (let i = 0; i < 5; i++) exporter.export([], (r) => results.push(r));
    now = 60_001;
    exporter.export([], (r) => results.push(r));
    const throwing = new ReportingExporter(
      {
        export: () => {
          throw new Error('boom');
        },
        shutdown: async () => {},
      },
      logger,
      'http://bad/v1/traces',
    );
    throwing.export([], (r) => results.push(r));
    await new Promise((resolve) => setImmediate(resolve));
    expect(results.every((r) => r.code === ExportResultCode.FAILED)).toBe(true);
    const warnings = lines.filter((l) => l.msg?.toString().startsWith('trace export failed'));
    expect(warnings.map((w) => [w.endpoint, w.failedBatches])).toEqual([
      ['http://down:4318/v1/traces', 1],
      ['http://down:4318/v1/traces', 5],
      ['http://bad/v1/traces', 1],
    ]);
  });

  it('a ProxyTracing whose exporter fails still answers every request with headers', async () => {
    const t = new ProxyTracing({
      serviceName: 'w',
      logger: silentLogger,
      createExporter: () => ({ export: (_s, done) => done({ code: ExportResultCode.FAILED, error: new Error('down') }), shutdown: async () => {} }),
    });
    t.configure(settings(100));
    for (let i = 0; i < 20; i++) expect(parseTraceparent(oneRequest(t).traceparent).flags).toBe('01');
    await expect(t.close()).resolves.toBeUndefined();
  });
});
