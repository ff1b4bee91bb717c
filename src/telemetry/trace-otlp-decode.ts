/**
 * OTLP/HTTP trace export requests (https://opentelemetry.io/docs/specs/otlp/#otlphttp) decoded
 * into flat span records — for the `amesh/otlp-receiver` image and the tests that read what a
 * proxy exported.
 *
 * Both encodings of ExportTraceServiceRequest are accepted:
 *   - `application/x-protobuf`: decoded with protobufjs against the subset of
 *     opentelemetry/proto/{collector/trace,trace,resource,common}/v1 below (field numbers as in
 *     the upstream .proto files; fields we do not print — events, links, dropped counts — are
 *     left out, protobuf skips unknown fields). @opentelemetry/otlp-transformer only *encodes*
 *     requests, so it cannot be used here.
 *   - `application/json`: OTLP's JSON mapping — ids as hex strings, enums as integers (names are
 *     tolerated), int64 as strings or numbers, camelCase field names.
 * A malformed body throws (the receiver answers 400 with the message).
 */
import protobuf from 'protobufjs';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  kind: 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
  /** The resource's `service.name`. */
  service: string;
  attributes: Record<string, unknown>;
}

const KINDS: ReadonlyArray<ReceivedSpan['kind']> = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];

const OTLP_TRACE_PROTO = `
syntax = "proto3";
package opentelemetry.proto;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; }
message Resource { repeated KeyValue attributes = 1; }
message Status { string message = 2; int32 code = 3; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  Status status = 15;
}
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
`;

let requestType: protobuf.Type | undefined;

function exportRequestType(): protobuf.Type {
  requestType ??= protobuf.parse(OTLP_TRACE_PROTO, { keepCase: false }).root.lookupType('opentelemetry.proto.ExportTraceServiceRequest');
  return requestType;
}

/** The two content types OTLP/HTTP defines; undefined for anything else. */
export function otlpEncoding(contentType: string | undefined): 'json' | 'protobuf' | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  if (type === 'application/json') return 'json';
  if (type === 'application/x-protobuf') return 'protobuf';
  return undefined;
}

export function decodeOtlpTraces(body: Uint8Array, encoding: 'json' | 'protobuf'): ReceivedSpan[] {
  if (encoding === 'protobuf') {
    const type = exportRequestType();
    const message = type.toObject(type.decode(body), { longs: String, bytes: Array, defaults: false, oneofs: false });
    return flatten(message, 'protobuf');
  }
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  const parsed: unknown = text.trim() === '' ? {} : JSON.parse(text);
  if (!isObject(parsed)) throw new Error('OTLP JSON body is not an object');
  return flatten(parsed, 'json');
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function list(v: unknown): Obj[] {
  return Array.isArray(v) ? v.filter(isObject) : [];
}

function flatten(request: Obj, encoding: 'json' | 'protobuf'): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of list(request.resourceSpans)) {
    const resource = isObject(resourceSpans.resource) ? attributeMap(resourceSpans.resource.attributes) : {};
    const service = typeof resource['service.name'] === 'string' ? resource['service.name'] : 'unknown';
    // instrumentationLibrarySpans: OTLP before 0.19, still sent by old exporters.
    for (const scopeSpans of [...list(resourceSpans.scopeSpans), ...list(resourceSpans.instrumentationLibrarySpans)]) {
      for (const span of list(scopeSpans.spans)) {
        spans.push({
          traceId: id(span.traceId, encoding),
          spanId: id(span.spanId, encoding),
          parentSpanId: id(span.parentSpanId, encoding),
          name: typeof span.name === 'string' ? span.name : '',
          kind: kind(span.kind),
          service,
          attributes: attributeMap(span.attributes),
        });
      }
    }
  }
  return spans;
}

function id(v: unknown, encoding: 'json' | 'protobuf'): string {
  if (v === undefined || v === null || v === '') return '';
  if (encoding === 'protobuf' && Array.isArray(v)) return Buffer.from(v as number[]).toString('hex');
  if (typeof v === 'string') {
    // The spec says hex; some exporters of old sent protobuf's JSON mapping (base64).
    return /^[0-9a-fA-F]+$/.test(v) ? v.toLowerCase() : Buffer.from(v, 'base64').toString('hex');
  }
  throw new Error(`span id ${JSON.stringify(v)} is neither hex nor bytes`);
}

function kind(v: unknown): ReceivedSpan['kind'] {
  if (typeof v === 'number') return KINDS[v] ?? 'UNSPECIFIED';
  if (typeof v === 'string') {
    const name = v.replace(/^SPAN_KIND_/, '') as ReceivedSpan['kind'];
    return KINDS.includes(name) ? name : 'UNSPECIFIED';
  }
  return 'UNSPECIFIED';
}

function attributeMap(v: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list(v)) {
    if (typeof kv.key === 'string') out[kv.key] = anyValue(kv.value);
  }
  return out;
}

function anyValue(v: unknown): unknown {
  if (!isObject(v)) return null;
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) {
    const n = Number(v.intValue);
    return Number.isSafeInteger(n) ? n : String(v.intValue);
  }
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('arrayValue' in v) return isObject(v.arrayValue) ? list(v.arrayValue.values).map(anyValue) : [];
  if ('kvlistValue' in v) return isObject(v.kvlistValue) ? attributeMap(v.kvlistValue.values) : {};
  if ('bytesValue' in v) return Array.isArray(v.bytesValue) ? Buffer.from(v.bytesValue as number[]).toString('base64') : v.bytesValue;
  return null;
}
