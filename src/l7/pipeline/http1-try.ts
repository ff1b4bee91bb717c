/**
 * One HTTP/1.1 try on Node's http.request: requests with a body, or whose head only Node may
 * judge (bodiless ones take the lean client, http1-lean-try.ts). A request on the endpoint's
 * keep-alive Agent (upstream.ts), settled by the
 * response head or by the failure before it. After the head the caller owns the response; an
 * error after that goes to `onLateError` (the caller resets the downstream).
 *
 * Keep-alive race: a pooled connection the server closed while we reused it fails the request
 * before any byte reached the application; a bodiless request is then sent once more on a fresh
 * connection within the same try, as Node's documentation advises for `reusedSocket`. This is
 * not a retry (no policy needed, not counted).
 */
import http from 'node:http';
import type { Endpoint } from '../config.js';
import type { MutableHeaders } from '../filters/header-mutation.js';
import { grpcStatusOf } from '../resilience/retry.js';
import { isConnectFailure } from '../upstream.js';
import type { TryHandle, TryResult } from './try-loop.js';

/** Responses a retry drops are read to the end (keeping the connection) up to this size; longer ones cost the connection. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

export interface Http1TryOptions {
  agent: http.Agent;
  endpoint: Endpoint;
  method: string;
  path: string;
  headers: MutableHeaders;
  /** Sends the request body into the upstream request; absent = bodiless (ended at once). */
  feed?: (upstream: http.ClientRequest) => void;
}

/** Header object → Node's raw `[name, value, …]` form (array values stay arrays: one line each). */
function flatHeaders(headers: MutableHeaders): string[] {
  const out: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) out.push(name, value as string);
  }
  return out;
}

export class Http1Try implements TryHandle {
  readonly result: Promise<TryResult>;
  request: http.ClientRequest;
  response: http.IncomingMessage | undefined;
  private lateHandler: ((err: Error) => void) | undefined;
  private lateError: Error | undefined;
  private settle!: (r: TryResult) => void;
  private settled = false;
  private aborted = false;

  constructor(private readonly o: Http1TryOptions) {
    this.result = new Promise((resolve) => {
      this.settle = (r) => {
        if (this.settled) return;
        this.settled = true;
        resolve(r);
      };
    });
    this.request = this.send(false);
    if (o.feed) o.feed(this.request);
    else this.request.end();
  }

  private send(resent: boolean): http.ClientRequest {
    const o = this.o;
    const options: http.RequestOptions & { servername: string } = {
      agent: o.agent,
      host: o.endpoint.address,
      port: o.endpoint.port,
      method: o.method,
      path: o.path,
      // A flat [name, value, …] list goes into the request head as is: Node's per-header
      // setHeader bookkeeping of an object is skipped (the values are still validated).
      headers: flatHeaders(o.headers),
      // The Agent would otherwise derive a TLS server name from the Host header on every
      // request (net.isIP regexps); the pool's connections are never TLS sockets of Node's.
      servername: '',
    };
    const upstream = http.request(options);
    let connected = false;
    upstream.once('socket', () => {
      connected = true;
    });
    upstream.on('response', (res) => {
      if (upstream !== this.request) return void res.destroy();
      this.response = res;
      if (this.aborted) return void res.destroy();
      const grpcStatus = grpcStatusOf(res.headers);
      this.settle(grpcStatus === undefined ? { kind: 'response', status: res.statusCode ?? 502 } : { kind: 'response', status: res.statusCode ?? 502, grpcStatus });
    });
    upstream.on('error', (err) => {
      if (upstream !== this.request) return;
      if (this.settled) {
        if (this.lateHandler) this.lateHandler(err);
        else this.lateError ??= err;
        return;
      }
      if (isConnectFailure(err) || !connected) return this.settle({ kind: 'failure', failure: 'connect', error: err });
      if (upstream.reusedSocket && !o.feed && !resent && !this.aborted) {
        this.request = this.send(true);
        this.request.end();
        return;
      }
      this.settle({ kind: 'failure', failure: 'reset', error: err });
    });
    return upstream;
  }

  /** Errors after the response head (the caller resets the downstream); one that already happened is passed at once. */
  onLateError(handler: (err: Error) => void): void {
    this.lateHandler = handler;
    if (this.lateError) handler(this.lateError);
  }

  abort(): void {
    this.aborted = true;
    this.request.destroy();
    this.settle({ kind: 'failure', failure: 'reset' });
  }

  discard(): void {
    const res = this.response;
    const length = Number(res?.headers['content-length']);
    if (res && this.request.writableFinished && res.headers['transfer-encoding'] === undefined && Number.isFinite(length) && length <= DRAIN_LIMIT_BYTES) {
      res.resume(); // read to the end: the connection goes back to the pool
      return;
    }
    this.aborted = true;
    this.request.destroy();
  }
}
