/**
 * Every CRD translator on hostile YAML (issue #12): all sample manifests (samples/**) as one
 * cluster, then one to three of their objects mutated by fast-check at random spec paths (values
 * of any JSON type, deleted keys, huge and odd strings, duplicated list items) — what the API
 * server lets through for a CRD installed without its schema, or for a schema we do not check.
 * The whole controller pipeline runs on it, as the publishers do:
 *   computeMesh (Services, Pods, PeerAuthentication, AuthorizationPolicy → workloads, services,
 *   L4 authorizations), computeWaypointConfigs (VirtualService, DestinationRule, HTTPRoute,
 *   GRPCRoute, L7 AuthorizationPolicy, RequestAuthentication), computeIngress (Gateway both
 *   APIs, TLSRoute, TCPRoute, Secrets), parseMeshConfig + computeTelemetry (Telemetry, the mesh
 *   ConfigMap), and the policy status conditions.
 * Properties: nothing throws; every resource produced encodes for xDS; every waypoint / gateway
 * config passes the schema the proxies decode with. Plus the same with objects of pure noise
 * as specs. Fixed seed, bounded runs; the counts print at the end for the README.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { computeMesh, type KubeObjectLike, type MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import { authorizationPolicyConditions, peerAuthenticationConditions, placementContext, requestAuthenticationConditions } from '../../src/controller/status/policy-status.js';
import type { AuthorizationPolicyObject } from '../../src/controller/translate/authorization-policy.js';
import type { NamespaceObject, PodObject } from '../../src/controller/translate/enrolment.js';
import { computeIngress } from '../../src/controller/translate/ingress-config.js';
import { parseMeshConfig, type ConfigMapObject } from '../../src/controller/translate/mesh-config.js';
import type { PeerAuthenticationObject } from '../../src/controller/translate/peer-authentication.js';
import type { RequestAuthenticationObject } from '../../src/controller/translate/request-authentication.js';
import type { ServiceObject } from '../../src/controller/translate/service.js';
import { computeTelemetry, type TelemetryObject } from '../../src/controller/translate/telemetry.js';
import { computeWaypointConfigs } from '../../src/controller/translate/waypoint-config.js';
import type { WaypointConfig } from '../../src/l7/config.js';
import { encodeAuthorization, encodeServiceAddress, encodeWorkloadAddress } from '../../src/xds/codec.js';
import { encodeTelemetry } from '../../src/xds/telemetry-codec.js';
import { encodeWaypointConfig } from '../../src/xds/waypoint-codec.js';
import { assertValid, loadYaml, REPO, tlsSecret } from '../helpers/ingress-fixtures.js';
import { CANARY_DR_SPEC, CANARY_VS_SPEC, demoResources, demoView, destinationRule, virtualService } from '../helpers/route-fixtures.js';
import { FUZZ_SEED, fuzzCounter, hostileJson, hostileString, mutations, mutate } from '../helpers/fuzz-mutate.js';

const TRUST_DOMAIN = 'cluster.local';
const ROOT = 'amesh-system';
const counter = fuzzCounter('CRD translators');

/** Every sample manifest, in file order. */
function sampleObjects(): KubeObjectLike[] {
  const files = readdirSync(join(REPO, 'samples'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  return files.flatMap((f) => loadYaml(join('samples', f)));
}

interface DeploymentLike extends KubeObjectLike {
  spec?: { template?: { metadata?: { labels?: Record<string, string> }; spec?: { serviceAccountName?: string } } };
}

/** The cluster as the controller's informers list it; Deployments become one ready pod each, Gateways (waypoints and ingress) get one too. */
function viewOf(objects: readonly KubeObjectLike[]): MeshView {
  const view: Required<Pick<MeshView, 'gateways' | 'istioGateways' | 'httpRoutes' | 'grpcRoutes' | 'tlsRoutes' | 'tcpRoutes' | 'virtualServices' | 'destinationRules' | 'secrets' | 'telemetries' | 'meshConfigMaps'>> & {
    namespaces: NamespaceObject[];
    pods: PodObject[];
    services: ServiceObject[];
    authorizationPolicies: AuthorizationPolicyObject[];
    peerAuthentications: PeerAuthenticationObject[];
    requestAuthentications: RequestAuthenticationObject[];
  } = {
    namespaces: [],
    pods: [],
    services: [],
    authorizationPolicies: [],
    peerAuthentications: [],
    requestAuthentications: [],
    gateways: [],
    istioGateways: [],
    httpRoutes: [],
    grpcRoutes: [],
    tlsRoutes: [],
    tcpRoutes: [],
    virtualServices: [],
    destinationRules: [],
    secrets: [],
    telemetries: [],
    meshConfigMaps: [],
  };
  const namespaces = new Set<string>([ROOT]);
  objects.forEach((o, i) => {
    const ns = o.metadata?.namespace ?? 'default';
    const group = (o.apiVersion ?? '').split('/')[0] ?? '';
    namespaces.add(ns);
    const push = (list: readonly unknown[]): number => (list as unknown[]).push(o);
    switch (o.kind) {
      case 'Namespace':
        namespaces.add(o.metadata.name ?? '');
        break;
      case 'Service':
        view.services.push({ ...(o as ServiceObject), spec: { clusterIP: `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`, ...(o as ServiceObject).spec } });
        break;
      case 'Deployment': {
        const d = o as DeploymentLike;
        const name = `${d.metadata.name ?? ''}-0`;
        view.pods.push({
          metadata: { name, namespace: ns, uid: `uid-pod-${ns}-${name}`, labels: { ...(d.spec?.template?.metadata?.labels ?? {}) } },
          spec: { nodeName: 'node1', serviceAccountName: d.spec?.template?.spec?.serviceAccountName ?? 'default' },
          status: { phase: 'Running', podIP: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`, conditions: [{ type: 'Ready', status: 'True' }] },
        });
        break;
      }
      case 'Gateway':
        push(group === 'networking.istio.io' ? view.istioGateways : view.gateways);
        break;
      case 'HTTPRoute':
        push(view.httpRoutes);
        break;
      case 'GRPCRoute':
        push(view.grpcRoutes);
        break;
      case 'TLSRoute':
        push(view.tlsRoutes);
        break;
      case 'TCPRoute':
        push(view.tcpRoutes);
        break;
      case 'VirtualService':
        push(view.virtualServices);
        break;
      case 'DestinationRule':
        push(view.destinationRules);
        break;
      case 'AuthorizationPolicy':
        push(view.authorizationPolicies);
        break;
      case 'PeerAuthentication':
        push(view.peerAuthentications);
        break;
      case 'RequestAuthentication':
        push(view.requestAuthentications);
        break;
      case 'Telemetry':
        push(view.telemetries);
        break;
      case 'ConfigMap':
        push(view.meshConfigMaps);
        break;
      case 'Secret':
        push(view.secrets);
        break;
      default:
        break;
    }
  });
  view.namespaces = [...namespaces].map((name) => ({ metadata: { name, labels: { 'istio.io/dataplane-mode': 'ambient' } } }));
  return view;
}

/** Everything the publishers do with a view; throws on the first broken property. */
function runPipeline(view: MeshView): { workloads: number; authorizations: number; configs: number } {
  const mesh = computeMesh(view, { trustDomain: TRUST_DOMAIN, rootNamespace: ROOT });
  const { resources } = mesh;
  for (const w of resources.workloads.values()) encodeWorkloadAddress(w);
  for (const s of resources.services.values()) encodeServiceAddress(s);
  for (const a of resources.authorizations.values()) encodeAuthorization(a);
  const waypoints = computeWaypointConfigs(view, resources, { trustDomain: TRUST_DOMAIN, rootNamespace: ROOT });
  const ingress = computeIngress(view, resources, { trustDomain: TRUST_DOMAIN, waypointLastValid: waypoints.valid });
  const configs: WaypointConfig[] = [...waypoints.configs.values(), ...ingress.configs.values()];
  for (const config of configs) {
    assertValid(config);
    encodeWaypointConfig(config);
  }
  const meshConfig = parseMeshConfig(view.meshConfigMaps?.[0] as ConfigMapObject | undefined);
  const telemetry = computeTelemetry({
    telemetries: (view.telemetries ?? []) as TelemetryObject[],
    meshConfig: meshConfig.config,
    pods: view.pods,
    rootNamespace: ROOT,
    proxies: configs.map((c) => ({ key: `${c.namespace}/${c.name}`, namespace: c.namespace, gateway: c.name, podLabels: {} })),
  });
  for (const t of telemetry.namespaces.values()) encodeTelemetry(t);
  const placement = placementContext(view, resources);
  for (const p of view.authorizationPolicies ?? []) authorizationPolicyConditions(p, ROOT, placement);
  for (const p of view.requestAuthentications ?? []) requestAuthenticationConditions(p, ROOT, placement);
  for (const p of view.peerAuthentications ?? []) peerAuthenticationConditions(p, ROOT);
  return { workloads: resources.workloads.size, authorizations: resources.authorizations.size, configs: configs.length };
}

describe('CRD translators on hostile input (fast-check)', async () => {
  const seeds = [...sampleObjects(), await tlsSecret('demo', 'frontend-credential'), await tlsSecret('demo', 'nginx-credential')];
  /**
   * The objects to mutate: the custom resources. Their CRDs (daemonset/crds/*.yaml) keep unknown
   * fields (`x-kubernetes-preserve-unknown-fields`), so any JSON reaches the controller; core
   * kinds (Service, Pod, Secret, ConfigMap) are validated by the API server and get string fuzz
   * in their free-text fields below.
   */
  const targets = seeds.map((o, i) => ({ o, i })).filter(({ o }) => /(^|\.)istio\.io\/|^gateway\.networking\.k8s\.io\//.test(o.apiVersion ?? ''));

  afterAll(() => {
    counter.report();
  });

  it('the unmutated samples translate into real configs (the baseline the mutations start from)', () => {
    const out = runPipeline(viewOf(seeds));
    expect(out.workloads).toBeGreaterThan(5);
    expect(out.authorizations).toBeGreaterThan(0);
    expect(out.configs).toBeGreaterThan(1);
  });

  it('never throws, and produces only encodable, schema-valid output, when 1–3 objects are mutated', { timeout: 60_000 }, () => {
    const runs = 400;
    let kinds = new Set<string>();
    fc.assert(
      fc.property(fc.array(fc.record({ target: fc.nat(), list: mutations(4) }), { minLength: 1, maxLength: 3 }), (edits) => {
        const objects = [...seeds];
        for (const { target, list } of edits) {
          const { o, i } = targets[target % targets.length] as { o: KubeObjectLike; i: number };
          kinds.add(o.kind ?? '?');
          objects[i] = mutate(o, list, ['metadata', 'apiVersion', 'kind']);
        }
        runPipeline(viewOf(objects));
      }),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('mutated sample objects (whole pipeline)', runs);
    // The mutations reached every kind the samples hold (or the fuzz is not exercising them).
    expect([...kinds].sort()).toEqual(expect.arrayContaining(['AuthorizationPolicy', 'DestinationRule', 'Gateway', 'HTTPRoute', 'PeerAuthentication', 'RequestAuthentication', 'TLSRoute', 'Telemetry', 'VirtualService']));
    kinds = new Set();
  });

  it('never throws when an object’s spec is replaced by arbitrary JSON, kind by kind', { timeout: 60_000 }, () => {
    const kinds = [...new Set(targets.map(({ o }) => o.kind ?? ''))].sort();
    const runsPerKind = 40;
    for (const kind of kinds) {
      const ofKind = targets.filter(({ o }) => o.kind === kind);
      fc.assert(
        fc.property(fc.nat(), hostileJson, (pick, spec) => {
          const { o, i } = ofKind[pick % ofKind.length] as { o: KubeObjectLike; i: number };
          const objects = [...seeds];
          objects[i] = { ...o, spec } as KubeObjectLike;
          runPipeline(viewOf(objects));
        }),
        { seed: FUZZ_SEED, numRuns: runsPerKind },
      );
      counter.add(`${kind}: spec replaced by arbitrary JSON`, runsPerKind);
    }
  });

  it('never throws on hostile text in the mesh ConfigMap and in TLS Secrets (fields the API server does not parse)', { timeout: 60_000 }, () => {
    const configMap = seeds.findIndex((o) => o.kind === 'ConfigMap');
    const secret = seeds.findIndex((o) => o.kind === 'Secret' && o.metadata.name === 'frontend-credential');
    expect(configMap).toBeGreaterThanOrEqual(0);
    const runs = 150;
    const text = fc.oneof(hostileString, hostileJson.map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }));
    fc.assert(
      fc.property(text, text, fc.boolean(), (mesh, pem, base64) => {
        const objects = [...seeds];
        const cm = objects[configMap] as KubeObjectLike & { data?: Record<string, string> };
        objects[configMap] = { ...cm, data: { ...cm.data, mesh } } as KubeObjectLike;
        const s = objects[secret] as KubeObjectLike & { data: Record<string, string> };
        objects[secret] = { ...s, data: { ...s.data, [base64 ? 'tls.crt' : 'tls.key']: base64 ? Buffer.from(pem).toString('base64') : pem } } as KubeObjectLike;
        runPipeline(viewOf(objects));
      }),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('mesh ConfigMap text + TLS Secret data', runs);
  });
});

describe('a malformed object is its own problem (contain.ts)', () => {
  const seeds = sampleObjects();
  it('a VirtualService whose http is a string is refused with InvalidSpec; the other objects still translate', () => {
    const view = demoView({
      virtualServices: [virtualService({ ...CANARY_VS_SPEC, http: 'oops' }, 'broken'), virtualService({ hosts: ['frontend'], http: [{ route: [{ destination: { host: 'frontend' } }] }] }, 'frontend')],
      destinationRules: [destinationRule(CANARY_DR_SPEC)],
    });
    const result = computeWaypointConfigs(view, demoResources(view), { trustDomain: TRUST_DOMAIN });
    expect(result.status.get('VirtualService/demo/broken')?.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'False', reason: 'InvalidSpec', message: expect.stringContaining('wrong type') });
    expect(result.status.get('VirtualService/demo/frontend')?.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'True' });
    expect(result.status.get('DestinationRule/demo/backend')?.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'True' });
  });

  it('an L4 AuthorizationPolicy with unreadable rules fails closed: ALLOW allows nothing, DENY denies everything', () => {
    const policy = (action: string, rules: unknown): AuthorizationPolicyObject => ({ metadata: { name: 'p', namespace: 'demo' }, spec: { action, rules } as AuthorizationPolicyObject['spec'] });
    const view = (p: AuthorizationPolicyObject): MeshView => ({ ...viewOf(seeds), authorizationPolicies: [p] });
    const translated = (p: AuthorizationPolicyObject) => computeMesh(view(p), { trustDomain: TRUST_DOMAIN, rootNamespace: ROOT }).resources.authorizations.get('demo/p');
    expect(translated(policy('ALLOW', 'x'))).toMatchObject({ action: 'ALLOW', rules: [] });
    expect(translated(policy('DENY', 7))).toMatchObject({ action: 'DENY', rules: [{ clauses: [] }] });
    // One broken rule among good ones: an ALLOW drops it, a DENY keeps it matching everything.
    expect(translated(policy('ALLOW', [{ from: 5 }, { to: [{ operation: { ports: ['80'] } }] }]))?.rules).toHaveLength(1);
    expect(translated(policy('DENY', [{ from: 5 }]))?.rules).toEqual([{ clauses: [] }]);
  });
});
