/**
 * The nginx comparators, one worker each, in the foreground (its pid is ours to measure):
 * - the waypoint bench's (BENCHMARKS.md scenario 6): the waypoint's routing — `map $http_x_user`
 *   sends `beta` to v2, everything else goes through `split_clients` 90/10 keyed on `$request_id`
 *   (random per request, so the split is per request like the waypoint's) — with an upstream
 *   `keepalive 32` pool per version. Plain HTTP on both sides (no TLS): the bench report says so
 *   next to the numbers.
 * - the gateway bench's edge proxy: an `ssl` server (TLS 1.3 only, the same certificate the amesh
 *   gateway serves) for one host name, `proxy_pass` to an upstream with a `keepalive 32` pool.
 */
import { ROUTE_HEADER, ROUTE_HEADER_VALUE, WEIGHTS, type BackendPorts } from '../waypoint-topology.js';

export interface NginxSpec {
  listenPort: number;
  backends: BackendPorts;
  /** A private directory: pid, logs and temp paths go there. */
  dir: string;
}

export interface NginxEdgeSpec {
  listenPort: number;
  backendPort: number;
  dir: string;
  serverName: string;
  /** PEM files: the certificate chain (leaf first) and its key. */
  certFile: string;
  keyFile: string;
}

/** The process-wide part and the `http {}` settings every comparator shares; `body` goes inside `http {}`. */
function nginxShell(by: string, dir: string, body: string): string {
  return `# written by amesh ${by}; in the foreground so its pid is ours to measure
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
${body}}
`;
}

const upstream = (name: string, port: number): string => `  upstream ${name} { server 127.0.0.1:${port}; keepalive 32; keepalive_requests 1000000; }\n`;
const proxyTo = (target: string): string => `    location / {
      proxy_pass http://${target};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
`;

export function nginxConfig(spec: NginxSpec): string {
  const { v1, v2 } = spec.backends;
  const variable = `$http_${ROUTE_HEADER.replace(/-/g, '_')}`;
  return nginxShell(
    'bench:waypoint',
    spec.dir,
    `${upstream('v1', v1)}${upstream('v2', v2)}  split_clients "\${request_id}" $weighted { ${WEIGHTS.v1}% v1; * v2; }
  map ${variable} $route { "${ROUTE_HEADER_VALUE}" v2; default $weighted; }
  server {
    listen 127.0.0.1:${spec.listenPort};
${proxyTo('$route')}  }
`,
  );
}

export function nginxEdgeConfig(spec: NginxEdgeSpec): string {
  return nginxShell(
    'bench:gateway',
    spec.dir,
    `${upstream('backend', spec.backendPort)}  server {
    listen 127.0.0.1:${spec.listenPort} ssl;
    server_name ${spec.serverName};
    ssl_certificate ${spec.certFile};
    ssl_certificate_key ${spec.keyFile};
    ssl_protocols TLSv1.3;
${proxyTo('backend')}  }
`,
  );
}

/** "1.22.1" from `nginx -v` ("nginx version: nginx/1.22.1", on stderr). */
export function parseNginxVersion(text: string): string | undefined {
  return /nginx\/(\S+)/.exec(text)?.[1];
}

/** "OpenSSL 3.0.19" from `nginx -V` ("… running with OpenSSL 3.0.19 …", else "built with OpenSSL …"). */
export function parseNginxOpenssl(text: string): string | undefined {
  return /running with (OpenSSL \S+)/.exec(text)?.[1] ?? /built with (OpenSSL \S+)/.exec(text)?.[1];
}
