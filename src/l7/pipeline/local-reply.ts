/**
 * Answers the waypoint generates itself (Envoy's local replies): a text/plain body and, for
 * errors, the `x-amesh-response-flags` header naming why. A gRPC client gets a trailers-only
 * response instead (`:status 200`, `grpc-status` mapped from the HTTP status unless given,
 * `grpc-message` the body), as gRPC clients only read statuses from there.
 * Nothing is written when the response already started or the client is gone.
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import type { HeaderMutation } from '../config.js';
import type { Http1DownstreamResponse } from '../http1-server/response.js';
import { applyHeaderMutations, type MutableHeaders } from '../filters/header-mutation.js';
import { grpcStatusFor, RESPONSE_FLAGS_HEADER, ResponseFlag } from '../response-flags.js';

export interface LocalReply {
  status: number;
  body: string;
  /** Envoy response flag; sent as a header except for direct responses (DR). */
  flag?: string;
  /** Response header mutations of the route (direct responses, redirects). */
  mutations?: readonly HeaderMutation[];
  /** More headers (location, www-authenticate). */
  headers?: MutableHeaders;
  /** gRPC clients only: this status instead of the one mapped from `status`. */
  grpcStatus?: number;
}

function textHeaders(r: LocalReply): MutableHeaders {
  const headers: MutableHeaders = { ...r.headers, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(r.body) };
  if (r.flag !== undefined && r.flag !== ResponseFlag.DirectResponse) headers[RESPONSE_FLAGS_HEADER] = r.flag;
  applyHeaderMutations(headers, r.mutations ?? []);
  return headers;
}

export function replyHttp1(res: Http1DownstreamResponse, r: LocalReply): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(r.status, textHeaders(r) as http.OutgoingHttpHeaders);
  res.end(r.body);
}

/** Returns the status to log: 200 for a gRPC trailers-only answer. */
export function replyHttp2(stream: http2.ServerHttp2Stream, grpc: boolean, r: LocalReply): number {
  if (!stream.destroyed && !stream.headersSent) {
    if (grpc) {
      const headers: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(r.grpcStatus ?? grpcStatusFor(r.status)), 'grpc-message': encodeURIComponent(r.body) };
      if (r.flag !== undefined) headers[RESPONSE_FLAGS_HEADER] = r.flag;
      stream.respond(headers, { endStream: true });
    } else {
      stream.respond({ ...(textHeaders(r) as http2.OutgoingHttpHeaders), ':status': r.status });
      stream.end(r.body);
    }
  }
  return grpc ? 200 : r.status;
}
