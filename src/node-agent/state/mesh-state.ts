/**
 * Indexed, immutable view of a MeshSnapshot for the data path: lookups by IP are O(1).
 * A new MeshState is built on every config change and swapped in atomically; connections
 * already in flight keep the state they started with.
 */
import type { Authorization, MeshSnapshot, Service, Workload } from './types.js';

export function serviceKey(service: Pick<Service, 'namespace' | 'hostname'>): string {
  return `${service.namespace}/${service.hostname}`;
}

export class MeshState {
  readonly snapshot: MeshSnapshot;
  readonly version: number;
  private readonly workloadsByIp = new Map<string, Workload>();
  private readonly servicesByIp = new Map<string, Service>();
  private readonly servicesByKey = new Map<string, Service>();
  private readonly endpointsByService = new Map<string, Workload[]>();

  constructor(snapshot: MeshSnapshot, version = 0) {
    this.snapshot = snapshot;
    this.version = version;
    for (const w of snapshot.workloads) {
      for (const a of w.addresses) this.workloadsByIp.set(a, w);
      for (const key of Object.keys(w.services)) {
        const list = this.endpointsByService.get(key) ?? [];
        list.push(w);
        this.endpointsByService.set(key, list);
      }
    }
    for (const s of snapshot.services) {
      this.servicesByKey.set(serviceKey(s), s);
      for (const a of s.addresses) this.servicesByIp.set(a, s);
    }
  }

  get trustDomain(): string {
    return this.snapshot.trustDomain;
  }

  workloadByIp(ip: string): Workload | undefined {
    return this.workloadsByIp.get(ip);
  }

  serviceByIp(ip: string): Service | undefined {
    return this.servicesByIp.get(ip);
  }

  serviceByKey(key: string): Service | undefined {
    return this.servicesByKey.get(key);
  }

  /** Workloads selected by the service, healthy ones only. */
  endpoints(service: Service): Workload[] {
    return (this.endpointsByService.get(serviceKey(service)) ?? []).filter((w) => w.status !== 'UNHEALTHY');
  }

  workloadsOnNode(node: string): Workload[] {
    return this.snapshot.workloads.filter((w) => w.node === node);
  }

  /** Workloads on `node` whose traffic the agent captures (ambient-enrolled). */
  enrolledOnNode(node: string): Workload[] {
    return this.workloadsOnNode(node).filter((w) => w.tunnelProtocol === 'HBONE');
  }

  /** The policies that apply to a workload (DESIGN §6 scopes). */
  policiesFor(workload: Workload): Authorization[] {
    const selected = new Set(workload.authorizationPolicies ?? []);
    return this.snapshot.policies.filter((p) => {
      switch (p.scope) {
        case 'GLOBAL':
          return true;
        case 'NAMESPACE':
          return p.namespace === workload.namespace;
        case 'WORKLOAD_SELECTOR':
          return selected.has(`${p.namespace}/${p.name}`);
      }
    });
  }

  identityOf(workload: Workload): string {
    return `spiffe://${workload.trustDomain ?? this.trustDomain}/ns/${workload.namespace}/sa/${workload.serviceAccount}`;
  }
}
