/**
 * The node agent's xDS source and Telemetry resources (TELEMETRY_TYPE_URL), with a fake client:
 * subscribed only when asked, decoded and checked per resource (NACK with the reason, the last
 * good kept), removals applied, never a mesh-state swap and never needed for readiness.
 */
import { describe, expect, it } from 'vitest';
import { XdsStateSource } from '../../src/node-agent/xds/xds-state-source.js';
import type { MeshSnapshot } from '../../src/node-agent/state/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { TELEMETRY_TYPE_URL, type NamespaceTelemetry } from '../../src/telemetry/telemetry-config.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../src/xds/codec.js';
import type { DeltaClientOptions, DeltaUpdate } from '../../src/xds/delta-client.js';
import { xdsProto } from '../../src/xds/proto.js';
import { encodeTelemetry } from '../../src/xds/telemetry-codec.js';

const demo: NamespaceTelemetry = { namespace: 'demo', settings: { accessLogging: { enabled: false }, sources: ['demo/quiet'] } };
const res = (name: string, resource: Uint8Array): DeltaUpdate['resources'][number] => ({ name, version: 'v', resource });
const telemetry = (resources: DeltaUpdate['resources'], removed: string[] = []): DeltaUpdate => ({ typeUrl: TELEMETRY_TYPE_URL, resources, removed, initial: false });

function harness(withTelemetry: boolean) {
  let options: DeltaClientOptions | undefined;
  const states: MeshSnapshot[] = [];
  const source = new XdsStateSource({
    address: '127.0.0.1:15012',
    credentials: { kind: 'insecure' },
    node: { nodeName: 'node1', podName: 'p', podNamespace: 'amesh-system', podIp: '10.0.0.7', clusterId: 'Kubernetes' },
    trustDomain: 'cluster.local',
    logger: silentLogger,
    telemetry: withTelemetry,
    createClient: (o) => {
      options = o;
      return { start: () => undefined, close: async () => undefined, status: () => ({ connected: true, reconnects: 0, types: {} }) };
    },
  });
  source.start(async (s) => void states.push(s));
  return { source, states, options: () => options!, update: async (u: DeltaUpdate) => new Map((await options!.onUpdate(u)) ?? []) };
}

describe('node agent xDS: Telemetry', () => {
  it('subscribes to Telemetry only when asked', () => {
    expect(harness(false).options().typeUrls).toEqual([ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]);
    expect(harness(true).options().typeUrls).toEqual([ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, TELEMETRY_TYPE_URL]);
  });

  it('applies valid resources, NACKs invalid ones with the reason keeping the last good, applies removals; no state swap, no readiness', async () => {
    const h = harness(true);
    expect(await h.update(telemetry([res('demo', encodeTelemetry(demo))]))).toEqual(new Map());
    expect(h.source.telemetry().get('demo')).toEqual(demo);
    const first = h.source.telemetry();

    // A resource named after another namespace, and one that is no Telemetry at all.
    const renamed = encodeTelemetry({ ...demo, namespace: 'other' });
    const rejected = await h.update(telemetry([res('demo', renamed), res('junk', Uint8Array.of(0xff, 0xff, 0xff))]));
    expect(rejected.get('demo')).toContain('is not the Telemetry\'s namespace');
    expect(rejected.get('junk')).toMatch(/telemetry/i);
    expect(h.source.telemetry()).toBe(first);
    expect(h.source.status()).toMatchObject({ lastNack: { typeUrl: TELEMETRY_TYPE_URL }, resources: { telemetry: 1 } });

    // A schema violation (sampling above 100) is refused by the codec's schema.
    const type = xdsProto().telemetry;
    const bad = type.encode(type.create({ json: JSON.stringify({ ...demo, settings: { ...demo.settings, tracing: { provider: 'otel', endpoint: 'http://c:4318/v1/traces', samplingPercentage: 150 } } }) })).finish();
    expect((await h.update(telemetry([res('demo', bad)]))).get('demo')).toContain('samplingPercentage');
    expect(h.source.telemetry().get('demo')).toEqual(demo);

    await h.update(telemetry([], ['demo']));
    expect(h.source.telemetry().size).toBe(0);
    expect(h.states).toHaveLength(0);
    expect(h.source.isReady()).toBe(false);
  });

  it('without the subscription the type is refused as not served', async () => {
    const h = harness(false);
    expect((await h.update(telemetry([res('demo', encodeTelemetry(demo))]))).get('demo')).toContain('not served');
  });
});
