/**
 * Inbound plaintext (:15006): a captured connection to a local mesh pod that did not come
 * through a tunnel. Allowed under PERMISSIVE, refused (reset) when a policy denies
 * identity-less peers — PeerAuthentication STRICT is exactly such a DENY (DESIGN §6).
 */
import type net from 'node:net';
import { relay } from '../../net/relay.js';
import { admitInbound } from './inbound.js';
import { elapsed, logConnection, type ProxyContext } from './proxy-context.js';

export async function handleInboundPlaintext(ctx: ProxyContext, client: net.Socket): Promise<void> {
  const start = process.hrtime.bigint();
  const src = `${client.remoteAddress}:${client.remotePort}`;
  const target = { ip: client.localAddress ?? '', port: client.localPort ?? 0 };
  ctx.connections.add(client);
  const result = await admitInbound(ctx, { target, dialledIp: target.ip, sourceIdentity: null, sourceIp: client.remoteAddress ?? '' });
  if (result.status !== 200) {
    client.resetAndDestroy();
    logConnection(ctx, { direction: 'inbound', 'src.addr': src, 'dst.addr': `${target.ip}:${target.port}`, bytes_sent: 0, bytes_recv: 0, duration: elapsed(start), error: `refused (${result.status})`, reason: result.reason });
    return;
  }
  const r = await relay(client, result.upstream);
  logConnection(ctx, {
    direction: 'inbound',
    'src.addr': src,
    'dst.addr': `${target.ip}:${target.port}`,
    'dst.workload': result.workloadUid,
    bytes_sent: r.bToA,
    bytes_recv: r.aToB,
    duration: elapsed(start),
    ...(r.error ? { error: r.error.message } : {}),
  });
}
