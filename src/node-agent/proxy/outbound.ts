/**
 * Outbound (:15001): a captured connection from a local mesh pod. The route decides; this
 * file only carries it out: HBONE through the pool (to the destination's node, or to a
 * waypoint with the original destination as :authority), in-process to a pod on this node,
 * plain TCP passthrough to destinations outside the mesh, or a reset.
 *
 * Telemetry (reporter `source`, l4-telemetry.ts): every connection ends in exactly one metric
 * outcome and one access-log line — refused (no route, the destination's 401 → DENY, a failed
 * connect → CONNECT) or established and metered until the relay ends.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError, isAmeshError } from '../../errors/amesh-error.js';
import { HboneRefusedError } from '../../hbone/client.js';
import { EarlyData } from '../../hbone/early-data.js';
import { buildBaggage, buildForwarded, formatAuthority, newTraceparent } from '../../hbone/headers.js';
import { HbonePoolOverloadedError, type HboneConnectOptions } from '../../hbone/pool.js';
import { relay } from '../../net/relay.js';
import type { MeshState } from '../state/mesh-state.js';
import type { Workload } from '../state/types.js';
import { RESPONSE_FLAGS, type ResponseFlag } from '../telemetry/l4-labels.js';
import { admitInbound, upstreamBytes } from './inbound.js';
import { beginConnection, overloadOf, type AccessLogEntry, type ProxyContext } from './proxy-context.js';
import { decideLeavingSource, decideOutbound, type OutboundRoute } from './route.js';

/** The access-log line of an outbound connection: `waypoint` names the waypoint it went through. */
type OutboundLogEntry = AccessLogEntry & { waypoint?: string };

type TunnelRoute = Extract<OutboundRoute, { kind: 'hbone' | 'waypoint' }>;

/** Baggage per source workload object: the state never changes one (a config change builds new ones). */
const baggageBySource = new WeakMap<Workload, { cluster: string; value: string }>();

/** The source's W3C baggage (its cluster, namespace, workload, service and version), built once per workload object. */
function sourceBaggage(cluster: string, source: Workload): string {
  const known = baggageBySource.get(source);
  if (known?.cluster === cluster) return known.value;
  const value = buildBaggage({
    cluster,
    namespace: source.namespace,
    workloadType: 'deployment',
    workloadName: source.workloadName ?? source.name,
    service: source.canonicalName ?? source.workloadName ?? source.name,
    version: source.canonicalRevision ?? 'latest',
  });
  baggageBySource.set(source, { cluster, value });
  return value;
}

/** The pool request for a tunnel: our source's certificate, the next hop's identity, the destination as dialled. */
function tunnelRequest(ctx: ProxyContext, state: MeshState, source: Workload, client: net.Socket, route: TunnelRoute): HboneConnectOptions {
  return {
    sourceIdentity: { trustDomain: source.trustDomain ?? state.trustDomain, namespace: source.namespace, serviceAccount: source.serviceAccount },
    expectedIdentities: route.expectedIdentities,
    nextHop: { host: route.nextHop.ip, port: route.nextHop.port },
    authority: formatAuthority(route.target.ip, route.target.port),
    headers: {
      forwarded: buildForwarded({ clientAddress: client.remoteAddress ?? '', clientPort: client.remotePort ?? 0, ...(route.service ? { host: route.service.hostname } : {}) }),
      baggage: sourceBaggage(ctx.config.clusterId, source),
      traceparent: newTraceparent(),
    },
    maxPending: ctx.config.hboneMaxPendingConnects,
  };
}

/** The response flag of a route the agent cannot build. */
function rejectFlags(code: Extract<OutboundRoute, { kind: 'reject' }>['code']): ResponseFlag {
  return code === 'no-endpoints' || code === 'no-waypoint' ? RESPONSE_FLAGS.noHealthyUpstream : RESPONSE_FLAGS.noRoute;
}

export async function handleOutbound(ctx: ProxyContext, client: net.Socket): Promise<void> {
  ctx.connections.add(client);
  ctx.sockets.resetOnCrash(client);
  const state = ctx.state();
  const srcIp = client.remoteAddress ?? '';
  const destination = { ip: client.localAddress ?? '', port: client.localPort ?? 0 };
  const entry: OutboundLogEntry = { direction: 'outbound', 'src.addr': `${srcIp}:${client.remotePort}`, 'dst.addr': `${destination.ip}:${destination.port}`, bytes_sent: 0, bytes_recv: 0, duration: '0ms' };
  const conn = beginConnection(ctx, 'source', state.trustDomain, entry);
  conn.destinationPort = destination.port;
  const refuse = (flags: ResponseFlag, reason: string, denial?: { policy: string; rule: string }, record = true): void => {
    client.resetAndDestroy();
    conn.refused({ flags, error: 'refused', reason, record, ...(denial ? { denial } : {}) });
  };

  const source = state.workloadByIp(srcIp);
  if (!source || source.node !== ctx.node) {
    refuse(RESPONSE_FLAGS.noRoute, `source ${srcIp} is not a workload on node ${ctx.node}`);
    return;
  }
  // Out of the mesh in the state but still captured: being unenrolled (decideLeavingSource).
  const leaving = source.tunnelProtocol !== 'HBONE';
  const sourceIdentity = state.identityOf(source);
  conn.setSource(source, leaving ? null : sourceIdentity);
  const overload = overloadOf(ctx);
  if (!overload.outbound.tryAcquire(source.uid)) {
    const limit = overload.outbound.limit;
    overload.log.reject({ reason: 'workload_connections', direction: 'outbound', workload: source.uid, limit, setting: 'AMESH_MAX_CONNECTIONS_PER_WORKLOAD' });
    refuse(RESPONSE_FLAGS.overflow, `overload: ${source.uid} has ${limit} outbound connections open (AMESH_MAX_CONNECTIONS_PER_WORKLOAD)`);
    return;
  }
  client.once('close', () => overload.outbound.release(source.uid));

  const routeContext = { state, node: ctx.node, hbonePort: ctx.config.hbonePort, source };
  const route: OutboundRoute = leaving ? decideLeavingSource(routeContext, destination) : decideOutbound(routeContext, destination);
  if (route.kind === 'reject') {
    refuse(rejectFlags(route.code), route.reason);
    return;
  }
  conn.setService(route.service);
  conn.mtls = route.kind !== 'passthrough' && !leaving;
  if (route.kind === 'waypoint') {
    // The mTLS peer is the waypoint pod; the workload addressed (if any) stays in the log line.
    conn.setDestination(route.waypoint.pod, route.expectedIdentities[0]);
    if (route.workload) entry['dst.workload'] = route.workload.uid;
    entry.waypoint = route.waypoint.name;
  } else {
    conn.setDestination(route.workload, route.kind === 'hbone' && !leaving ? route.expectedIdentities[0] : undefined);
  }

  let upstream: Duplex;
  // Bytes the client sent on the stream before the 200: counted with the relay's.
  let early: EarlyData | undefined;
  try {
    if (route.kind === 'passthrough') {
      upstream = await ctx.sockets.connect({ host: route.target.ip, port: route.target.port }, ctx.config.connectTimeoutMs);
    } else if (route.kind === 'hbone' && route.sameNode) {
      // The agent's own connect to a local pod:15008 is not captured: admit in-process, reported
      // by the destination side too (reporter destination), as a tunnel from another node would be.
      entry['dst.hbone_addr'] = 'in-process';
      const inbound = beginConnection(ctx, 'destination', state.trustDomain, { direction: 'inbound', 'src.addr': entry['src.addr'], 'dst.addr': formatAuthority(route.target.ip, route.target.port), 'dst.hbone_addr': 'in-process', bytes_sent: 0, bytes_recv: 0, duration: '0ms' });
      inbound.mtls = !leaving;
      // A source leaving the mesh is admitted as plaintext: no peer identity for the policies.
      const admitted = await admitInbound(ctx, { target: route.target, dialledIp: route.target.ip, sourceIdentity: leaving ? null : sourceIdentity, sourceIp: srcIp, conn: inbound });
      if (admitted.status !== 200) {
        // The inbound side already logged and recorded it (with the policy); not recorded twice.
        const denial = admitted.flags === RESPONSE_FLAGS.denied ? { policy: inbound.entry.policy ?? '(none)', rule: inbound.entry.rule ?? '(none)' } : undefined;
        refuse(admitted.flags, `${admitted.status}: ${admitted.reason}`, denial, false);
        return;
      }
      const local = admitted.upstream;
      inbound.established(() => upstreamBytes(local));
      local.once('close', () => inbound.finished(upstreamBytes(local)));
      upstream = local;
    } else {
      // A waypoint hop always goes over the network (marked socket), even to a pod on this node.
      entry['dst.hbone_addr'] = formatAuthority(route.nextHop.ip, route.nextHop.port);
      entry['dst.identity'] = route.expectedIdentities[0];
      const request = tunnelRequest(ctx, state, source, client, route);
      if (ctx.config.hboneEarlyDataBytes > 0) request.early = early = new EarlyData(client, ctx.config.hboneEarlyDataBytes);
      upstream = await ctx.pool.connect(request);
    }
  } catch (err) {
    const reason = isAmeshError(err) ? err.describe() : describeError(err);
    if (err instanceof HbonePoolOverloadedError) {
      overload.log.reject({ reason: 'pending_streams', direction: 'outbound', workload: `${source.uid} -> ${err.peer}`, limit: err.limit, setting: 'AMESH_HBONE_MAX_PENDING_CONNECTS' });
    }
    // The destination's 401: its AuthorizationPolicy denied us (the policy's name is only known there).
    if (err instanceof HboneRefusedError && err.status === 401) refuse(RESPONSE_FLAGS.denied, reason, { policy: '(at the destination)', rule: '(at the destination)' });
    else if (err instanceof HbonePoolOverloadedError) refuse(RESPONSE_FLAGS.overflow, reason);
    else refuse(RESPONSE_FLAGS.connectFailure, reason);
    return;
  }
  conn.established(() => ({ received: client.bytesRead, sent: client.bytesWritten }));
  // Returned, not awaited: a suspended handleOutbound would keep its whole frame (route, state,
  // log entry, the tunnel request) for as long as the connection is held.
  const earlyBytes = early?.bytes ?? 0;
  return relay(client, upstream).then((r) => conn.finished({ received: earlyBytes + r.aToB, sent: r.bToA }, r.error?.message));
}
