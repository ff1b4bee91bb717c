/**
 * Outbound (:15001): a captured connection from a local mesh pod. The route decides; this
 * file only carries it out: HBONE through the pool (to the destination's node, or to a
 * waypoint with the original destination as :authority), in-process to a pod on this node,
 * plain TCP passthrough to destinations outside the mesh, or a reset.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError, isAmeshError } from '../../errors/amesh-error.js';
import { buildBaggage, buildForwarded, formatAuthority, newTraceparent } from '../../hbone/headers.js';
import type { HboneConnectOptions } from '../../hbone/pool.js';
import { relay } from '../../net/relay.js';
import type { MeshState } from '../state/mesh-state.js';
import type { Workload } from '../state/types.js';
import { admitInbound } from './inbound.js';
import { elapsed, logConnection, type AccessLogEntry, type ProxyContext } from './proxy-context.js';
import { decideOutbound, type OutboundRoute } from './route.js';

/** The access-log line of an outbound connection: `waypoint` names the waypoint it went through. */
type OutboundLogEntry = AccessLogEntry & { waypoint?: string };

type TunnelRoute = Extract<OutboundRoute, { kind: 'hbone' | 'waypoint' }>;

/** The pool request for a tunnel: our source's certificate, the next hop's identity, the destination as dialled. */
function tunnelRequest(ctx: ProxyContext, state: MeshState, source: Workload, client: net.Socket, route: TunnelRoute): HboneConnectOptions {
  return {
    sourceIdentity: { trustDomain: source.trustDomain ?? state.trustDomain, namespace: source.namespace, serviceAccount: source.serviceAccount },
    expectedIdentities: route.expectedIdentities,
    nextHop: { host: route.nextHop.ip, port: route.nextHop.port },
    authority: formatAuthority(route.target.ip, route.target.port),
    headers: {
      forwarded: buildForwarded({ clientAddress: client.remoteAddress ?? '', clientPort: client.remotePort ?? 0, ...(route.service ? { host: route.service.hostname } : {}) }),
      baggage: buildBaggage({
        cluster: ctx.config.clusterId,
        namespace: source.namespace,
        workloadType: 'deployment',
        workloadName: source.workloadName ?? source.name,
        service: source.canonicalName ?? source.workloadName ?? source.name,
        version: source.canonicalRevision ?? 'latest',
      }),
      traceparent: newTraceparent(),
    },
  };
}

export async function handleOutbound(ctx: ProxyContext, client: net.Socket): Promise<void> {
  const start = process.hrtime.bigint();
  ctx.connections.add(client);
  const state = ctx.state();
  const srcIp = client.remoteAddress ?? '';
  const destination = { ip: client.localAddress ?? '', port: client.localPort ?? 0 };
  const entry: OutboundLogEntry = { direction: 'outbound', 'src.addr': `${srcIp}:${client.remotePort}`, 'dst.addr': `${destination.ip}:${destination.port}`, bytes_sent: 0, bytes_recv: 0, duration: '0ms' };
  const refuse = (reason: string): void => {
    client.resetAndDestroy();
    logConnection(ctx, { ...entry, duration: elapsed(start), error: 'refused', reason });
  };

  const source = state.workloadByIp(srcIp);
  if (!source || source.node !== ctx.node || source.tunnelProtocol !== 'HBONE') {
    refuse(`source ${srcIp} is not a mesh workload on node ${ctx.node}`);
    return;
  }
  const sourceIdentity = state.identityOf(source);
  entry['src.workload'] = source.uid;
  entry['src.identity'] = sourceIdentity;

  const route: OutboundRoute = decideOutbound({ state, node: ctx.node, hbonePort: ctx.config.hbonePort, source }, destination);
  if (route.kind === 'reject') {
    refuse(route.reason);
    return;
  }
  if (route.service) entry['dst.service'] = route.service.hostname;
  if (route.workload) entry['dst.workload'] = route.workload.uid;
  if (route.kind === 'waypoint') entry.waypoint = route.waypoint.name;

  let upstream: Duplex;
  try {
    if (route.kind === 'passthrough') {
      upstream = await ctx.sockets.connect({ host: route.target.ip, port: route.target.port }, ctx.config.connectTimeoutMs);
    } else if (route.kind === 'hbone' && route.sameNode) {
      // The agent's own connect to a local pod:15008 is not captured: admit in-process.
      entry['dst.hbone_addr'] = 'in-process';
      const admitted = await admitInbound(ctx, { target: route.target, dialledIp: route.target.ip, sourceIdentity, sourceIp: srcIp });
      if (admitted.status !== 200) {
        refuse(`${admitted.status}: ${admitted.reason}`);
        return;
      }
      upstream = admitted.upstream;
    } else {
      // A waypoint hop always goes over the network (marked socket), even to a pod on this node.
      entry['dst.hbone_addr'] = formatAuthority(route.nextHop.ip, route.nextHop.port);
      entry['dst.identity'] = route.expectedIdentities[0];
      upstream = await ctx.pool.connect(tunnelRequest(ctx, state, source, client, route));
    }
  } catch (err) {
    const reason = isAmeshError(err) ? err.describe() : describeError(err);
    refuse(reason);
    return;
  }
  const r = await relay(client, upstream);
  logConnection(ctx, { ...entry, bytes_sent: r.aToB, bytes_recv: r.bToA, duration: elapsed(start), ...(r.error ? { error: r.error.message } : {}) });
}
