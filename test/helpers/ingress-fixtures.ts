/**
 * Ingress translator fixtures: the seed YAML files (samples/demo, samples/gateway) parsed with
 * `yaml` into a MeshView as the controller would list it — Deployments become one running, ready
 * pod each (10.0.0.x, node1), Services get a ClusterIP (10.96.0.x), objects get creation times in
 * file order (so "oldest" is the first applied) — plus TLS Secrets with real key pairs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { computeMeshResources, type KubeObjectLike, type MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { NamespaceObject, PodObject } from '../../src/controller/translate/enrolment.js';
import { computeIngress, type IngressOptions } from '../../src/controller/translate/ingress-config.js';
import type { ServiceObject } from '../../src/controller/translate/service.js';
import type { ConditionSpec } from '../../src/controller/status/policy-status.js';
import { generateCa } from '../../src/identity/pki.js';
import { GATEWAY_LISTENER_ADDRESS, type WaypointConfig } from '../../src/l7/config.js';
import { waypointConfigSchema } from '../../src/l7/config-schema.js';
import { buildRouteTable, lookupPort, routeRequest } from '../../src/l7/router.js';

export const REPO = join(import.meta.dirname, '..', '..');
export const TRUST_DOMAIN = 'cluster.local';
export const FRONTEND = 'outbound|80||frontend.demo.svc.cluster.local';
export const NGINX = 'outbound|80||nginx.demo.svc.cluster.local';

export function loadYaml(relative: string): KubeObjectLike[] {
  const text = readFileSync(join(REPO, relative), 'utf8');
  return parseAllDocuments(text)
    .map((d) => d.toJS() as KubeObjectLike | null)
    .filter((o): o is KubeObjectLike => o !== null && typeof o === 'object');
}

interface DeploymentLike extends KubeObjectLike {
  spec?: { template?: { metadata?: { labels?: Record<string, string> }; spec?: { serviceAccountName?: string; containers?: Array<{ ports?: Array<{ name?: string; containerPort?: number }> }> } } };
}

/** A MeshView of these objects; `demo` is enrolled (ambient) unless `ambient: false`. */
export function viewOf(objects: readonly KubeObjectLike[], opts: { ambient?: boolean; extra?: Partial<MeshView> } = {}): MeshView {
  const podList: PodObject[] = [];
  const serviceList: ServiceObject[] = [];
  const view: MeshView = {
    namespaces: [],
    pods: podList,
    services: serviceList,
    gateways: [],
    istioGateways: [],
    httpRoutes: [],
    grpcRoutes: [],
    tlsRoutes: [],
    tcpRoutes: [],
    virtualServices: [],
    destinationRules: [],
    peerAuthentications: [],
    secrets: [],
  };
  const namespaces = new Map<string, NamespaceObject>();
  const ensureNamespace = (name: string): void => {
    if (!namespaces.has(name)) namespaces.set(name, { metadata: { name, labels: name === 'demo' && opts.ambient !== false ? { 'istio.io/dataplane-mode': 'ambient' } : {} } });
  };
  let pods = 0;
  let services = 0;
  objects.forEach((raw, i) => {
    const o: KubeObjectLike = structuredClone(raw);
    const ns = o.metadata.namespace ?? 'default';
    o.metadata = { ...o.metadata, uid: o.metadata.uid ?? `uid-${o.kind ?? '?'}-${ns}-${o.metadata.name ?? ''}`, generation: o.metadata.generation ?? 1, creationTimestamp: o.metadata.creationTimestamp ?? `2026-01-01T00:${String(Math.floor(i / 60)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}Z` };
    const group = (o.apiVersion ?? '').split('/')[0] ?? '';
    if (o.kind === 'Namespace') {
      ensureNamespace(o.metadata.name ?? '');
      return;
    }
    ensureNamespace(ns);
    const push = <K extends keyof MeshView>(key: K, value: KubeObjectLike): void => {
      (view[key] as unknown as KubeObjectLike[]).push(value);
    };
    switch (o.kind) {
      case 'Gateway':
        push(group === 'networking.istio.io' ? 'istioGateways' : 'gateways', o);
        break;
      case 'HTTPRoute':
        push('httpRoutes', o);
        break;
      case 'GRPCRoute':
        push('grpcRoutes', o);
        break;
      case 'TLSRoute':
        push('tlsRoutes', o);
        break;
      case 'TCPRoute':
        push('tcpRoutes', o);
        break;
      case 'VirtualService':
        push('virtualServices', o);
        break;
      case 'DestinationRule':
        push('destinationRules', o);
        break;
      case 'PeerAuthentication':
        push('peerAuthentications', o);
        break;
      case 'Secret':
        push('secrets', o);
        break;
      case 'Service': {
        services += 1;
        const s = o as ServiceObject;
        serviceList.push({ ...s, spec: { clusterIP: `10.96.0.${services}`, ...s.spec } });
        break;
      }
      case 'Deployment': {
        pods += 1;
        const d = o as DeploymentLike;
        const name = `${d.metadata.name ?? ''}-0`;
        const pod: PodObject = {
          metadata: { name, namespace: ns, uid: `uid-pod-${ns}-${name}`, labels: { ...(d.spec?.template?.metadata?.labels ?? {}) } },
          spec: { nodeName: 'node1', serviceAccountName: d.spec?.template?.spec?.serviceAccountName ?? 'default', containers: d.spec?.template?.spec?.containers ?? [] },
          status: { phase: 'Running', podIP: `10.0.0.${pods}`, conditions: [{ type: 'Ready', status: 'True' }] },
        };
        podList.push(pod);
        break;
      }
      default:
        break;
    }
  });
  view.namespaces = [...namespaces.values()];
  return { ...view, ...opts.extra };
}

export function seedView(files: readonly string[], opts: { ambient?: boolean; extra?: Partial<MeshView> } = {}): MeshView {
  return viewOf(
    files.flatMap((f) => loadYaml(f)),
    opts,
  );
}

export function compute(view: MeshView, options: Partial<IngressOptions> = {}) {
  const resources = computeMeshResources(view, { trustDomain: TRUST_DOMAIN });
  return computeIngress(view, resources, { trustDomain: TRUST_DOMAIN, ...options });
}

/** A kubernetes.io/tls Secret with a fresh key pair (a self-signed certificate). */
export async function tlsSecret(namespace: string, name: string): Promise<KubeObjectLike & { type: string; data: Record<string, string> }> {
  const { certPem, keyPem } = await generateCa({ trustDomain: 'example.com', validityDays: 1 });
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, uid: `uid-secret-${namespace}-${name}` },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(certPem).toString('base64'), 'tls.key': Buffer.from(keyPem).toString('base64') },
  };
}

export const DEMO = 'samples/demo/demo.yaml';
export const gatewaySample = (file: string): string => `samples/gateway/${file}`;

/** Where the gateway sends a request on `port` for `host` + `path`: the cluster, `301 <scheme>`, `404`, or `none` (no HTTP port). */
export function routeOf(config: WaypointConfig, port: number, host: string, path = '/'): string {
  const compiled = lookupPort(buildRouteTable(config), GATEWAY_LISTENER_ADDRESS, port);
  if (!compiled) return 'none';
  const decision = routeRequest(compiled, { method: 'GET', path, query: '', headers: { host }, authority: host }, () => 0);
  if (decision.kind === 'forward') return decision.cluster;
  if (decision.kind === 'redirect') return `${decision.redirect.statusCode} ${decision.redirect.scheme ?? ''}`.trim();
  if (decision.kind === 'direct-response') return String(decision.status);
  return decision.kind;
}

export function configOf(result: ReturnType<typeof compute>, key: string): WaypointConfig {
  const config = result.configs.get(key);
  if (!config) throw new Error(`no config ${key}; have ${[...result.configs.keys()].join(', ')}`);
  return config;
}

/** The config passes the schema gateways validate with (throws the zod error otherwise). */
export function assertValid(config: WaypointConfig): void {
  const parsed = waypointConfigSchema.safeParse(config);
  if (!parsed.success) throw new Error(`${config.namespace}/${config.name}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
}

export const condition = (conditions: readonly ConditionSpec[] | undefined, type: string): ConditionSpec | undefined => conditions?.find((c) => c.type === type);
