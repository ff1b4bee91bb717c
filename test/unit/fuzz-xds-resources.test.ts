/**
 * What xDS clients accept, on hostile resources (issue #12): the node agent's per-resource checks
 * (Address = workload | service, Authorization, Telemetry; src/node-agent/xds/xds-resources.ts)
 * and the waypoint / gateway config decoder (src/xds/waypoint-codec.ts), fed
 *   random bytes, valid resources with flipped or truncated bytes, and valid resources decoded,
 *   mutated as objects (fuzz-mutate: wrong types, deleted fields, hostile strings) and re-encoded.
 * Properties: a check never throws (a bad resource is a NACK reason, not an exception); what it
 * accepts goes through applyUpdate + the address guard + buildSnapshot into a MeshState without
 * a throw; a waypoint config the decoder accepts builds a route table.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { computeWaypointConfigs } from '../../src/controller/translate/waypoint-config.js';
import { buildRouteTable } from '../../src/l7/router.js';
import { DEFAULT_TELEMETRY } from '../../src/telemetry/telemetry-config.js';
import { MeshState } from '../../src/node-agent/state/mesh-state.js';
import type { Authorization } from '../../src/node-agent/state/types.js';
import { addressGuard, applyUpdate, buildSnapshot, checkAddressResource, checkAuthorizationResource, checkTelemetryResource, type Checked } from '../../src/node-agent/xds/xds-resources.js';
import { authorizationResourceName, decodeAddress, decodeAuthorization, encodeAuthorization, encodeServiceAddress, encodeWorkloadAddress, serviceResourceName, workloadResourceName, type DecodedAddress } from '../../src/xds/codec.js';
import { decodeTelemetry, encodeTelemetry } from '../../src/xds/telemetry-codec.js';
import { xdsProto } from '../../src/xds/proto.js';
import { decodeWaypointConfig, encodeWaypointConfig } from '../../src/xds/waypoint-codec.js';
import { FUZZ_SEED, fuzzCounter, mutations, mutate } from '../helpers/fuzz-mutate.js';
import { CANARY_DR_SPEC, CANARY_VS_SPEC, demoResources, demoView, destinationRule, TRUST_DOMAIN, virtualService } from '../helpers/route-fixtures.js';

const counter = fuzzCounter('xDS clients');
afterAll(() => {
  counter.report();
});

const view = demoView({
  virtualServices: [virtualService(CANARY_VS_SPEC)],
  destinationRules: [destinationRule(CANARY_DR_SPEC)],
  authorizationPolicies: [
    { metadata: { name: 'allow-frontend', namespace: 'demo' }, spec: { selector: { matchLabels: { app: 'backend' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'], ipBlocks: ['10.0.0.0/8'] } }], to: [{ operation: { ports: ['8080'] } }] }] } },
    { metadata: { name: 'deny-admin', namespace: 'demo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { notPorts: ['80'] } }] }] } },
  ],
});
const resources = demoResources(view);
const addresses = [
  ...[...resources.workloads.values()].map((w) => ({ name: workloadResourceName(w), bytes: encodeWorkloadAddress(w) })),
  ...[...resources.services.values()].map((s) => ({ name: serviceResourceName(s), bytes: encodeServiceAddress(s) })),
];
const authorizations = [...resources.authorizations.values()].map((a) => ({ name: authorizationResourceName(a), bytes: encodeAuthorization(a) }));
const telemetry = { name: 'demo', bytes: encodeTelemetry({ namespace: 'demo', settings: { ...DEFAULT_TELEMETRY, sources: ['demo/default'] }, workloads: { 'uid-1': { accessLogging: { enabled: false }, sources: ['demo/one'] } } }) };
const waypointConfigs = [...computeWaypointConfigs(view, resources, { trustDomain: TRUST_DOMAIN }).configs.values()].map((c) => encodeWaypointConfig(c));

/** Corrupt `bytes`: flip some, truncate, or append. */
const corrupted = (sources: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> =>
  fc.tuple(fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }), fc.option(fc.nat()), fc.uint8Array({ maxLength: 8 })).map(([which, flips, cut, tail]) => {
    const src = sources[which % sources.length] as Uint8Array;
    const copy = Buffer.from(src);
    for (const [at, xor] of flips) if (copy.length) copy[at % copy.length] = (copy[at % copy.length] as number) ^ xor;
    const cutAt = cut === null ? copy.length : cut % (copy.length + 1);
    return new Uint8Array(Buffer.concat([copy.subarray(0, cutAt), Buffer.from(tail)]));
  });

/** Decode, mutate as an object, re-encode; undefined when the encoder refuses the mutant. */
function mutant<T>(bytes: Uint8Array, decode: (b: Uint8Array) => T, encode: (v: T) => Uint8Array, list: Parameters<typeof mutate>[1]): Uint8Array | undefined {
  try {
    return encode(mutate(decode(bytes), list));
  } catch {
    return undefined;
  }
}

/** Everything the agent does with one response's checked Address and Authorization upserts. */
function applyAll(address: ReadonlyArray<{ name: string; checked: Checked<DecodedAddress> }>, authorization: ReadonlyArray<{ name: string; checked: Checked<Authorization> }>): void {
  const a = applyUpdate(new Map(), address, [], addressGuard);
  const z = applyUpdate(new Map(), authorization, []);
  for (const reason of [...a.rejected.values(), ...z.rejected.values()]) expect(typeof reason).toBe('string');
  new MeshState(buildSnapshot(TRUST_DOMAIN, a.next, z.next));
}

describe('node agent xDS resources on hostile bytes (fast-check)', () => {
  it('the fixtures are accepted as sent (the baseline)', () => {
    const checked = addresses.map((r) => ({ name: r.name, checked: checkAddressResource(r.name, r.bytes, TRUST_DOMAIN) }));
    expect(checked.every((c) => c.checked.ok)).toBe(true);
    expect(authorizations.every((r) => checkAuthorizationResource(r.name, r.bytes).ok)).toBe(true);
    expect(checkTelemetryResource(telemetry.name, telemetry.bytes).ok).toBe(true);
    expect(authorizations.length).toBeGreaterThan(1);
    expect(waypointConfigs.length).toBeGreaterThan(0);
  });

  it('random bytes: a reason, never a throw', { timeout: 60_000 }, () => {
    const runs = 1000;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.string({ maxLength: 40 }), (bytes, name) => {
        for (const c of [checkAddressResource(name, bytes, TRUST_DOMAIN), checkAuthorizationResource(name, bytes), checkTelemetryResource(name, bytes)]) if (!c.ok) expect(c.reason.length).toBeGreaterThan(0);
      }),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('random bytes x 3 resource types', runs);
  });

  it('corrupted valid resources: checked without a throw; what is accepted builds a MeshState', { timeout: 60_000 }, () => {
    const runs = 1000;
    fc.assert(
      fc.property(fc.array(corrupted(addresses.map((a) => a.bytes)), { maxLength: 4 }), fc.array(corrupted(authorizations.map((a) => a.bytes)), { maxLength: 3 }), corrupted([telemetry.bytes]), (addr, authz, tel) => {
        const checkedAddresses = addr.map((bytes) => {
          const name = safeName(() => {
            const d = decodeAddress(bytes);
            return d.kind === 'workload' ? workloadResourceName(d.workload) : serviceResourceName(d.service);
          });
          return { name, checked: checkAddressResource(name, bytes, TRUST_DOMAIN) };
        });
        const checkedAuthz = authz.map((bytes) => {
          const name = safeName(() => authorizationResourceName(decodeAuthorization(bytes)));
          return { name, checked: checkAuthorizationResource(name, bytes) };
        });
        checkTelemetryResource('demo', tel);
        applyAll(checkedAddresses, checkedAuthz);
      }),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('corrupted Address/Authorization/Telemetry bytes (flip, truncate, append)', runs);
  });

  it('mutated objects re-encoded (wrong types, missing fields, hostile strings): checked without a throw; what is accepted builds a MeshState', { timeout: 60_000 }, () => {
    const runs = 600;
    let accepted = 0;
    let encoded = 0;
    fc.assert(
      fc.property(fc.nat(), mutations(3), fc.nat(), mutations(3), (ai, alist, zi, zlist) => {
        const address = addresses[ai % addresses.length] as { name: string; bytes: Uint8Array };
        const encodeAddress = (d: DecodedAddress): Uint8Array => (d.kind === 'workload' ? encodeWorkloadAddress(d.workload) : encodeServiceAddress(d.service));
        const aBytes = mutant(address.bytes, decodeAddress, encodeAddress, alist);
        const authz = authorizations[zi % authorizations.length] as { name: string; bytes: Uint8Array };
        const zBytes = mutant(authz.bytes, decodeAuthorization, encodeAuthorization, zlist);
        const checkedAddresses = aBytes ? [{ name: address.name, checked: checkAddressResource(address.name, aBytes, TRUST_DOMAIN) }] : [];
        const checkedAuthz = zBytes ? [{ name: authz.name, checked: checkAuthorizationResource(authz.name, zBytes) }] : [];
        encoded += checkedAddresses.length + checkedAuthz.length;
        accepted += [...checkedAddresses, ...checkedAuthz].filter((c) => c.checked.ok).length;
        const t = mutant(telemetry.bytes, decodeTelemetry, encodeTelemetry, alist);
        if (t) checkTelemetryResource('demo', t);
        applyAll(checkedAddresses, checkedAuthz);
      }),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('mutated Address/Authorization/Telemetry objects, re-encoded', runs);
    expect(encoded).toBeGreaterThan(runs / 2);
    expect(accepted).toBeGreaterThan(0);
  });
});

describe('waypoint / gateway config decoder on hostile bytes (fast-check)', () => {
  it('decodes or refuses with an error; an accepted config builds a route table', { timeout: 60_000 }, () => {
    const runs = 500;
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(corrupted(waypointConfigs), fc.tuple(fc.nat(), mutations(4)).map(([i, list]) => mutant(waypointConfigs[i % waypointConfigs.length] as Uint8Array, decodeWaypointConfig, rawEnvelope, list) ?? new Uint8Array())), (bytes) => {
        let config;
        try {
          config = decodeWaypointConfig(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          return;
        }
        accepted++;
        buildRouteTable(config);
      }),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('waypoint configs: corrupted bytes and mutated objects', runs);
    expect(accepted).toBeGreaterThan(0);
  });
});

function safeName(read: () => string): string {
  try {
    return read();
  } catch {
    return 'undecodable';
  }
}

/** The JSON envelope without the encoder's schema check (json-envelope.ts), so mutants reach the decoder's own check. */
function rawEnvelope(value: unknown): Uint8Array {
  const type = xdsProto().waypointConfig;
  return type.encode(type.create({ json: JSON.stringify(value) })).finish();
}
