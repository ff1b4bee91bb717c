/**
 * What the waypoint does with one HBONE CONNECT stream (the HboneServer's `onConnect`):
 * - `:authority` `<VIP>:<port>` selects the WaypointService port; unknown → 503 (logged). An
 *   authority naming an endpoint of one of our clusters (workload-addressed traffic) is passed
 *   through at L4 to exactly that endpoint.
 * - TCP ports: one endpoint of the port's `defaultCluster` is dialled before answering, so a
 *   failure is the CONNECT's 503; then bytes are relayed by the HBONE server.
 * - HTTP / HTTP2 / GRPC / AUTO ports: the stream is answered at once and its first bytes are
 *   sniffed (sniff.ts): the h2 preface → the HTTP/2 server (through an in-memory pair), an
 *   HTTP/1.x request line → the HTTP/1.1 server (parsing the CONNECT stream itself,
 *   stream-socket.ts), anything else → L4 passthrough to the default cluster. On AUTO ports a client
 *   that sends nothing for `sniffTimeoutMs` (a server-first protocol) is passed through too.
 * The client is the HBONE peer's identity; its address is the `forwarded` header's `for=` (the
 * original client, as the node agent reports it) or else the peer's address.
 *
 * L4 passthrough (TCP ports, opaque or server-first traffic on sniffed ports, workload-addressed
 * traffic) is still subject to the waypoint's AuthorizationPolicies, evaluated without HTTP
 * attributes (Istio: HTTP-only rule fields never match TCP): denied → the CONNECT is refused with
 * 401 (as ztunnel does) or, once answered, the stream is reset; logged with flag `RBAC` and the
 * deciding policy. The cluster's circuit breaker counts the stream as a connection
 * (`maxConnections`; beyond → refused/reset, flag `UO`).
 *
 * Telemetry: the peer's source_* labels are built once per CONNECT from its identity and the
 * CONNECT `baggage` header (DownstreamConnection.peer); L4 streams report istio_tcp_* (opened when
 * established, closed with the bytes each way; a refused one opened and closed with its flag) and
 * one access-log line, through the same ProxyTelemetry as the HTTP requests.
 */
import type http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { describeError } from '../errors/amesh-error.js';
import { parseForwardedFor } from '../hbone/headers.js';
import type { HboneConnectRequest, HboneConnectResult } from '../hbone/server.js';
import { relay, resetStream } from '../net/relay.js';
import type { Logger } from '../telemetry/logger.js';
import type { AccessRecord } from './access-log.js';
import { endpointKey } from './balancer.js';
import type { Endpoint } from './config.js';
import { duplexPair } from './duplex-pair.js';
import type { AuthzOutcome } from './authz/engine.js';
import type { HttpProxy } from './http-proxy.js';
import { peerFromBaggage } from './l7-metrics.js';
import type { DownstreamConnection } from './pipeline/downstream-connection.js';
import { ProxyTelemetry } from './pipeline/proxy-telemetry.js';
import { requestAttributes } from './pipeline/request-attributes.js';
import { countStreamBytes } from './pipeline/stream-bytes.js';
import { admitTcp } from './pipeline/tcp-admission.js';
import { ResponseFlag } from './response-flags.js';
import { MAX_SNIFF_BYTES, sniffProtocol, type SniffResult } from './sniff.js';
import { asHttpServerSocket } from './stream-socket.js';
import type { UpstreamDialer } from './upstream.js';
import { portFor, type WaypointState } from './waypoint-state.js';

export const DEFAULT_SNIFF_TIMEOUT_MS = 200;

export interface WaypointInboundOptions {
  state: () => WaypointState | undefined;
  proxy: HttpProxy;
  dialer: UpstreamDialer;
  logger: Logger;
  accessLog: Logger;
  /** AUTO ports: silence after which a connection is opaque TCP. Default 200 ms. */
  sniffTimeoutMs?: number;
  /** Metrics and access-log gating (the HttpProxy's); default: access log only. */
  telemetry?: ProxyTelemetry;
}

export interface InboundStats {
  connections: number;
  http1: number;
  http2: number;
  tcp: number;
  refused: number;
  /** L4 streams an AuthorizationPolicy denied. */
  denied: number;
}

type Denied = Extract<AuthzOutcome, { allowed: false }>;

export class WaypointInbound {
  private readonly counters: InboundStats = { connections: 0, http1: 0, http2: 0, tcp: 0, refused: 0, denied: 0 };
  private readonly telemetry: ProxyTelemetry;

  constructor(private readonly opts: WaypointInboundOptions) {
    this.telemetry = opts.telemetry ?? new ProxyTelemetry({ role: 'waypoint', accessLog: opts.accessLog, logger: opts.logger });
  }

  stats(): InboundStats {
    return { ...this.counters };
  }

  async onConnect(req: HboneConnectRequest): Promise<HboneConnectResult> {
    this.counters.connections++;
    const state = this.opts.state();
    const { host, port } = req.authority;
    if (!state) return this.refuse(req, 'no waypoint configuration yet');
    const forwarded = parseForwardedFor(req.forwarded);
    const conn: DownstreamConnection = { host, port, peerIdentity: req.peerIdentity, clientAddress: forwarded?.address ?? req.peerAddress, peer: peerFromBaggage(req.peerIdentity, req.baggage) };
    const servicePort = portFor(state, host, port);
    if (!servicePort) {
      const endpoint = state.endpoints.get(endpointKey({ address: host, port }));
      if (endpoint) return this.passthroughNow(state, conn, '', endpoint, 'workload');
      return this.refuse(req, `${host}:${port} is not a service port this waypoint serves`);
    }
    const protocol = servicePort.port.protocol;
    const defaultCluster = servicePort.port.defaultCluster;
    if (protocol === 'TCP') {
      const endpoint = state.clusters.get(defaultCluster)?.balancer.pick();
      if (!endpoint) return this.refuse(req, `no healthy upstream in ${defaultCluster}`);
      return this.passthroughNow(state, conn, servicePort.service.key, endpoint.endpoint, defaultCluster);
    }
    const silenceMs = protocol === 'AUTO' ? (this.opts.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS) : undefined;
    const peerPort = req.peerPort;
    return {
      status: 200,
      takeStream: (stream) => {
        void this.dispatch(stream, conn, peerPort, silenceMs).catch((err: unknown) => {
          this.opts.logger.error({ err: describeError(err) }, 'waypoint: unexpected error dispatching a connection');
          resetStream(stream);
        });
      },
    };
  }

  private refuse(req: HboneConnectRequest, reason: string): HboneConnectResult {
    this.counters.refused++;
    this.opts.logger.info({ authority: `${req.authority.host}:${req.authority.port}`, peer: req.peerIdentity, reason }, 'waypoint: CONNECT refused');
    return { status: 503, reason };
  }

  private async passthroughNow(state: WaypointState, conn: DownstreamConnection, service: string, endpoint: Endpoint, cluster: string): Promise<HboneConnectResult> {
    const started = performance.now();
    const refused = (flags: string, error?: string, authz?: string): void => this.logTcp(state, conn, endpoint, cluster, started, { flags, opened: false, ...(error ? { error } : {}), ...(authz ? { authz } : {}) });
    const denied = await this.authorizeTcp(state, conn, service);
    if (denied) {
      refused(ResponseFlag.RbacAccessDenied, denied.reason, denied.policy);
      return { status: 401, reason: denied.body };
    }
    const release = this.admitTcp(state, cluster);
    if (!release) {
      refused(ResponseFlag.UpstreamOverflow);
      return { status: 503, reason: `upstream overflow in ${cluster}` };
    }
    try {
      const upstream = await this.opts.dialer.connect(endpoint);
      this.counters.tcp++;
      const bytes = countStreamBytes(upstream);
      this.telemetry.streamOpened(this.streamFacts(state, conn, endpoint, cluster));
      upstream.once('close', () => {
        release();
        this.logTcp(state, conn, endpoint, cluster, started, { flags: '-', opened: true, received: bytes.received(), sent: bytes.sent() });
      });
      return { status: 200, upstream };
    } catch (err) {
      release();
      refused(ResponseFlag.UpstreamConnectionFailure, describeError(err).split('\n')[0]);
      return { status: 503, reason: `upstream connect to ${endpointKey(endpoint)} failed: ${describeError(err).split('\n')[0]}` };
    }
  }

  /** The AuthorizationPolicies for an L4 stream (no HTTP attributes); the denial, if denied. */
  private async authorizeTcp(state: WaypointState, conn: DownstreamConnection, service: string): Promise<Denied | undefined> {
    if (state.authz.empty) return undefined;
    const outcome = await state.authz.check(requestAttributes(conn, service));
    if (outcome.allowed) return undefined;
    this.counters.denied++;
    return outcome;
  }

  /** A connection slot of the cluster's circuit breaker: its release, or undefined on overflow. */
  private admitTcp(state: WaypointState, cluster: string): (() => void) | undefined {
    return admitTcp(state.clusters.get(cluster)?.breaker);
  }

  private streamFacts(state: WaypointState | undefined, conn: DownstreamConnection, endpoint: Endpoint | undefined, cluster: string): Parameters<ProxyTelemetry['streamOpened']>[0] {
    return { config: state?.config, peer: conn.peer, serviceKey: state ? (state.clusters.get(cluster)?.cluster.service ?? portFor(state, conn.host, conn.port)?.service.key) : undefined, endpoint, port: conn.port };
  }

  /** One L4 stream ended (`opened`: it was counted as opened when established) or was refused. */
  private logTcp(
    state: WaypointState | undefined,
    conn: DownstreamConnection,
    endpoint: Endpoint | undefined,
    cluster: string,
    started: number,
    o: { flags: string; opened: boolean; error?: string | undefined; authz?: string; received?: number; sent?: number },
  ): void {
    const record: AccessRecord = {
      protocol: 'TCP',
      cluster,
      upstreamHost: endpoint ? endpointKey(endpoint) : '-',
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      responseFlags: o.flags,
      sourceIdentity: conn.peerIdentity,
      clientAddress: conn.clientAddress,
      destination: `${conn.host}:${conn.port}`,
      bytesReceived: o.received ?? 0,
      bytesSent: o.sent ?? 0,
      ...(o.error ? { error: o.error } : {}),
      ...(o.authz ? { authz: o.authz } : {}),
    };
    this.telemetry.streamClosed(record, this.streamFacts(state, conn, endpoint, cluster), o.opened);
  }

  private async dispatch(stream: http2.ServerHttp2Stream, conn: DownstreamConnection, peerPort: number, silenceMs: number | undefined): Promise<void> {
    const { protocol, head, ended } = await sniff(stream, silenceMs);
    if (stream.destroyed) return;
    if (protocol === 'h2c') {
      // Still through the in-memory pair: Node's HTTP/2 session would take the CONNECT stream
      // through a JSStreamSocket, whose way of ending it is not yet checked against the relay's
      // clean-end vs cut rules (net/relay.ts); the pair's is.
      this.counters.http2++;
      const [outer, inner] = duplexPair({ b: { remoteAddress: conn.clientAddress, remotePort: peerPort } });
      this.opts.proxy.serveHttp2(inner, conn);
      void relay(stream, outer);
      return;
    }
    if (protocol === 'http1') {
      this.counters.http1++;
      return this.opts.proxy.serveHttp1(asHttpServerSocket(stream), conn, true);
    }
    // Opaque TCP (or a server-first protocol): L4 to one endpoint of the default cluster.
    const state = this.opts.state();
    const servicePort = state && portFor(state, conn.host, conn.port);
    const cluster = servicePort?.port.defaultCluster ?? '';
    const endpoint = state?.clusters.get(cluster)?.balancer.pick();
    const started = performance.now();
    if (!state || !endpoint) {
      this.logTcp(state, conn, undefined, cluster, started, { flags: ResponseFlag.NoHealthyUpstream, opened: false });
      resetStream(stream);
      return;
    }
    const refuse = (flags: string, error?: string, authz?: string): void => {
      this.logTcp(state, conn, endpoint.endpoint, cluster, started, { flags, opened: false, ...(error ? { error } : {}), ...(authz ? { authz } : {}) });
      resetStream(stream);
    };
    const denied = await this.authorizeTcp(state, conn, servicePort?.service.key ?? '');
    if (denied) return refuse(ResponseFlag.RbacAccessDenied, denied.reason, denied.policy);
    const release = this.admitTcp(state, cluster);
    if (!release) return refuse(ResponseFlag.UpstreamOverflow);
    let upstream: Duplex;
    try {
      upstream = await this.opts.dialer.connect(endpoint.endpoint);
    } catch (err) {
      release();
      return refuse(ResponseFlag.UpstreamConnectionFailure, describeError(err).split('\n')[0]);
    }
    this.counters.tcp++;
    this.telemetry.streamOpened(this.streamFacts(state, conn, endpoint.endpoint, cluster));
    // Bytes read before the peer's EOF could not be put back: send them first.
    const early = ended ? head.length : 0;
    if (early > 0) upstream.write(head);
    const result = await relay(stream, upstream);
    release();
    this.logTcp(state, conn, endpoint.endpoint, cluster, started, { flags: '-', opened: true, error: result.error?.message, received: result.aToB + early, sent: result.bToA });
  }
}

/**
 * Reads until the protocol is known, then puts the bytes back (`unshift`) and leaves the stream
 * paused for its next owner. `silenceMs` undefined: wait for bytes as long as it takes. When the
 * peer ended first, the bytes cannot go back (`ended`); they come back as `head`.
 */
export function sniff(stream: Duplex, silenceMs: number | undefined): Promise<{ protocol: Exclude<SniffResult, 'need-more'>; head: Buffer; ended: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let timer: NodeJS.Timeout | undefined;
    const decide = (protocol: Exclude<SniffResult, 'need-more'>, ended: boolean): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.pause();
      const head = Buffer.concat(chunks, length);
      if (!ended && length > 0) stream.unshift(head);
      resolve({ protocol, head, ended });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      const data = chunks.length === 1 ? chunk : Buffer.concat(chunks, length);
      const result = sniffProtocol(data.subarray(0, MAX_SNIFF_BYTES));
      if (result !== 'need-more') decide(result, false);
      else if (length >= MAX_SNIFF_BYTES) decide('tcp', false);
    };
    const onEnd = (): void => decide('tcp', true);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    if (silenceMs !== undefined) {
      timer = setTimeout(() => {
        if (length === 0) decide('tcp', false);
      }, silenceMs);
    }
  });
}
