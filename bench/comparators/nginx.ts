/**
 * The nginx comparator of the waypoint bench (BENCHMARKS.md scenario 6): one worker doing the
 * waypoint's routing — `map $http_x_user` sends `beta` to v2, everything else goes through
 * `split_clients` 90/10 keyed on `$request_id` (random per request, so the split is per request
 * like the waypoint's) — with an upstream `keepalive 32` pool per version. Plain HTTP on both
 * sides (no TLS): the bench report says so next to the numbers.
 */
import { ROUTE_HEADER, ROUTE_HEADER_VALUE, WEIGHTS, type BackendPorts } from '../waypoint-topology.js';

export interface NginxSpec {
  listenPort: number;
  backends: BackendPorts;
  /** A private directory: pid, logs and temp paths go there. */
  dir: string;
}

export function nginxConfig(spec: NginxSpec): string {
  const { v1, v2 } = spec.backends;
  const variable = `$http_${ROUTE_HEADER.replace(/-/g, '_')}`;
  return `# written by amesh bench:waypoint; in the foreground so its pid is ours to measure
daemon off;
worker_processes 1;
pid ${spec.dir}/nginx.pid;
error_log ${spec.dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${spec.dir}/client_body;
  proxy_temp_path ${spec.dir}/proxy;
  fastcgi_temp_path ${spec.dir}/fastcgi;
  uwsgi_temp_path ${spec.dir}/uwsgi;
  scgi_temp_path ${spec.dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream v1 { server 127.0.0.1:${v1}; keepalive 32; keepalive_requests 1000000; }
  upstream v2 { server 127.0.0.1:${v2}; keepalive 32; keepalive_requests 1000000; }
  split_clients "\${request_id}" $weighted { ${WEIGHTS.v1}% v1; * v2; }
  map ${variable} $route { "${ROUTE_HEADER_VALUE}" v2; default $weighted; }
  server {
    listen 127.0.0.1:${spec.listenPort};
    location / {
      proxy_pass http://$route;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** "1.22.1" from `nginx -v` ("nginx version: nginx/1.22.1", on stderr). */
export function parseNginxVersion(text: string): string | undefined {
  return /nginx\/(\S+)/.exec(text)?.[1];
}
