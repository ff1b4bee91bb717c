/**
 * Inbound: HBONE connections to local pods on :15008 (and the same admission for tunnels
 * from this very node, served in-process). Admission = route check + L4 authorization, then
 * the upstream connect; HBONE answers 200 only after both succeeded (DESIGN §4). Admitted
 * connections are tracked with their attributes and re-checked on every state change.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { describeError } from '../../errors/amesh-error.js';
import { parseForwardedFor } from '../../hbone/headers.js';
import { HboneServer, type HboneConnectRequest, type HboneConnectResult } from '../../hbone/server.js';
import { parseSpiffeUri } from '../../identity/spiffe.js';
import { decisionLogFields, evaluateL4, type L4Decision } from '../../policy/l4-authorization.js';
import { recheckInbound, type InboundAttributes } from './connection-recheck.js';
import { decideInbound, type Destination } from './route.js';
import type { ProxyContext } from './proxy-context.js';

export interface InboundAdmission {
  target: Destination;
  /** The address the tunnel was dialled at (the pod IP); must equal the target's. */
  dialledIp: string;
  sourceIdentity: string | null;
  sourceIp: string;
}

export type AdmissionResult =
  | { status: 200; upstream: net.Socket; workloadUid: string; identity: string; attributes: InboundAttributes }
  | { status: 400 | 401 | 503; reason: string };

function logDenial(ctx: ProxyContext, a: InboundAdmission, workloadUid: string, policy: L4Decision): void {
  ctx.logger.info(
    { src: a.sourceIp, identity: a.sourceIdentity, dst: `${a.target.ip}:${a.target.port}`, workload: workloadUid, ...decisionLogFields(policy), reason: policy.reason },
    'policy: connection denied',
  );
}

/**
 * Route + policy + upstream connect for one inbound connection. Logs every denial with the
 * policy and rule. The result carries the attributes the connection was admitted with, so the
 * tracker can re-check it when the state changes.
 */
export async function admitInbound(ctx: ProxyContext, a: InboundAdmission): Promise<AdmissionResult> {
  const state = ctx.state();
  const decision = decideInbound(state, ctx.node, a.target, a.dialledIp);
  if (!decision.ok) return { status: decision.status, reason: decision.reason };
  const attributes: InboundAttributes = {
    connection: { sourceIdentity: a.sourceIdentity, sourceIp: a.sourceIp, destinationIp: a.target.ip, destinationPort: a.target.port },
    workloadUid: decision.workload.uid,
  };
  const policy = evaluateL4(state.policiesFor(decision.workload), attributes.connection);
  if (policy.dryRunWouldDeny) ctx.logger.info({ dryRun: policy.dryRunWouldDeny, src: a.sourceIp }, 'policy: dry-run policy would deny');
  if (!policy.allowed) {
    logDenial(ctx, a, decision.workload.uid, policy);
    return { status: 401, reason: policy.reason };
  }
  let upstream: net.Socket;
  try {
    upstream = await connectUpstream(ctx, a);
  } catch (err) {
    return { status: 503, reason: describeError(err).split('\n')[0] ?? 'upstream connect failed' };
  }
  // The state may have changed while we connected; a re-check only sees connections tracked
  // before the swap, so re-decide against the newest state, then track synchronously.
  const now = ctx.state();
  if (now !== state) {
    const verdict = recheckInbound(now, attributes);
    if (!verdict.keep) {
      upstream.resetAndDestroy();
      if (verdict.decision) logDenial(ctx, a, decision.workload.uid, verdict.decision);
      return { status: verdict.decision ? 401 : 503, reason: verdict.reason };
    }
  }
  // Tracked here, for every caller (HBONE, captured plaintext, same-node in-process): closing
  // the upstream ends the relay, which resets the client side (RST or RST_STREAM) as well.
  ctx.connections.add(upstream, attributes);
  return { status: 200, upstream, workloadUid: decision.workload.uid, identity: now.identityOf(decision.workload), attributes };
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
    const result = await admitInbound(this.ctx, {
      target: { ip: req.authority.host, port: req.authority.port },
      dialledIp: req.localAddress,
      sourceIdentity: req.peerIdentity,
      sourceIp: forwarded?.address ?? req.peerAddress,
    });
    const start = process.hrtime.bigint();
    if (result.status !== 200) {
      this.ctx.accessLog.info(
        { direction: 'inbound', 'src.addr': forwarded ? `${forwarded.address}:${forwarded.port}` : req.peerAddress, 'src.identity': req.peerIdentity, 'dst.addr': `${req.authority.host}:${req.authority.port}`, 'dst.hbone_addr': `${req.localAddress}:${req.localPort}`, error: `${result.status}`, reason: result.reason },
        'connection refused',
      );
      return { status: result.status, reason: result.reason };
    }
    result.upstream.once('close', () =>
      this.ctx.accessLog.info(
        {
          direction: 'inbound',
          'src.addr': forwarded ? `${forwarded.address}:${forwarded.port}` : req.peerAddress,
          'src.identity': req.peerIdentity,
          'dst.addr': `${req.authority.host}:${req.authority.port}`,
          'dst.hbone_addr': `${req.localAddress}:${req.localPort}`,
          'dst.workload': result.workloadUid,
          'dst.identity': result.identity,
          bytes_sent: result.upstream.bytesRead,
          bytes_recv: result.upstream.bytesWritten,
          duration: `${Number((process.hrtime.bigint() - start) / 1_000_000n)}ms`,
        },
        'connection complete',
      ),
    );
    return { status: 200, upstream: result.upstream as Duplex };
  }

  handleSocket(socket: net.Socket): void {
    this.server.handleConnection(socket);
  }
}

export function identityNamespace(identity: string | null): string | undefined {
  return identity ? parseSpiffeUri(identity)?.namespace : undefined;
}
