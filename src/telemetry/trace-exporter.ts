/**
 * The span exporter a proxy uses: OTLP/HTTP (JSON) to the configured collector, wrapped so that
 * a collector that is down or refuses spans is *reported* and never felt by requests.
 *
 * Invariants:
 *   - Export runs off the request path (BatchSpanProcessor's timer); a failure drops that batch
 *     (OpenTelemetry's exporter already retried what is retryable) and is logged here.
 *   - Logging is rate-limited: the first failure at once, then at most one line per interval
 *     carrying how many batches and spans failed since the last line, so an unreachable collector
 *     at thousands of requests per second costs one log line a minute.
 *   - A recovery after failures is logged once at info.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from './logger.js';

export const EXPORT_FAILURE_LOG_INTERVAL_MS = 60_000;
/** Per batch POST; OTLP's default is 10 s, a proxy's collector should answer well within it. */
export const EXPORT_TIMEOUT_MS = 10_000;

export type ExporterFactory = (endpoint: string) => SpanExporter;

export const otlpHttpExporter: ExporterFactory = (endpoint) => new OTLPTraceExporter({ url: endpoint, timeoutMillis: EXPORT_TIMEOUT_MS });

export class ReportingExporter implements SpanExporter {
  private lastLogAt = Number.NEGATIVE_INFINITY;
  private failedBatches = 0;
  private failedSpans = 0;
  private failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly logger: Logger,
    private readonly endpoint: string,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = EXPORT_FAILURE_LOG_INTERVAL_MS,
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    try {
      this.inner.export(spans, (result) => {
        if (result.code === ExportResultCode.SUCCESS) this.succeeded();
        else this.failed(spans.length, result.error);
        resultCallback(result);
      });
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.failed(spans.length, error);
      resultCallback({ code: ExportResultCode.FAILED, error });
    }
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }

  private succeeded(): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger.info({ endpoint: this.endpoint, failedBatches: this.failedBatches, failedSpans: this.failedSpans }, 'trace export recovered');
    this.failedBatches = 0;
    this.failedSpans = 0;
  }

  private failed(spans: number, error: Error | undefined): void {
    this.failing = true;
    this.failedBatches++;
    this.failedSpans += spans;
    const now = this.now();
    if (now - this.lastLogAt < this.intervalMs) return;
    this.lastLogAt = now;
    this.logger.warn(
      { endpoint: this.endpoint, failedBatches: this.failedBatches, droppedSpans: this.failedSpans, err: error?.message ?? 'unknown' },
      'trace export failed: spans dropped (requests are not affected); is the OTLP collector reachable at this endpoint?',
    );
    this.failedBatches = 0;
    this.failedSpans = 0;
  }
}
