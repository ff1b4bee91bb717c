import { describe, expect, it } from 'vitest';
import type { MeshResources } from '../../src/controller/mesh/compute-mesh-resources.js';
import { MeshPublisher } from '../../src/controller/xds/mesh-publisher.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { ADDRESS_TYPE_URL } from '../../src/xds/codec.js';

const workload = (uid: string, ip: string, tunnelProtocol: 'HBONE' | 'NONE' = 'HBONE') => ({
  uid,
  name: uid,
  namespace: 'demo',
  addresses: [ip],
  serviceAccount: 'default',
  node: 'n1',
  tunnelProtocol,
  services: {},
});

function mesh(workloads: ReturnType<typeof workload>[]): { resources: () => MeshResources; onChange: () => () => void } {
  const resources = { workloads: new Map(workloads.map((w) => [w.uid, w])), services: new Map(), authorizations: new Map(), waypointBindings: new Map() } as unknown as MeshResources;
  return { resources: () => resources, onChange: () => () => undefined };
}

describe('MeshPublisher', () => {
  it('re-uses the encoding of an unchanged resource and re-encodes a changed one', () => {
    const store = new ResourceStore();
    let current = mesh([workload('a', '10.0.0.1'), workload('b', '10.0.0.2')]);
    const publisher = new MeshPublisher({ mesh: { resources: () => current.resources(), onChange: () => () => undefined }, store, log: silentLogger });
    publisher.publish();
    const a1 = store.get(ADDRESS_TYPE_URL, 'a');
    const b1 = store.get(ADDRESS_TYPE_URL, 'b');
    current = mesh([workload('a', '10.0.0.1'), workload('b', '10.0.0.2', 'NONE')]);
    publisher.publish();
    expect(store.get(ADDRESS_TYPE_URL, 'a')).toBe(a1); // same stored entry: same bytes, same version
    expect(store.get(ADDRESS_TYPE_URL, 'b')?.version).not.toBe(b1?.version);
    current = mesh([workload('a', '10.0.0.1')]);
    publisher.publish();
    expect(store.get(ADDRESS_TYPE_URL, 'b')).toBeUndefined();
  });
});
