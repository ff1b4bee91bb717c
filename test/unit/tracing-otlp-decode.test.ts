// The OTLP request decoder behind amesh/otlp-receiver, fed by OpenTelemetry's own serializers
// (@opentelemetry/otlp-transformer, what OTLPTraceExporter and the protobuf exporter send), so
// our protobuf subset and JSON reading are checked against an independent encoder:
//   - the same spans decode identically from JSON and protobuf (ids, parent, kind, service,
//     string/int/bool/double attributes);
//   - hand-written JSON: enum names, base64 ids, legacy instrumentationLibrarySpans, arrays/kvlists;
//   - content types; a malformed body throws.
import { ExportResultCode } from '@opentelemetry/core';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/telemetry/logger.js';
import { decodeOtlpTraces, otlpEncoding } from '../../src/telemetry/trace-otlp-decode.js';
import { ProxyTracing } from '../../src/telemetry/tracing.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

async function proxySpans(): Promise<ReadableSpan[]> {
  const spans: ReadableSpan[] = [];
  const t = new ProxyTracing({
    serviceName: 'waypoint.demo',
    logger: silentLogger,
    createExporter: () => ({
      export: (batch, done) => {
        spans.push(...batch);
        done({ code: ExportResultCode.SUCCESS });
      },
      shutdown: async () => {},
    }),
  });
  t.configure({ provider: 'otel', endpoint: 'http://unused/v1/traces', samplingPercentage: 100, customTags: { team: 'reviews' } });
  const trace = t.startRequest({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` }, { method: 'GET', authority: 'reviews:9080', path: '/r', protocol: 'HTTP/1.1', peerIdentity: '', clientAddress: '10.0.0.1:1', role: 'waypoint' });
  const attempt = trace?.startTry({ cluster: 'outbound|9080||reviews', endpoint: '10.0.1.5:9080' });
  attempt?.end(200);
  trace?.end({ status: 200, responseFlags: '-' });
  await t.close();
  return spans;
}

describe('decodeOtlpTraces', () => {
  it('JSON (OTLPTraceExporter\'s encoding) and protobuf decode to the same spans', async () => {
    const spans = await proxySpans();
    const json = JsonTraceSerializer.serializeRequest(spans);
    const proto = ProtobufTraceSerializer.serializeRequest(spans);
    if (!json || !proto) throw new Error('serializer returned nothing');
    const fromJson = decodeOtlpTraces(json, 'json');
    const fromProto = decodeOtlpTraces(proto, 'protobuf');
    expect(fromProto).toEqual(fromJson);
    const server = fromJson.find((s) => s.kind === 'SERVER');
    const client = fromJson.find((s) => s.kind === 'CLIENT');
    expect(server).toMatchObject({ traceId: TRACE_ID, parentSpanId: PARENT_ID, name: 'reviews:9080/r', service: 'waypoint.demo' });
    expect(server?.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(server?.attributes).toMatchObject({ 'http.method': 'GET', 'http.status_code': 200, team: 'reviews', response_flags: '-' });
    expect(client).toMatchObject({ traceId: TRACE_ID, parentSpanId: server?.spanId, name: 'router outbound|9080||reviews egress' });
    expect(client?.attributes.upstream_address).toBe('10.0.1.5:9080');
  });

  it('hand-written JSON: enum names, base64 ids, legacy instrumentationLibrarySpans, value kinds', () => {
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'app' } }] },
          instrumentationLibrarySpans: [
            {
              spans: [
                {
                  traceId: Buffer.from(TRACE_ID, 'hex').toString('base64'),
                  spanId: Buffer.from(PARENT_ID, 'hex').toString('base64'),
                  name: 'op',
                  kind: 'SPAN_KIND_CONSUMER',
                  attributes: [
                    { key: 'i', value: { intValue: '42' } },
                    { key: 'big', value: { intValue: '9007199254740993' } },
                    { key: 'd', value: { doubleValue: 1.5 } },
                    { key: 'b', value: { boolValue: false } },
                    { key: 'a', value: { arrayValue: { values: [{ stringValue: 'x' }, { intValue: 1 }] } } },
                    { key: 'kv', value: { kvlistValue: { values: [{ key: 'k', value: { stringValue: 'v' } }] } } },
                  ],
                },
              ],
            },
          ],
        },
        { resource: {}, scopeSpans: [{ spans: [{ traceId: TRACE_ID.toUpperCase(), spanId: PARENT_ID, name: 'x', kind: 2 }] }] },
      ],
    };
    const spans = decodeOtlpTraces(Buffer.from(JSON.stringify(body)), 'json');
    expect(spans).toEqual([
      {
        traceId: TRACE_ID,
        spanId: PARENT_ID,
        parentSpanId: '',
        name: 'op',
        kind: 'CONSUMER',
        service: 'app',
        attributes: { i: 42, big: '9007199254740993', d: 1.5, b: false, a: ['x', 1], kv: { k: 'v' } },
      },
      { traceId: TRACE_ID, spanId: PARENT_ID, parentSpanId: '', name: 'x', kind: 'SERVER', service: 'unknown', attributes: {} },
    ]);
  });

  it('an empty body is an empty request; a malformed one throws', () => {
    expect(decodeOtlpTraces(new Uint8Array(), 'json')).toEqual([]);
    expect(decodeOtlpTraces(new Uint8Array(), 'protobuf')).toEqual([]);
    expect(() => decodeOtlpTraces(Buffer.from('{"resourceSpans": ['), 'json')).toThrow();
    expect(() => decodeOtlpTraces(Buffer.from('[]'), 'json')).toThrow(/not an object/);
    expect(() => decodeOtlpTraces(Buffer.from([0x0a, 0xff, 0xff, 0xff]), 'protobuf')).toThrow();
  });

  it('content types', () => {
    expect(otlpEncoding('application/json')).toBe('json');
    expect(otlpEncoding('Application/JSON; charset=utf-8')).toBe('json');
    expect(otlpEncoding('application/x-protobuf')).toBe('protobuf');
    expect(otlpEncoding('text/plain')).toBeUndefined();
    expect(otlpEncoding(undefined)).toBeUndefined();
  });
});
