/**
 * The sandbox's cluster DNS server (the role CoreDNS plays in a cluster): UDP and TCP on one
 * port, answers from `resolveName` over a view of the store that is rebuilt lazily after any
 * Service or EndpointSlice change.
 *
 * Invariants: a malformed or hostile packet never throws out of a handler — undecodable queries
 * with a readable header get FORMERR, shorter ones are dropped; UDP answers larger than the
 * client's limit (512 bytes, or its EDNS payload size) are sent truncated with TC set so the
 * client retries over TCP; TCP connections are length-prefixed (RFC 1035 §4.2.2), may carry
 * several queries, and are closed when idle or oversized. `close()` stops both listeners and
 * every open TCP connection.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import dnsPacket, { type Answer, type DecodedPacket, type OptAnswer, type Packet } from 'dns-packet';
import type { ClusterStore, KubeObject } from '../apiserver/types.js';
import type { Logger } from '../../telemetry/logger.js';
import { AmeshError } from '../../errors/amesh-error.js';
import { buildDnsView, CLUSTER_DOMAIN, resolveName, type DnsView } from './cluster-dns-records.js';

/** RFC 1035 §4.2.1: the UDP limit without EDNS. */
const CLASSIC_UDP_LIMIT = 512;
/** Cap on the EDNS payload size we honour (RFC 6891 recommends ~1232-4096). */
const MAX_EDNS_UDP = 4096;
const TCP_IDLE_MS = 10_000;
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4 } as const;
/** Attempts at finding a port free for both UDP and TCP when asked for port 0. */
const PORT_ATTEMPTS = 10;

export interface ClusterDnsOptions {
  store: ClusterStore;
  address: string;
  /** 0 picks a free port (the same one for UDP and TCP). */
  port: number;
  log: Logger;
  domain?: string;
}

export interface ClusterDnsServer {
  port: number;
  close(): Promise<void>;
}

/** The header-only reply for a query we cannot parse: same id, QR set, the given rcode. */
function headerOnlyReply(query: Buffer, rcode: number): Buffer | undefined {
  if (query.length < 12) return undefined;
  const reply = Buffer.alloc(12);
  query.copy(reply, 0, 0, 2);
  const opcodeAndRd = query.readUInt16BE(2) & 0x7900;
  reply.writeUInt16BE(0x8000 | opcodeAndRd | rcode, 2);
  return reply;
}

/** Pure: the encoded answer to `query`, truncated to `limit` bytes when needed (UDP). */
export function answerQuery(raw: Buffer, view: DnsView, limit: number | 'tcp'): Buffer | undefined {
  let query: DecodedPacket;
  try {
    query = dnsPacket.decode(raw);
  } catch {
    return headerOnlyReply(raw, RCODE.FORMERR);
  }
  if (query.type !== 'query') return undefined;
  const opcode = (raw.readUInt16BE(2) >> 11) & 0xf;
  const questions = query.questions ?? [];
  const base = { id: query.id ?? 0, type: 'response' as const, questions };
  const rd = query.flags !== undefined ? query.flags & dnsPacket.RECURSION_DESIRED : 0;
  if (opcode !== 0) return headerOnlyReply(raw, RCODE.NOTIMP);
  const question = questions[0];
  if (questions.length !== 1 || !question) return dnsPacket.encode({ ...base, flags: rd | RCODE.FORMERR });
  const opt = (query.additionals ?? []).find((r): r is OptAnswer => r.type === 'OPT');
  const edns: Answer[] = opt ? [{ name: '.', type: 'OPT', udpPayloadSize: MAX_EDNS_UDP, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as unknown as Answer] : [];
  const result = question.class === 'IN' || question.class === undefined ? resolveName(question.name, question.type, view) : undefined;
  const flags = dnsPacket.AUTHORITATIVE_ANSWER | rd | (result ? RCODE[result.rcode] : RCODE.NOTIMP);
  const full: Packet = {
    ...base,
    flags,
    answers: result?.answers ?? [],
    authorities: result?.authorities ?? [],
    additionals: [...(result?.additionals ?? []), ...edns],
  };
  const encoded = dnsPacket.encode(full);
  const max = limit === 'tcp' ? 65_535 : opt ? Math.min(MAX_EDNS_UDP, Math.max(CLASSIC_UDP_LIMIT, opt.udpPayloadSize)) : limit;
  if (encoded.length <= max) return encoded;
  // Too big: an empty, truncated answer makes the client retry over TCP (RFC 7766 §5).
  return dnsPacket.encode({ ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: edns });
}

/** Start UDP + TCP listeners on `address:port`; resolves once both listen. */
export async function startClusterDns(options: ClusterDnsOptions): Promise<ClusterDnsServer> {
  const { store, log } = options;
  const domain = options.domain ?? CLUSTER_DOMAIN;
  let view: DnsView | undefined;
  const invalidate = (): void => {
    view = undefined;
  };
  const currentView = (): DnsView => {
    view ??= buildDnsView(
      store.list<KubeObject>('v1', 'Service').items,
      store.list<KubeObject>('discovery.k8s.io/v1', 'EndpointSlice').items,
      domain,
    );
    return view;
  };
  const unwatch = [store.watch('v1', 'Service', {}, invalidate), store.watch('discovery.k8s.io/v1', 'EndpointSlice', {}, invalidate)];

  const answer = (raw: Buffer, limit: number | 'tcp'): Buffer | undefined => {
    try {
      return answerQuery(raw, currentView(), limit);
    } catch (err) {
      log.warn({ err }, 'cluster DNS could not answer a query');
      return headerOnlyReply(raw, RCODE.SERVFAIL);
    }
  };

  const connections = new Set<net.Socket>();
  const handleTcp = (socket: net.Socket): void => {
    connections.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => connections.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        const reply = answer(message, 'tcp');
        if (!reply) {
          socket.destroy();
          return;
        }
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([prefix, reply]));
      }
    });
  };

  const listenBoth = async (port: number): Promise<{ udp: dgram.Socket; tcp: net.Server }> => {
    const udp = dgram.createSocket({ type: 'udp4' });
    udp.on('message', (message, remote) => {
      const reply = answer(message, CLASSIC_UDP_LIMIT);
      if (reply) udp.send(reply, remote.port, remote.address);
    });
    udp.on('error', (err) => log.warn({ err }, 'cluster DNS UDP socket error'));
    const udpListening = once(udp, 'listening');
    udp.bind(port, options.address);
    await udpListening;
    const tcp = net.createServer(handleTcp);
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ port: udp.address().port, host: options.address }, () => resolve());
      });
    } catch (err) {
      udp.close();
      throw err;
    }
    return { udp, tcp };
  };

  let sockets: { udp: dgram.Socket; tcp: net.Server } | undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < (options.port === 0 ? PORT_ATTEMPTS : 1) && !sockets; attempt++) {
    try {
      sockets = await listenBoth(options.port);
    } catch (err) {
      lastError = err;
    }
  }
  if (!sockets) {
    for (const stop of unwatch) stop();
    const inUse = (lastError as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
    throw new AmeshError(inUse ? 'AMESH_PORT_IN_USE' : 'AMESH_SANDBOX_FAILED', `cluster DNS cannot listen on ${options.address}:${options.port}`, {
      cause: lastError,
      ...(inUse ? { hint: 'another DNS server already listens there; stop it or the other sandbox' } : {}),
    });
  }
  const { udp, tcp } = sockets;
  const port = udp.address().port;
  log.info({ address: `${options.address}:${port}`, domain }, 'cluster DNS listening (UDP and TCP)');

  let closing: Promise<void> | undefined;
  return {
    port,
    close: () => {
      closing ??= (async () => {
        for (const stop of unwatch) stop();
        for (const socket of connections) socket.destroy();
        await Promise.all([new Promise<void>((resolve) => udp.close(() => resolve())), new Promise<void>((resolve) => tcp.close(() => resolve()))]);
      })();
      return closing;
    },
  };
}
