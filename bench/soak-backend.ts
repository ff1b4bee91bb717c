/**
 * The soak's HTTP backend (bench/soak-topology.ts, server pod :8080): nginx with one worker
 * answering every GET with a fixed body of `bytes` (1 KiB), keep-alive, no access log.
 *
 * Why nginx and not bench/http-server.ts (node:http, which `npm run bench` keeps using so its
 * figures keep their meaning): the soak measures the agents and the waypoint at thousands of
 * requests per second on 2 cores, and the backend's CPU is taken from them. nginx answers from
 * its config in C for a fraction of node:http's cost per request (figures in the commit that
 * brought this in), is already a dependency of the bench (its comparators; nginx-light from
 * scripts/setup.sh), and is well tested HTTP — a hand-written raw-socket responder would be
 * cheaper than node:http too but is one more parser to trust. Requests other than GET/HEAD are
 * refused (405), so a request with a body is never silently answered 200.
 */

export interface SoakBackendSpec {
  /** A private directory: pid, error log and temp paths go there. */
  dir: string;
  host?: string;
  port: number;
  /** Body size of every response. */
  bytes: number;
  /** worker_connections; the waypoint's upstream pool needs far fewer. */
  maxConnections?: number;
}

export function soakBackendConfig(spec: SoakBackendSpec): string {
  const connections = spec.maxConnections ?? 4096;
  return `# written by amesh soak (the soak's HTTP backend); in the foreground so its pid is ours to stop
daemon off;
worker_processes 1;
worker_rlimit_nofile ${connections + 100};
pid ${spec.dir}/nginx.pid;
error_log ${spec.dir}/nginx-error.log warn;
events { worker_connections ${connections}; }
http {
  access_log off;
  server_tokens off;
  client_body_temp_path ${spec.dir}/client_body;
  proxy_temp_path ${spec.dir}/proxy;
  fastcgi_temp_path ${spec.dir}/fastcgi;
  uwsgi_temp_path ${spec.dir}/uwsgi;
  scgi_temp_path ${spec.dir}/scgi;
  default_type application/octet-stream;
  tcp_nodelay on;
  # The waypoint's pooled connections carry the whole run: never close them for their age or count.
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
  server {
    listen ${spec.host ?? '0.0.0.0'}:${spec.port} backlog=4096;
    location / {
      if ($request_method !~ ^(GET|HEAD)$) { return 405; }
      return 200 "${'x'.repeat(spec.bytes)}";
    }
  }
}
`;
}
