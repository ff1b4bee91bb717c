/**
 * The sandbox's LoadBalancer controller (the part of a cloud controller manager, or MetalLB,
 * that hands out addresses): every `type: LoadBalancer` Service gets an address from the
 * sandbox-only pool in `status.loadBalancer.ingress[0].ip`, written through the status
 * subresource. The decisions are load-balancer-ipam.ts's; this file only reads and writes.
 *
 * Invariants: the addresses in use are derived from the stored Services on every reconcile
 * (nothing is cached), so they survive daemon restarts and a Service that is deleted or stops
 * being a LoadBalancer frees its address; a Service that stops being a LoadBalancer has its
 * pool addresses removed from its status. A Service waiting for a free address is retried
 * whenever any Service changes. A warning (requested address unusable, pool full) is recorded
 * as an Event once per distinct message, not on every reconcile.
 */
import type { Logger } from 'pino';
import type { ClusterStore } from '../apiserver/types.js';
import { LoadBalancerPool, loadBalancerView } from '../network/load-balancer-ipam.js';
import type { ControllerDefinition } from './controller-runner.js';
import type { EventRecorder } from './events.js';
import { API, type Service } from './kube-types.js';
import { objectKey, splitKey } from './owner-references.js';
import { sameJson } from './template-hash.js';

export interface LoadBalancerControllerOptions {
  store: ClusterStore;
  log: Logger;
  events: EventRecorder;
  /** The pool CIDR (default LOAD_BALANCER_CIDR). */
  cidr?: string;
}

interface LoadBalancerStatus {
  ingress?: Array<{ ip?: string; hostname?: string; [field: string]: unknown }>;
}

export function loadBalancerController({ store, log, events, cidr }: LoadBalancerControllerOptions): ControllerDefinition {
  const pool = new LoadBalancerPool(cidr);
  const warned = new Map<string, string>();
  const services = (): Service[] => store.list<Service>(API.service.apiVersion, API.service.kind).items;
  const waiting = (): string[] =>
    services()
      .map(loadBalancerView)
      .filter((view) => view.type === 'LoadBalancer' && !view.deleting && !view.ingressIps.some((ip) => pool.contains(ip)))
      .map((view) => view.key);

  return {
    name: 'loadbalancer-controller',
    watches: [
      {
        ...API.service,
        // Any change may free an address a waiting Service can take.
        keys: (event) => [...new Set([objectKey(event.object), ...waiting()])],
      },
    ],
    reconcile(key) {
      const { namespace, name } = splitKey(key);
      const service = store.get<Service>(API.service.apiVersion, API.service.kind, namespace, name);
      if (!service) {
        warned.delete(key);
        return;
      }
      const view = loadBalancerView(service);
      const decision = pool.decide(
        view,
        services().map((s) => (objectKey(s) === key ? view : loadBalancerView(s))),
      );
      const current = ((service.status ?? {}) as { loadBalancer?: LoadBalancerStatus }).loadBalancer ?? {};
      let next: LoadBalancerStatus;
      if (decision.kind === 'none') {
        warned.delete(key);
        const kept = (current.ingress ?? []).filter((entry) => !(typeof entry.ip === 'string' && pool.contains(entry.ip)));
        next = kept.length ? { ...current, ingress: kept } : {};
      } else if (decision.kind === 'pending') {
        next = {};
      } else {
        next = { ingress: [{ ip: decision.ip }] };
      }
      const warning = decision.kind === 'none' ? undefined : decision.warning;
      if (warning && warned.get(key) !== warning) {
        warned.set(key, warning);
        events.record(service, 'Warning', decision.kind === 'pending' ? 'AllocationFailed' : 'LoadBalancerIPNotHonoured', warning);
        log.warn({ service: key }, warning);
      } else if (!warning) warned.delete(key);
      if (sameJson(current, next)) return;
      const status = { ...((service.status ?? {}) as Record<string, unknown>), loadBalancer: next };
      store.update({ ...service, status }, { subresource: 'status', fieldManager: 'loadbalancer-controller' });
      if (decision.kind === 'assign') {
        events.record(service, 'Normal', 'IPAllocated', `Assigned IP ${decision.ip} from the sandbox LoadBalancer pool ${pool.cidr}`);
        log.info({ service: key, ip: decision.ip }, 'assigned a LoadBalancer address');
      } else log.info({ service: key }, 'released LoadBalancer address');
    },
  };
}
