/**
 * updateMeshResources (pod and node changes applied alone) must give exactly what computeMesh
 * gives over the new view — checked over a seeded random walk of pod and node changes against a
 * view with every input the pod translation reads — and must refuse (undefined) what it cannot
 * do alone.
 */
import { describe, expect, it } from 'vitest';
import { computeMesh, updateMeshResources, type KubeObjectLike, type MeshComputation, type MeshResources, type MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { AuthorizationPolicyObject } from '../../src/controller/translate/authorization-policy.js';
import type { NamespaceObject, PodObject } from '../../src/controller/translate/enrolment.js';
import type { EndpointSliceObject } from '../../src/controller/translate/endpoint-slice.js';
import type { NodeObject } from '../../src/controller/translate/locality.js';
import type { PeerAuthenticationObject } from '../../src/controller/translate/peer-authentication.js';
import type { ServiceObject } from '../../src/controller/translate/service.js';

const OPTIONS = { trustDomain: 'cluster.local' };

/** mulberry32: a small seeded PRNG, so a failure replays. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sorted = <T>(m: ReadonlyMap<string, T>): Array<[string, T]> => [...m].sort(([a], [b]) => a.localeCompare(b));
const normal = (r: MeshResources): unknown =>
  JSON.parse(JSON.stringify({ workloads: sorted(r.workloads), services: sorted(r.services), authorizations: sorted(r.authorizations), bindings: sorted(r.waypointBindings) }));

function pod(ns: string, name: string, ip: string, node: string, labels: Record<string, string>, ready = true): PodObject {
  return {
    metadata: { name, namespace: ns, uid: `uid-${ns}-${name}-${ip}`, labels },
    spec: { nodeName: node, serviceAccountName: `sa-${name.split('-')[0] ?? name}`, containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

interface World {
  namespaces: NamespaceObject[];
  pods: Map<string, PodObject>;
  nodes: Map<string, NodeObject>;
  services: ServiceObject[];
  endpointSlices: EndpointSliceObject[];
  authorizationPolicies: AuthorizationPolicyObject[];
  peerAuthentications: PeerAuthenticationObject[];
  gateways: KubeObjectLike[];
}

const NAMESPACES = ['ns-a', 'ns-b', 'ns-c', 'ns-d', 'amesh-system'];
const APPS = ['web', 'api', 'db'];

function world(): World {
  const w: World = {
    namespaces: NAMESPACES.map((name, i): NamespaceObject => ({ metadata: { name, labels: i % 2 === 0 ? { 'istio.io/dataplane-mode': 'ambient' } : {} } })),
    pods: new Map(),
    nodes: new Map(['n0', 'n1', 'n2'].map((name, i): [string, NodeObject] => [name, { metadata: { name, labels: i === 2 ? {} : { 'topology.kubernetes.io/region': 'r', 'topology.kubernetes.io/zone': `z${i}` } } }])),
    services: [],
    endpointSlices: [],
    authorizationPolicies: [],
    peerAuthentications: [
      { metadata: { name: 'mesh', namespace: 'amesh-system', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { mtls: { mode: 'STRICT' } } },
      { metadata: { name: 'open-db', namespace: 'ns-b', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'PERMISSIVE' } } },
      { metadata: { name: 'ports', namespace: 'ns-c', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { selector: { matchLabels: { app: 'api' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9090': { mode: 'PERMISSIVE' } } } },
      // Few pods carry `rare`: the policy's authorization comes and goes with them.
      { metadata: { name: 'rare', namespace: 'ns-a', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { selector: { matchLabels: { rare: 'yes' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '7070': { mode: 'PERMISSIVE' } } } },
    ],
    gateways: [{ metadata: { name: 'waypoint', namespace: 'ns-a', uid: 'gw-a', labels: { 'istio.io/waypoint-for': 'all' } }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ port: 15008, protocol: 'HBONE' }] } }],
  };
  const first = w.namespaces[0];
  if (first) first.metadata.labels = { ...first.metadata.labels, 'istio.io/use-waypoint': 'waypoint' };
  NAMESPACES.forEach((ns, n) => {
    APPS.forEach((app, s) => {
      w.services.push({ metadata: { name: app, namespace: ns }, spec: { clusterIP: `10.96.${n}.${s + 1}`, selector: { app }, ports: [{ port: 80, targetPort: 'http' }] } });
    });
    w.authorizationPolicies.push({ metadata: { name: `allow-${ns}`, namespace: ns }, spec: { selector: { matchLabels: { app: 'api' } }, rules: [{ from: [{ source: { namespaces: [ns] } }] }] } });
    for (let p = 0; p < 8; p++) {
      const name = `${APPS[p % 3]}-${p}`;
      w.pods.set(`${ns}/${name}`, pod(ns, name, `10.244.${n}.${p + 1}`, `n${p % 3}`, { app: APPS[p % 3] ?? 'web' }));
    }
  });
  // A selector-less Service with one slice address held by a pod, one not.
  w.services.push({ metadata: { name: 'legacy', namespace: 'ns-d' }, spec: { clusterIP: '10.96.9.9', ports: [{ port: 5432 }] } });
  w.endpointSlices.push({ metadata: { name: 'legacy-1', namespace: 'ns-d', labels: { 'kubernetes.io/service-name': 'legacy' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.3.1', '192.168.7.7'] }], ports: [{ port: 6432 }] });
  return w;
}

const viewOf = (w: World): MeshView => ({
  namespaces: w.namespaces,
  pods: [...w.pods.values()],
  services: w.services,
  nodes: [...w.nodes.values()],
  endpointSlices: w.endpointSlices,
  authorizationPolicies: w.authorizationPolicies,
  peerAuthentications: w.peerAuthentications,
  gateways: w.gateways,
});

describe('updateMeshResources', () => {
  it('equals a full computation after every step of a random walk of pod and node changes', () => {
    const random = rng(20261202);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
    const w = world();
    let current: MeshComputation = computeMesh(viewOf(w), OPTIONS);
    let nextIp = 100;
    let incremental = 0;
    let refused = 0;
    const steps = 200;
    let revert: [string, PodObject] | undefined;
    for (let step = 0; step < steps; step++) {
      const changed = new Map<string, PodObject | undefined>();
      if (revert) {
        // Undo the last collision (or every later step would be a full computation).
        w.pods.set(revert[0], revert[1]);
        changed.set(revert[0], revert[1]);
        revert = undefined;
      }
      const keys = [...w.pods.keys()];
      const key = pick(keys);
      const p = w.pods.get(key) as PodObject;
      const ns = p.metadata.namespace ?? '';
      const op = pick(['label', 'app', 'ready', 'delete', 'add', 'node', 'opt-out', 'collide', 'two', 'rare', 'rare'] as const);
      const update = (k: string, next: PodObject | undefined): void => {
        if (next) w.pods.set(k, next);
        else w.pods.delete(k);
        changed.set(k, next);
      };
      switch (op) {
        case 'label':
          update(key, { ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, 'topology.istio.io/locality': pick(['x.y', 'x.y.z', '']) } } });
          break;
        case 'app':
          update(key, { ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, app: pick(APPS) } } });
          break;
        case 'ready':
          update(key, pod(ns, p.metadata.name ?? '', p.status?.podIP ?? '', p.spec?.nodeName ?? '', p.metadata.labels ?? {}, random() < 0.5));
          break;
        case 'delete':
          update(key, undefined);
          break;
        case 'add': {
          const name = `${pick(APPS)}-x${nextIp}`;
          const target = pick(NAMESPACES);
          update(`${target}/${name}`, pod(target, name, `10.250.0.${nextIp++ % 250}`, pick(['n0', 'n1', 'n2', 'gone']), { app: name.split('-')[0] ?? 'web' }));
          break;
        }
        case 'node': {
          const node = pick(['n0', 'n1', 'n2']);
          w.nodes.set(node, { metadata: { name: node, labels: { 'topology.kubernetes.io/zone': `z${step}` } } });
          for (const [k, other] of w.pods) if (other.spec?.nodeName === node) changed.set(k, other);
          break;
        }
        case 'rare': {
          const target = pick(keys.filter((k) => k.startsWith('ns-a/')));
          const t = w.pods.get(target) as PodObject;
          const { rare, ...rest } = t.metadata.labels ?? {};
          update(target, { ...t, metadata: { ...t.metadata, labels: rare ? rest : { ...rest, rare: 'yes' } } });
          break;
        }
        case 'opt-out':
          update(key, { ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, 'istio.io/dataplane-mode': p.metadata.labels?.['istio.io/dataplane-mode'] === 'none' ? 'ambient' : 'none' } } });
          break;
        case 'collide': {
          // Takes another pod's address: only a full computation knows which one to keep.
          const other = w.pods.get(pick(keys.filter((k) => k !== key))) as PodObject;
          update(key, { ...p, status: { ...p.status, podIP: other.status?.podIP ?? '' } });
          revert = [key, p];
          break;
        }
        case 'two': {
          const other = pick(keys.filter((k) => k !== key));
          const o = w.pods.get(other) as PodObject;
          update(key, { ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, app: pick(APPS) } } });
          update(other, { ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, app: pick(APPS) } } });
          break;
        }
      }
      const full = computeMesh(viewOf(w), OPTIONS);
      const updated = updateMeshResources(current, changed, new Map(w.nodes));
      if (updated) {
        incremental++;
        expect(normal(updated.resources), `step ${step} (${op} ${key})`).toEqual(normal(full.resources));
      } else refused++;
      current = updated ?? full;
    }
    // Most steps are plain pod changes it can apply alone; collisions and the slice address are not.
    expect(incremental).toBeGreaterThan(steps / 2);
    expect(refused).toBeGreaterThan(0);
  }, 60_000);

  it('keeps untouched resources as the same objects (the publisher skips them)', () => {
    const w = world();
    const before = computeMesh(viewOf(w), OPTIONS);
    const key = 'ns-b/web-0';
    const p = w.pods.get(key) as PodObject;
    const next = { ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, 'istio.io/dataplane-mode': 'ambient' } } };
    const after = updateMeshResources(before, new Map([[key, next]]), new Map(w.nodes));
    if (!after) throw new Error('refused a plain label change');
    const uid = next.metadata.uid ?? '';
    expect(after.resources.workloads.get(uid)?.tunnelProtocol).toBe('HBONE');
    expect(before.resources.workloads.get(uid)?.tunnelProtocol).toBe('NONE'); // the previous computation is left as it was
    for (const [k, v] of before.resources.workloads) if (k !== uid) expect(after.resources.workloads.get(k)).toBe(v);
    expect(after.resources.services).toBe(before.resources.services);
  });

  it.each([
    ['a pod takes an address another pod holds', (w: World) => ['ns-b/web-0', { ...(w.pods.get('ns-b/web-0') as PodObject), status: { phase: 'Running', podIP: '10.244.2.2' } }] as const],
    ['a pod takes an address a selector-less Service lists', (w: World) => ['ns-b/web-0', { ...(w.pods.get('ns-b/web-0') as PodObject), status: { phase: 'Running', podIP: '192.168.7.7' } }] as const],
    ['the pod holding a selector-less Service address goes', () => ['ns-d/web-0', undefined] as const],
  ])('refuses (full recomputation) when %s', (_what, change) => {
    const w = world();
    const before = computeMesh(viewOf(w), OPTIONS);
    const [key, next] = change(w);
    expect(updateMeshResources(before, new Map([[key, next]]), new Map(w.nodes))).toBeUndefined();
  });

  it('refuses in a namespace with a per-service-account waypoint, and after a full computation saw an address twice', () => {
    const w = world();
    w.gateways.push({ metadata: { name: 'sa-waypoint', namespace: 'ns-c', uid: 'gw-c', labels: { 'istio.io/waypoint-for': 'all' }, annotations: { 'amesh.io/for-service-account': 'sa-web' } }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ port: 15008, protocol: 'HBONE' }] } });
    const before = computeMesh(viewOf(w), OPTIONS);
    expect(updateMeshResources(before, new Map([['ns-c/web-0', w.pods.get('ns-c/web-0')]]), new Map(w.nodes))).toBeUndefined();
    expect(updateMeshResources(before, new Map([['ns-b/web-0', w.pods.get('ns-b/web-0')]]), new Map(w.nodes))).toBeDefined();
    const twice = world();
    twice.pods.set('ns-b/dup', pod('ns-b', 'dup', '10.244.0.1', 'n0', {}));
    const collided = computeMesh(viewOf(twice), OPTIONS);
    expect(collided.incremental).toBeUndefined();
    expect(updateMeshResources(collided, new Map([['ns-b/web-0', twice.pods.get('ns-b/web-0')]]), new Map(twice.nodes))).toBeUndefined();
  });
});
