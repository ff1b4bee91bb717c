/**
 * The nginx L4 comparator of `npm run bench` (BENCHMARKS.md scenarios 1–5): an nginx `stream {}`
 * pair like the stunnel one — the client side in the client pod listens on 127.0.0.1 and
 * originates mutual TLS 1.3 (`proxy_ssl on` with a client certificate), the server side in the
 * server pod terminates it (`ssl_verify_client on` against the mesh root) and forwards plain TCP
 * to the local backend. One worker each (`worker_processes 1`), as an amesh node agent is one Node
 * process. The stream module is Debian's libnginx-mod-stream, loaded by path.
 *
 * The client side does not verify the server's certificate (`proxy_ssl_verify off`): nginx always
 * checks the peer's host name when it verifies, and mesh certificates carry only a SPIFFE URI. The
 * server side verifies the client's chain. TLS session reuse is off so every connection is a full
 * handshake, as amesh's HBONE connections are.
 */
import type { PairTunnel } from './haproxy-pair.js';

/** Where Debian's libnginx-mod-stream installs the module. */
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export interface NginxPairSpec {
  role: 'client' | 'server';
  /** A private directory: pid and error log go there. */
  dir: string;
  /** PEM: the certificate chain (leaf first), its key, and the mesh root. */
  certFile: string;
  keyFile: string;
  caFile: string;
  serverIp: string;
  tunnels: readonly PairTunnel[];
  /** Enough for the memory scenario's held connections (each proxied one takes two sockets). */
  maxConnections: number;
  modulePath?: string;
}

export function nginxPairConfig(spec: NginxPairSpec): string {
  const tls13 = 'TLSv1.3';
  const servers = spec.tunnels.map((t) =>
    spec.role === 'client'
      ? `  server {
    listen 127.0.0.1:${t.clientPort};
    proxy_pass ${spec.serverIp}:${t.serverPort};
    proxy_ssl on;
    proxy_ssl_protocols ${tls13};
    proxy_ssl_certificate ${spec.certFile};
    proxy_ssl_certificate_key ${spec.keyFile};
    proxy_ssl_verify off;
    proxy_ssl_session_reuse off;
  }`
      : `  server {
    listen ${t.serverPort} ssl;
    ssl_protocols ${tls13};
    ssl_certificate ${spec.certFile};
    ssl_certificate_key ${spec.keyFile};
    ssl_client_certificate ${spec.caFile};
    ssl_verify_client on;
    ssl_session_tickets off;
    ssl_session_cache off;
    proxy_pass 127.0.0.1:${t.targetPort};
  }`,
  );
  return `# written by amesh bench (${spec.role} side of the nginx stream pair); in the foreground so its pid is ours to measure
load_module ${spec.modulePath ?? NGINX_STREAM_MODULE};
daemon off;
worker_processes 1;
worker_rlimit_nofile ${spec.maxConnections * 2 + 100};
pid ${spec.dir}/nginx.pid;
error_log ${spec.dir}/nginx-error.log warn;
events { worker_connections ${spec.maxConnections * 2 + 100}; }
stream {
  tcp_nodelay on;
  proxy_timeout 300s;
${servers.join('\n')}
}
`;
}
