/**
 * The controller's Prometheus metrics (prom-client; served on the monitoring port's `/metrics`):
 * - `amesh_xds_connected_proxies{role}`: ADS streams open now, by node-agent / waypoint / gateway
 *   (read from the ADS server at scrape time, so it never drifts);
 * - `amesh_xds_pushes_total{type}` and `amesh_xds_nacks_total{type}`: responses sent and NACKs
 *   received since start, `type` the short type name (`istio.workload.Address`, as istiod's
 *   `pilot_xds_pushes{type}` uses short names);
 * - prom-client's default process metrics (CPU, memory, event loop lag, handles).
 * Each ControllerMetrics has its own Registry, so two controllers in one process (tests) do not
 * collide.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { AdsRole } from '../xds/ads-auth.js';
import type { AdsConnection } from '../xds/ads-server.js';

/** What the metrics read from the ADS server. */
export interface AdsEvents {
  connections(): AdsConnection[];
  on(event: 'push', listener: (typeUrl: string, resources: number, removed: number) => void): unknown;
  on(event: 'nack', listener: (nodeName: string, typeUrl: string) => void): unknown;
}

const ROLES: readonly AdsRole[] = ['node-agent', 'waypoint', 'gateway'];

/** `type.googleapis.com/istio.workload.Address` → `istio.workload.Address`. */
export function shortTypeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

export class ControllerMetrics {
  readonly registry = new Registry();

  constructor(ads: AdsEvents) {
    // 100 ms, not prom-client's 10 ms: that timer alone woke an idle process ~170 times a second
    // (see EVENT_LOOP_MONITORING_PRECISION_MS in src/node-agent/admin.ts).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    new Gauge({
      name: 'amesh_xds_connected_proxies',
      help: 'ADS streams open now, by proxy role',
      labelNames: ['role'],
      registers: [this.registry],
      collect() {
        const counts = new Map<AdsRole, number>(ROLES.map((r) => [r, 0]));
        for (const c of ads.connections()) counts.set(c.role, (counts.get(c.role) ?? 0) + 1);
        for (const [role, n] of counts) this.set({ role }, n);
      },
    });
    const pushes = new Counter({ name: 'amesh_xds_pushes_total', help: 'xDS responses sent, by resource type', labelNames: ['type'], registers: [this.registry] });
    const nacks = new Counter({ name: 'amesh_xds_nacks_total', help: 'xDS responses rejected by a proxy (NACK), by resource type', labelNames: ['type'], registers: [this.registry] });
    ads.on('push', (typeUrl) => pushes.inc({ type: shortTypeName(typeUrl) }));
    ads.on('nack', (_node, typeUrl) => nacks.inc({ type: shortTypeName(typeUrl) }));
  }
}
