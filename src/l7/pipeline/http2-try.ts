/**
 * One HTTP/2 (h2c, gRPC) try: a stream on the endpoint's shared session (upstream.ts), settled by
 * the response head or by the failure before it (connect failure, stream reset — REFUSED_STREAM
 * told apart, since `refused-stream` retries only that). Trailers are collected from the start
 * so the caller can relay them; a stream that closes after the head goes to `onLateClose`.
 * A trailers-only response (gRPC errors) carries `grpc-status` in its head: that is what the gRPC
 * retry conditions look at.
 */
import http2 from 'node:http2';
import type { Endpoint } from '../config.js';
import { grpcStatusOf } from '../resilience/retry.js';
import type { PoolSettings, UpstreamPools } from '../upstream.js';
import type { TryHandle, TryResult } from './try-loop.js';

export interface Http2TryOptions {
  pools: UpstreamPools;
  endpoint: Endpoint;
  /** The cluster's connection-pool settings (connect/idle timeouts, requests per connection). */
  settings?: PoolSettings;
  headers: http2.OutgoingHttpHeaders;
  /** Sends the request body into the upstream stream; absent = the request ends with its headers. */
  feed?: (upstream: http2.ClientHttp2Stream) => void;
}

export class Http2Try implements TryHandle {
  readonly result: Promise<TryResult>;
  stream: http2.ClientHttp2Stream | undefined;
  head: http2.IncomingHttpHeaders | undefined;
  trailers: http2.OutgoingHttpHeaders | undefined;
  private lateHandler: ((rstCode: number) => void) | undefined;
  private lateCode: number | undefined;
  private settle!: (r: TryResult) => void;
  private settled = false;
  private aborted = false;

  constructor(private readonly o: Http2TryOptions) {
    this.result = new Promise((resolve) => {
      this.settle = (r) => {
        if (this.settled) return;
        this.settled = true;
        resolve(r);
      };
    });
    void this.run();
  }

  private async run(): Promise<void> {
    let session: http2.ClientHttp2Session;
    try {
      session = await this.o.pools.h2SessionFor(this.o.endpoint, this.o.settings);
    } catch (err) {
      return this.settle({ kind: 'failure', failure: 'connect', error: err });
    }
    if (this.aborted) return;
    let up: http2.ClientHttp2Stream;
    try {
      up = session.request(this.o.headers, { endStream: !this.o.feed });
    } catch (err) {
      return this.settle({ kind: 'failure', failure: 'reset', error: err });
    }
    this.stream = up;
    up.on('error', () => undefined);
    up.on('response', (h) => {
      this.head = h;
      const grpcStatus = grpcStatusOf(h);
      this.settle({ kind: 'response', status: Number(h[':status']), ...(grpcStatus !== undefined ? { grpcStatus } : {}) });
    });
    up.on('trailers', (t) => {
      const out: http2.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(t)) if (!k.startsWith(':') && v !== undefined && v !== null) out[k] = v as string | string[];
      this.trailers = out;
    });
    up.once('close', () => {
      const code = up.rstCode ?? http2.constants.NGHTTP2_NO_ERROR;
      if (!this.settled) return this.settle({ kind: 'failure', failure: code === http2.constants.NGHTTP2_REFUSED_STREAM ? 'refused-stream' : 'reset' });
      if (this.lateHandler) this.lateHandler(code);
      else this.lateCode = code;
    });
    if (this.o.feed) this.o.feed(up);
  }

  /** The upstream stream closed after the head (the caller decides what it means downstream); a close that already happened is passed at once. */
  onLateClose(handler: (rstCode: number) => void): void {
    this.lateHandler = handler;
    if (this.lateCode !== undefined) handler(this.lateCode);
  }

  abort(): void {
    this.aborted = true;
    if (this.stream && !this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.settle({ kind: 'failure', failure: 'reset' });
  }

  discard(): void {
    this.abort();
  }
}
