/**
 * Distributed tracing for the L7 proxies (waypoint, gateway): one SERVER span per downstream
 * request, one CLIENT span per upstream try, exported over OTLP/HTTP to the collector the mesh
 * config names (Telemetry `tracing` → WaypointConfig.telemetry.tracing).
 *
 * Invariants:
 *   - Off (never configured, or configured with `undefined`): `startRequest` returns undefined and
 *     the proxy forwards the caller's trace headers untouched — an unconfigured proxy is invisible.
 *   - On: every request gets a trace, sampled or not. Unsampled ones cost no export but still get
 *     fresh ids injected upstream with the sampled flag off, so the apps behind agree with the
 *     decision (parent-based sampling: a caller's flag always wins, see trace-sampler.ts).
 *   - Upstream headers carry W3C and B3 (single and multi) for the try's CLIENT span
 *     (trace-propagation.ts); the caller removes TRACE_HEADER_NAMES before setting them.
 *   - Nothing global: no global tracer provider, propagator or context manager is registered;
 *     parents are passed as explicit contexts. Several proxies can share one process (tests).
 *   - `configure` rebuilds the provider + exporter only when provider name or endpoint changes;
 *     the old one is flushed and shut down in the background (`close` waits for it). Sampling
 *     percentage and custom tags apply to the next request without a rebuild.
 *   - A request whose trace began under an old provider ends its spans there: after that
 *     provider's shutdown they are dropped, never sent to the new endpoint with a stale resource.
 *   - Export failures never reach requests: they are logged, rate-limited (trace-exporter.ts).
 */
import { ROOT_CONTEXT, SpanKind, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { TracingSettings } from './telemetry-config.js';
import type { Logger } from './logger.js';
import { clientSpanAttributes, clientSpanName, endAttributes, serverSpanAttributes, serverSpanName, spanStatus, type ProxyIdentity } from './trace-attributes.js';
import { otlpHttpExporter, ReportingExporter, type ExporterFactory } from './trace-exporter.js';
import { extractTraceContext, traceHeadersFor, type HeaderMap } from './trace-propagation.js';
import { PercentageSampler, proxySampler } from './trace-sampler.js';

export { TRACE_HEADER_NAMES } from './trace-propagation.js';

/** Batches leave at least this often; Envoy's OpenTelemetry tracer flushes every 5 s, ours sooner so `kubectl logs` of a collector shows a request's spans while one still looks. */
export const EXPORT_DELAY_MS = 1_000;
export const MAX_QUEUED_SPANS = 2_048;
export const MAX_BATCH_SPANS = 512;

export interface RequestTrace {
  /** The trace's id (32 hex digits), for access-log lines; set whether or not the trace is sampled. */
  readonly traceId: string;
  /** One upstream try: a CLIENT span; returns the headers to set upstream (traceparent, tracestate, b3 + x-b3-*). */
  startTry(a: { cluster: string; endpoint: string }): { headers: Record<string, string>; end(status?: number, error?: string): void };
  /** Ends the SERVER span with http.status_code, response flags, route, error. */
  end(a: { status?: number; responseFlags: string; route?: string; error?: string }): void;
}

export interface ProxyTracingOptions {
  serviceName: string;
  serviceNamespace?: string;
  logger: Logger;
  /** Root sampling coin in [0, 1); default: the trace id decides (TraceIdRatioBasedSampler). */
  random?: () => number;
  /** Where spans go for an endpoint; default OTLP/HTTP JSON. Tests pass an in-memory exporter. */
  createExporter?: ExporterFactory;
}

interface Pipeline {
  /** provider + endpoint: what forces a rebuild. */
  key: string;
  endpoint: string;
  provider: BasicTracerProvider;
  tracer: Tracer;
}

export class ProxyTracing {
  private readonly rootSampler: PercentageSampler;
  private readonly proxy: ProxyIdentity;
  private readonly logger: Logger;
  private readonly createExporter: ExporterFactory;
  private pipeline: Pipeline | undefined;
  private customTags: Attributes = {};
  private readonly retiring = new Set<Promise<void>>();

  constructor(o: ProxyTracingOptions) {
    this.rootSampler = new PercentageSampler(o.random);
    this.proxy = { serviceName: o.serviceName, ...(o.serviceNamespace ? { serviceNamespace: o.serviceNamespace } : {}) };
    this.logger = o.logger;
    this.createExporter = o.createExporter ?? otlpHttpExporter;
  }

  /** (Re)configure from WaypointConfig.telemetry?.tracing; rebuilds the exporter only when endpoint/provider changed. */
  configure(settings: TracingSettings | undefined): void {
    if (!settings) {
      if (this.pipeline) this.logger.info({ endpoint: this.pipeline.endpoint }, 'tracing off');
      this.retire(this.pipeline);
      this.pipeline = undefined;
      return;
    }
    this.rootSampler.setPercentage(settings.samplingPercentage);
    this.customTags = { ...(settings.customTags ?? {}) };
    const key = `${settings.provider}\n${settings.endpoint}`;
    if (this.pipeline?.key === key) return;
    const previous = this.pipeline;
    this.pipeline = this.build(key, settings.endpoint);
    this.logger.info({ provider: settings.provider, endpoint: settings.endpoint, samplingPercentage: this.rootSampler.getPercentage() }, 'tracing on: spans exported over OTLP/HTTP');
    this.retire(previous);
  }

  /** Whether spans are produced (for dumps and the admin page). */
  get enabled(): boolean {
    return this.pipeline !== undefined;
  }

  /** undefined when tracing is off: the proxy then passes trace headers through untouched. */
  startRequest(
    headers: HeaderMap,
    a: { method: string; authority: string; path: string; protocol: string; peerIdentity: string; clientAddress: string; role: 'waypoint' | 'gateway' },
  ): RequestTrace | undefined {
    const pipeline = this.pipeline;
    if (!pipeline) return undefined;
    const server = pipeline.tracer.startSpan(serverSpanName(a), { kind: SpanKind.SERVER }, extractTraceContext(headers));
    // Attributes only for spans that are recorded: most requests are not sampled, and the
    // samplers here do not look at attributes.
    if (server.isRecording()) {
      const userAgent = headers['user-agent'];
      const requestId = headers['x-request-id'];
      server.setAttributes(
        serverSpanAttributes(
          { ...a, ...(typeof userAgent === 'string' ? { userAgent } : {}), ...(typeof requestId === 'string' ? { requestId } : {}) },
          this.proxy,
          this.customTags,
        ),
      );
    }
    return new ProxyRequestTrace(pipeline.tracer, server, a, this.proxy, this.customTags);
  }

  /** Flushes what is queued and stops exporting; `configure` may start again afterwards. */
  async close(): Promise<void> {
    this.retire(this.pipeline);
    this.pipeline = undefined;
    await Promise.all([...this.retiring]);
  }

  private build(key: string, endpoint: string): Pipeline {
    const exporter = new ReportingExporter(this.createExporter(endpoint), this.logger, endpoint);
    const resource = resourceFromAttributes({
      'service.name': this.proxy.serviceName,
      ...(this.proxy.serviceNamespace ? { 'service.namespace': this.proxy.serviceNamespace } : {}),
    });
    const provider = new BasicTracerProvider({
      resource,
      sampler: proxySampler(this.rootSampler),
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: EXPORT_DELAY_MS, maxQueueSize: MAX_QUEUED_SPANS, maxExportBatchSize: MAX_BATCH_SPANS })],
    });
    return { key, endpoint, provider, tracer: provider.getTracer('amesh') };
  }

  private retire(pipeline: Pipeline | undefined): void {
    if (!pipeline) return;
    const done = pipeline.provider
      .forceFlush()
      .then(() => pipeline.provider.shutdown())
      .catch((err: unknown) => {
        this.logger.warn({ endpoint: pipeline.endpoint, err: err instanceof Error ? err.message : String(err) }, 'tracing: flushing the previous exporter failed; its queued spans are dropped');
      })
      .finally(() => this.retiring.delete(done));
    this.retiring.add(done);
  }
}

class ProxyRequestTrace implements RequestTrace {
  private ended = false;
  readonly traceId: string;

  constructor(
    private readonly tracer: Tracer,
    private readonly server: Span,
    private readonly request: { method: string; authority: string; path: string },
    private readonly proxy: ProxyIdentity,
    private readonly customTags: Attributes,
  ) {
    this.traceId = server.spanContext().traceId;
  }

  startTry(a: { cluster: string; endpoint: string }): { headers: Record<string, string>; end(status?: number, error?: string): void } {
    const span = this.tracer.startSpan(clientSpanName(a.cluster), { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, this.server));
    if (span.isRecording()) span.setAttributes(clientSpanAttributes({ ...a, ...this.request }, this.proxy, this.customTags));
    const headers = traceHeadersFor(span.spanContext());
    let ended = false;
    return {
      headers,
      end(status?: number, error?: string): void {
        if (ended) return;
        ended = true;
        if (span.isRecording()) {
          span.setAttributes(endAttributes({ ...(status !== undefined ? { status } : {}), ...(error ? { error } : {}) }));
          const s = spanStatus(status, error);
          if (s) span.setStatus(s);
        }
        span.end();
      },
    };
  }

  end(a: { status?: number; responseFlags: string; route?: string; error?: string }): void {
    if (this.ended) return;
    this.ended = true;
    if (this.server.isRecording()) {
      this.server.setAttributes(endAttributes(a));
      const s = spanStatus(a.status, a.error);
      if (s) this.server.setStatus(s);
    }
    this.server.end();
  }
}
