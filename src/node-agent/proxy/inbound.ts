/**
 * Inbound: HBONE connections to local pods on :15008 (and the same admission for tunnels
 * from this very node, served in-process). Admission = route check + L4 authorization, then
 * the upstream connect; HBONE answers 200 only after both succeeded (DESIGN §4). Admitted
 * connections are tracked with their attributes and re-checked on every state change.
 *
 * Telemetry (reporter `destination`): admission fills the connection's facts (source workload by
 * the client's address, the peer's identity, the destination workload) and reports every refusal
 * itself — counted opened + closed with its response_flags, one access-log line, and a policy
 * denial recorded with the policy and rule; the caller meters what it relays.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { describeError } from '../../errors/amesh-error.js';
import { parseForwardedFor } from '../../hbone/headers.js';
import { HboneServer, type HboneConnectRequest, type HboneConnectResult } from '../../hbone/server.js';
import { parseSpiffeUri } from '../../identity/spiffe.js';
import { decisionLogFields, evaluateL4, type L4Decision } from '../../policy/l4-authorization.js';
import { RESPONSE_FLAGS, type ResponseFlag } from '../telemetry/l4-labels.js';
import type { L4Connection } from '../telemetry/l4-telemetry.js';
import { recheckInbound, type InboundAttributes } from './connection-recheck.js';
import { decideInbound, type Destination } from './route.js';
import { beginConnection, overloadOf, type ProxyContext } from './proxy-context.js';

export interface InboundAdmission {
  target: Destination;
  /** The address the tunnel was dialled at (the pod IP); must equal the target's. */
  dialledIp: string;
  sourceIdentity: string | null;
  sourceIp: string;
  /** The connection's telemetry (reporter `destination`); admission fills its facts and reports a refusal. */
  conn: L4Connection;
}

export type AdmissionResult =
  | { status: 200; upstream: net.Socket; workloadUid: string; identity: string; attributes: InboundAttributes }
  | { status: 400 | 401 | 503; reason: string; flags: ResponseFlag };

function logDenial(ctx: ProxyContext, a: InboundAdmission, workloadUid: string, policy: L4Decision): void {
  ctx.logger.info(
    { src: a.sourceIp, identity: a.sourceIdentity, dst: `${a.target.ip}:${a.target.port}`, workload: workloadUid, ...decisionLogFields(policy), reason: policy.reason },
    'policy: connection denied',
  );
}

/** Reports the refusal on the connection's telemetry and answers it. */
function refuse(a: InboundAdmission, status: 400 | 401 | 503, flags: ResponseFlag, reason: string, decision?: L4Decision): AdmissionResult {
  a.conn.refused({ flags, error: `refused (${status})`, reason, msg: 'connection refused', ...(decision ? { denial: decisionLogFields(decision) } : {}) });
  return { status, reason, flags };
}

/**
 * Route + policy + upstream connect for one inbound connection. Logs every denial with the
 * policy and rule. The result carries the attributes the connection was admitted with, so the
 * tracker can re-check it when the state changes.
 */
export async function admitInbound(ctx: ProxyContext, a: InboundAdmission): Promise<AdmissionResult> {
  const state = ctx.state();
  a.conn.setSource(state.workloadByIp(a.sourceIp), a.sourceIdentity);
  a.conn.destinationPort = a.target.port;
  const decision = decideInbound(state, ctx.node, a.target, a.dialledIp);
  if (!decision.ok) return refuse(a, decision.status, RESPONSE_FLAGS.noRoute, decision.reason);
  a.conn.setDestination(decision.workload, state.identityOf(decision.workload));
  const attributes: InboundAttributes = {
    connection: { sourceIdentity: a.sourceIdentity, sourceIp: a.sourceIp, destinationIp: a.target.ip, destinationPort: a.target.port },
    workloadUid: decision.workload.uid,
    telemetry: a.conn,
  };
  const policy = evaluateL4(state.policiesFor(decision.workload), attributes.connection);
  if (policy.dryRunWouldDeny) ctx.logger.info({ dryRun: policy.dryRunWouldDeny, src: a.sourceIp }, 'policy: dry-run policy would deny');
  if (!policy.allowed) {
    logDenial(ctx, a, decision.workload.uid, policy);
    return refuse(a, 401, RESPONSE_FLAGS.denied, policy.reason, policy);
  }
  // The destination pod's connection cap, taken before the upstream connect and given back when
  // the upstream closes (or admission fails below).
  const overload = overloadOf(ctx);
  const uid = decision.workload.uid;
  if (!overload.inbound.tryAcquire(uid)) {
    const limit = overload.inbound.limit;
    overload.log.reject({ reason: 'workload_connections', direction: 'inbound', workload: uid, limit, setting: 'AMESH_MAX_CONNECTIONS_PER_WORKLOAD' });
    return refuse(a, 503, RESPONSE_FLAGS.overflow, `overload: ${uid} has ${limit} inbound connections open (AMESH_MAX_CONNECTIONS_PER_WORKLOAD)`);
  }
  let upstream: net.Socket;
  try {
    upstream = await connectUpstream(ctx, a);
  } catch (err) {
    overload.inbound.release(uid);
    return refuse(a, 503, RESPONSE_FLAGS.connectFailure, describeError(err).split('\n')[0] ?? 'upstream connect failed');
  }
  upstream.once('close', () => overload.inbound.release(uid));
  // The state may have changed while we connected; a re-check only sees connections tracked
  // before the swap, so re-decide against the newest state, then track synchronously.
  const now = ctx.state();
  if (now !== state) {
    const verdict = recheckInbound(now, attributes);
    if (!verdict.keep) {
      upstream.resetAndDestroy();
      if (verdict.decision) logDenial(ctx, a, decision.workload.uid, verdict.decision);
      return verdict.decision ? refuse(a, 401, RESPONSE_FLAGS.denied, verdict.reason, verdict.decision) : refuse(a, 503, RESPONSE_FLAGS.noRoute, verdict.reason);
    }
  }
  // Tracked here, for every caller (HBONE, captured plaintext, same-node in-process): closing
  // the upstream ends the relay, which resets the client side (RST or RST_STREAM) as well.
  ctx.connections.add(upstream, attributes);
  return { status: 200, upstream, workloadUid: decision.workload.uid, identity: now.identityOf(decision.workload), attributes };
}

/** Bytes of an inbound connection from its upstream socket: written to the pod = request, read from it = response. */
export function upstreamBytes(upstream: net.Socket): { received: number; sent: number } {
  return { received: upstream.bytesWritten, sent: upstream.bytesRead };
}

/**
 * Connect to the local pod, from the client's own IP when configured (transparent bind; the
 * capture steers the pod's replies back to us). Falls back to the node's address when the
 * spoofed connect fails, so a quirk of the host never breaks delivery.
 */
async function connectUpstream(ctx: ProxyContext, a: InboundAdmission): Promise<net.Socket> {
  const target = { host: a.target.ip, port: a.target.port };
  if (ctx.config.preserveSourceIp && ctx.config.captureMode !== 'none' && a.sourceIp) {
    try {
      return await ctx.sockets.connect({ ...target, sourceAddress: a.sourceIp }, ctx.config.connectTimeoutMs);
    } catch (err) {
      ctx.logger.warn({ err: describeError(err), src: a.sourceIp, dst: `${target.host}:${target.port}` }, 'inbound: connect with the client IP failed; using the node IP');
    }
  }
  return ctx.sockets.connect(target, ctx.config.connectTimeoutMs);
}

export class InboundHbone {
  readonly server: HboneServer;

  constructor(private readonly ctx: ProxyContext) {
    this.server = new HboneServer({
      trustDomains: () => [ctx.state().trustDomain],
      secureContextFor: (localAddress) => this.secureContextFor(localAddress),
      onConnect: (req) => this.onConnect(req),
      logger: ctx.logger,
      maxConcurrentStreams: ctx.config.hboneMaxConcurrentStreams,
      maxHeaderListBytes: ctx.config.hboneMaxHeaderBytes,
      onOverload: (o) =>
        overloadOf(ctx).log.reject({ reason: o.reason, direction: 'inbound', workload: `${o.peerIdentity} -> ${o.localAddress}`, limit: o.limit, setting: 'AMESH_HBONE_MAX_HEADER_BYTES' }),
    });
  }

  /** The certificate presented is the one of the pod that was dialled. */
  private async secureContextFor(localAddress: string): Promise<tls.SecureContext | undefined> {
    const workload = this.ctx.state().workloadByIp(localAddress);
    if (!workload || workload.node !== this.ctx.node || workload.tunnelProtocol !== 'HBONE') {
      this.ctx.logger.warn({ localAddress }, 'inbound: HBONE connection for an address that is no local mesh workload');
      return undefined;
    }
    return this.ctx.certificates.secureContext({
      trustDomain: workload.trustDomain ?? this.ctx.state().trustDomain,
      namespace: workload.namespace,
      serviceAccount: workload.serviceAccount,
    });
  }

  private async onConnect(req: HboneConnectRequest): Promise<HboneConnectResult> {
    const forwarded = req.forwarded ? parseForwardedFor(req.forwarded) : null;
    const conn = beginConnection(this.ctx, 'destination', this.ctx.state().trustDomain, {
      direction: 'inbound',
      'src.addr': forwarded ? `${forwarded.address}:${forwarded.port}` : req.peerAddress,
      'dst.addr': `${req.authority.host}:${req.authority.port}`,
      'dst.hbone_addr': `${req.localAddress}:${req.localPort}`,
      bytes_sent: 0,
      bytes_recv: 0,
      duration: '0ms',
    });
    conn.mtls = true;
    const result = await admitInbound(this.ctx, {
      target: { ip: req.authority.host, port: req.authority.port },
      dialledIp: req.localAddress,
      sourceIdentity: req.peerIdentity,
      sourceIp: forwarded?.address ?? req.peerAddress,
      conn,
    });
    if (result.status !== 200) return { status: result.status, reason: result.reason };
    const upstream = result.upstream;
    conn.established(() => upstreamBytes(upstream));
    upstream.once('close', () => conn.finished(upstreamBytes(upstream)));
    return { status: 200, upstream: upstream as Duplex };
  }

  handleSocket(socket: net.Socket): void {
    this.server.handleConnection(socket);
  }
}

export function identityNamespace(identity: string | null): string | undefined {
  return identity ? parseSpiffeUri(identity)?.namespace : undefined;
}
