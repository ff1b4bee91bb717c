/**
 * The haproxy L4 comparator of `npm run bench` (BENCHMARKS.md scenarios 1–5): a pair like the
 * stunnel one — a client-side haproxy in the client pod (`mode tcp`, listening on 127.0.0.1,
 * every accepted connection becomes one mutual-TLS 1.3 connection: `server … ssl crt … ca-file …
 * verify required`) and a server-side haproxy in the server pod (`bind … ssl crt … ca-file …
 * verify required`) forwarding plain TCP to the local backend. One thread each (`nbthread 1`), as
 * an amesh node agent is one Node process. Same ECDSA P-256 material as amesh (`amesh ca issue`);
 * the chain is verified against the mesh root, with no host check (the certificates carry only a
 * SPIFFE URI, which haproxy cannot match). TLS session reuse is off on the client side so every
 * connection is a full handshake, as amesh's HBONE connections are.
 */

/** One proxied port: client listens on 127.0.0.1:clientPort, server on serverPort, forwards to 127.0.0.1:targetPort. */
export interface PairTunnel {
  name: string;
  clientPort: number;
  serverPort: number;
  targetPort: number;
}

export interface HaproxyPairSpec {
  role: 'client' | 'server';
  /** PEM: leaf certificate chain then private key (haproxy's `crt` format). */
  crtFile: string;
  /** PEM: the mesh root. */
  caFile: string;
  /** The server pod's IP (the client side connects to it). */
  serverIp: string;
  tunnels: readonly PairTunnel[];
  /** Enough for the memory scenario's held connections (each proxied one takes two sockets). */
  maxConnections: number;
}

const TLS13 = 'ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3 ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';

export function haproxyPairConfig(spec: HaproxyPairSpec): string {
  const tls = `ssl crt ${spec.crtFile} ca-file ${spec.caFile} verify required ${TLS13}`;
  const sections = spec.tunnels.map((t) =>
    spec.role === 'client'
      ? `
listen ${t.name}
  bind 127.0.0.1:${t.clientPort}
  server ${spec.role}-${t.name} ${spec.serverIp}:${t.serverPort} ${tls} no-ssl-reuse`
      : `
listen ${t.name}
  bind 0.0.0.0:${t.serverPort} ${tls}
  server backend 127.0.0.1:${t.targetPort}`,
  );
  return `# written by amesh bench (${spec.role} side of the haproxy pair); run in the foreground (-db) so its pid is ours to measure
global
  nbthread 1
  maxconn ${spec.maxConnections}

defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
${sections.join('\n')}
`;
}
