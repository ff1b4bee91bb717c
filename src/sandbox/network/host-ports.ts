/**
 * Host loopback ports for LoadBalancer Services, as pure decisions: which TCP ports of which
 * Service get a listener on the host's 127.0.0.1, which port numbers to try, and the Service
 * annotation that records the outcome (`sandbox.amesh.io/host-ports: "80=8080,443=8443"`).
 *
 * Rules: a LoadBalancer Service with an address gets one listener per TCP port; service port
 * P < 1024 is tried at P + 8000 (no root-only ports on the host), P ≥ 1024 at P; a port that is
 * taken falls back to an ephemeral one. The port recorded in the annotation is tried first, so a
 * daemon restart keeps the numbers users have seen (an ephemeral fallback included) when they
 * are still free.
 */

export const HOST_PORTS_ANNOTATION = 'sandbox.amesh.io/host-ports';
/** Added to service ports below 1024 for the host port: 80 → 8080, 443 → 8443. */
export const PRIVILEGED_PORT_OFFSET = 8000;

export interface HostPortRequest {
  /** `namespace/name` of the Service. */
  service: string;
  /** The Service port (also the port dialled on the LoadBalancer address). */
  port: number;
  /** The LoadBalancer address connections are relayed to. */
  ip: string;
  /** Host ports to try in order; an ephemeral port after all of them. */
  candidates: number[];
}

interface ServiceLike {
  metadata: { namespace?: string; name?: string; annotations?: Record<string, string>; deletionTimestamp?: string };
  spec?: unknown;
  status?: unknown;
}

/** The default host port of a service port. */
export function defaultHostPort(port: number): number {
  return port < 1024 ? port + PRIVILEGED_PORT_OFFSET : port;
}

/** `"80=8080,443=8443"` → {80 → 8080, 443 → 8443}; malformed entries are skipped. */
export function parseHostPorts(text: string | undefined): Map<number, number> {
  const result = new Map<number, number>();
  for (const entry of (text ?? '').split(',')) {
    const match = /^\s*(\d{1,5})\s*=\s*(\d{1,5})\s*$/.exec(entry);
    if (!match) continue;
    const port = Number(match[1]);
    const hostPort = Number(match[2]);
    if (port >= 1 && port <= 65535 && hostPort >= 1 && hostPort <= 65535) result.set(port, hostPort);
  }
  return result;
}

/** {80 → 8080, 443 → 8443} → `"80=8080,443=8443"` (sorted by service port). */
export function formatHostPorts(ports: ReadonlyMap<number, number>): string {
  return [...ports]
    .sort(([a], [b]) => a - b)
    .map(([port, hostPort]) => `${port}=${hostPort}`)
    .join(',');
}

/** The first IPv4 `status.loadBalancer.ingress[].ip` of a LoadBalancer Service. */
export function loadBalancerAddress(service: ServiceLike): string | undefined {
  const spec = (service.spec ?? {}) as { type?: string };
  if (spec.type !== 'LoadBalancer' || service.metadata.deletionTimestamp) return undefined;
  const ingress = ((service.status ?? {}) as { loadBalancer?: { ingress?: Array<{ ip?: unknown }> } }).loadBalancer?.ingress;
  const ip = Array.isArray(ingress) ? ingress.map((i) => i.ip).find((value): value is string => typeof value === 'string' && /^\d+\.\d+\.\d+\.\d+$/.test(value)) : undefined;
  return ip;
}

/** Every host listener the Services call for, in a stable order. */
export function planHostPorts(services: readonly ServiceLike[]): HostPortRequest[] {
  const requests: HostPortRequest[] = [];
  for (const service of services) {
    const ip = loadBalancerAddress(service);
    if (!ip) continue;
    const key = `${service.metadata.namespace ?? ''}/${service.metadata.name ?? ''}`;
    const recorded = parseHostPorts(service.metadata.annotations?.[HOST_PORTS_ANNOTATION]);
    const ports = ((service.spec ?? {}) as { ports?: Array<{ port?: unknown; protocol?: unknown }> }).ports ?? [];
    for (const entry of ports) {
      const port = entry.port;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) continue;
      if ((typeof entry.protocol === 'string' ? entry.protocol : 'TCP').toUpperCase() !== 'TCP') continue;
      const candidates = [...new Set([recorded.get(port), defaultHostPort(port)].filter((p): p is number => p !== undefined))];
      requests.push({ service: key, port, ip, candidates });
    }
  }
  return requests.sort((a, b) => a.service.localeCompare(b.service) || a.port - b.port);
}
