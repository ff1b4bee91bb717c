/**
 * Inbound plaintext (:15006): a captured connection to a local mesh pod that did not come
 * through a tunnel. Allowed under PERMISSIVE, refused (reset) when a policy denies
 * identity-less peers — PeerAuthentication STRICT is exactly such a DENY (DESIGN §6).
 * Reported as `destination` with connection_security_policy `none`.
 */
import type net from 'node:net';
import { relay } from '../../net/relay.js';
import { admitInbound } from './inbound.js';
import { beginConnection, type ProxyContext } from './proxy-context.js';

export async function handleInboundPlaintext(ctx: ProxyContext, client: net.Socket): Promise<void> {
  const target = { ip: client.localAddress ?? '', port: client.localPort ?? 0 };
  ctx.connections.add(client);
  ctx.sockets.resetOnCrash(client);
  const conn = beginConnection(ctx, 'destination', ctx.state().trustDomain, {
    direction: 'inbound',
    'src.addr': `${client.remoteAddress}:${client.remotePort}`,
    'dst.addr': `${target.ip}:${target.port}`,
    bytes_sent: 0,
    bytes_recv: 0,
    duration: '0ms',
  });
  const result = await admitInbound(ctx, { target, dialledIp: target.ip, sourceIdentity: null, sourceIp: client.remoteAddress ?? '', conn });
  if (result.status !== 200) {
    client.resetAndDestroy();
    return;
  }
  conn.established(() => ({ received: client.bytesRead, sent: client.bytesWritten }));
  const r = await relay(client, result.upstream);
  conn.finished({ received: r.aToB, sent: r.bToA }, r.error?.message);
}
