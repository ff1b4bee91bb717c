/**
 * The resource types the sandbox API server serves: the built-in table below plus types
 * registered at run time from CustomResourceDefinitions.
 *
 * Storage is keyed by group + kind, not by version: every version of one group/kind (Istio's
 * v1, v1beta1 and v1alpha3 VirtualService) shares one set of objects, and reads rewrite
 * `apiVersion` to the version asked for. The sandbox does no schema conversion between
 * versions — Istio's versions are wire-identical, and CRD versions are served as stored.
 */
import type { KubeObject, ResourceType } from './types.js';

export const STANDARD_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

interface BuiltinSpec {
  group: string;
  versions: string[];
  kind: string;
  plural: string;
  shortNames?: string[];
  namespaced?: boolean;
  status?: boolean;
  categories?: string[];
  verbs?: string[];
}

const ALL = ['all'];
const ISTIO_NETWORKING = ['v1', 'v1beta1', 'v1alpha3'];
const ISTIO_SECURITY = ['v1', 'v1beta1'];

const BUILTINS: BuiltinSpec[] = [
  { group: '', versions: ['v1'], kind: 'Namespace', plural: 'namespaces', shortNames: ['ns'], namespaced: false, status: true },
  { group: '', versions: ['v1'], kind: 'Pod', plural: 'pods', shortNames: ['po'], status: true, categories: ALL },
  { group: '', versions: ['v1'], kind: 'Service', plural: 'services', shortNames: ['svc'], status: true, categories: ALL },
  { group: '', versions: ['v1'], kind: 'Endpoints', plural: 'endpoints', shortNames: ['ep'] },
  { group: '', versions: ['v1'], kind: 'ServiceAccount', plural: 'serviceaccounts', shortNames: ['sa'] },
  { group: '', versions: ['v1'], kind: 'ConfigMap', plural: 'configmaps', shortNames: ['cm'] },
  { group: '', versions: ['v1'], kind: 'Secret', plural: 'secrets' },
  { group: '', versions: ['v1'], kind: 'Node', plural: 'nodes', shortNames: ['no'], namespaced: false, status: true },
  { group: '', versions: ['v1'], kind: 'Event', plural: 'events', shortNames: ['ev'] },
  { group: 'apps', versions: ['v1'], kind: 'Deployment', plural: 'deployments', shortNames: ['deploy'], status: true, categories: ALL },
  { group: 'apps', versions: ['v1'], kind: 'ReplicaSet', plural: 'replicasets', shortNames: ['rs'], status: true, categories: ALL },
  { group: 'apps', versions: ['v1'], kind: 'DaemonSet', plural: 'daemonsets', shortNames: ['ds'], status: true, categories: ALL },
  { group: 'discovery.k8s.io', versions: ['v1'], kind: 'EndpointSlice', plural: 'endpointslices' },
  { group: 'coordination.k8s.io', versions: ['v1'], kind: 'Lease', plural: 'leases' },
  // Stored, not enforced: the sandbox authorizes every authenticated caller, and nothing
  // evicts pods, so RBAC objects and disruption budgets are kept (validated, listed, watched,
  // applied) exactly as written but never consulted.
  { group: 'rbac.authorization.k8s.io', versions: ['v1'], kind: 'ClusterRole', plural: 'clusterroles', namespaced: false },
  { group: 'rbac.authorization.k8s.io', versions: ['v1'], kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', namespaced: false },
  { group: 'rbac.authorization.k8s.io', versions: ['v1'], kind: 'Role', plural: 'roles' },
  { group: 'rbac.authorization.k8s.io', versions: ['v1'], kind: 'RoleBinding', plural: 'rolebindings' },
  { group: 'policy', versions: ['v1'], kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', shortNames: ['pdb'], status: true },
  { group: 'authentication.k8s.io', versions: ['v1'], kind: 'TokenReview', plural: 'tokenreviews', namespaced: false, verbs: ['create'] },
  { group: 'apiextensions.k8s.io', versions: ['v1'], kind: 'CustomResourceDefinition', plural: 'customresourcedefinitions', shortNames: ['crd', 'crds'], namespaced: false, status: true, categories: ['api-extensions'] },
  { group: 'gateway.networking.k8s.io', versions: ['v1'], kind: 'GatewayClass', plural: 'gatewayclasses', shortNames: ['gc'], namespaced: false, status: true, categories: ['gateway-api'] },
  { group: 'gateway.networking.k8s.io', versions: ['v1'], kind: 'Gateway', plural: 'gateways', shortNames: ['gtw'], status: true, categories: ['gateway-api'] },
  { group: 'gateway.networking.k8s.io', versions: ['v1'], kind: 'HTTPRoute', plural: 'httproutes', status: true, categories: ['gateway-api'] },
  { group: 'gateway.networking.k8s.io', versions: ['v1'], kind: 'GRPCRoute', plural: 'grpcroutes', status: true, categories: ['gateway-api'] },
  { group: 'gateway.networking.k8s.io', versions: ['v1', 'v1alpha3', 'v1alpha2'], kind: 'TLSRoute', plural: 'tlsroutes', status: true, categories: ['gateway-api'] },
  { group: 'gateway.networking.k8s.io', versions: ['v1alpha2'], kind: 'TCPRoute', plural: 'tcproutes', status: true, categories: ['gateway-api'] },
  { group: 'networking.istio.io', versions: ISTIO_NETWORKING, kind: 'VirtualService', plural: 'virtualservices', shortNames: ['vs'], status: true, categories: ['istio-io', 'networking-istio-io'] },
  { group: 'networking.istio.io', versions: ISTIO_NETWORKING, kind: 'DestinationRule', plural: 'destinationrules', shortNames: ['dr'], status: true, categories: ['istio-io', 'networking-istio-io'] },
  { group: 'networking.istio.io', versions: ISTIO_NETWORKING, kind: 'Gateway', plural: 'gateways', shortNames: ['gw'], status: true, categories: ['istio-io', 'networking-istio-io'] },
  { group: 'networking.istio.io', versions: ISTIO_NETWORKING, kind: 'ServiceEntry', plural: 'serviceentries', shortNames: ['se'], status: true, categories: ['istio-io', 'networking-istio-io'] },
  { group: 'security.istio.io', versions: ISTIO_SECURITY, kind: 'PeerAuthentication', plural: 'peerauthentications', shortNames: ['pa'], status: true, categories: ['istio-io', 'security-istio-io'] },
  { group: 'security.istio.io', versions: ISTIO_SECURITY, kind: 'AuthorizationPolicy', plural: 'authorizationpolicies', shortNames: ['ap'], status: true, categories: ['istio-io', 'security-istio-io'] },
  { group: 'security.istio.io', versions: ISTIO_SECURITY, kind: 'RequestAuthentication', plural: 'requestauthentications', shortNames: ['ra'], status: true, categories: ['istio-io', 'security-istio-io'] },
  { group: 'telemetry.istio.io', versions: ['v1', 'v1alpha1'], kind: 'Telemetry', plural: 'telemetries', shortNames: ['telemetry'], status: true, categories: ['istio-io', 'telemetry-istio-io'] },
];

export function apiVersionOf(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

/** The key objects of a type are stored under: shared by every version of a group/kind. */
export function storageKeyOf(type: Pick<ResourceType, 'group' | 'kind'>): string {
  return `${type.group}/${type.kind}`;
}

/**
 * Kubernetes version priority: GA > beta > alpha, then higher major, then higher minor
 * (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definition-versioning/#version-priority).
 * Returns a negative number when `a` is preferred.
 */
export function compareVersionPriority(a: string, b: string): number {
  const rank = (v: string): [number, number, number] | undefined => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return undefined;
    const stability = m[2] === undefined ? 2 : m[2] === 'beta' ? 1 : 0;
    return [stability, Number(m[1]), Number(m[3] ?? 0)];
  };
  const ra = rank(a);
  const rb = rank(b);
  if (!ra || !rb) return ra ? -1 : rb ? 1 : a.localeCompare(b);
  for (let i = 0; i < 3; i++) if (ra[i] !== rb[i]) return (rb[i] ?? 0) - (ra[i] ?? 0);
  return 0;
}

function fromSpec(spec: BuiltinSpec, version: string): ResourceType {
  return {
    group: spec.group,
    version,
    kind: spec.kind,
    listKind: `${spec.kind}List`,
    plural: spec.plural,
    singular: spec.kind.toLowerCase(),
    namespaced: spec.namespaced ?? true,
    shortNames: spec.shortNames ?? [],
    categories: spec.categories ?? [],
    verbs: spec.verbs ?? STANDARD_VERBS,
    statusSubresource: spec.status ?? false,
  };
}

interface CrdSpec {
  group?: unknown;
  scope?: unknown;
  names?: { kind?: unknown; listKind?: unknown; plural?: unknown; singular?: unknown; shortNames?: unknown; categories?: unknown };
  versions?: Array<{ name?: unknown; served?: unknown; subresources?: { status?: unknown } }>;
}

const stringList = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);

/** The types a CRD object declares (served versions only); empty when the CRD is malformed. */
export function resourceTypesOfCrd(crd: KubeObject): ResourceType[] {
  const spec = (crd.spec ?? {}) as CrdSpec;
  const names = spec.names ?? {};
  if (typeof spec.group !== 'string' || typeof names.kind !== 'string' || typeof names.plural !== 'string' || !Array.isArray(spec.versions)) return [];
  const group = spec.group;
  const n = names;
  const kind = names.kind as string;
  const types: ResourceType[] = [];
  for (const v of spec.versions) {
    if (typeof v?.name !== 'string' || v.served === false) continue;
    types.push({
      group,
      version: v.name,
      kind,
      listKind: typeof n.listKind === 'string' ? n.listKind : `${kind}List`,
      plural: n.plural as string,
      singular: typeof n.singular === 'string' ? n.singular : kind.toLowerCase(),
      namespaced: spec.scope !== 'Cluster',
      shortNames: stringList(n.shortNames),
      categories: stringList(n.categories),
      verbs: STANDARD_VERBS,
      statusSubresource: v.subresources?.status !== undefined && v.subresources.status !== null,
    });
  }
  return types;
}

export interface GroupInfo {
  name: string;
  /** Served versions, preferred first. */
  versions: string[];
}

/**
 * Lookup tables over the served types. Built-in types cannot be replaced by a CRD (applying
 * the upstream Istio or Gateway API CRDs is harmless: they declare what is already served);
 * a CRD may add versions a built-in group/kind lacks.
 */
export class ResourceRegistry {
  readonly #builtin = new Map<string, ResourceType>();
  /** CRD name → the types it registered. */
  readonly #fromCrds = new Map<string, ResourceType[]>();
  #byGvk = new Map<string, ResourceType>();
  #byGvr = new Map<string, ResourceType>();

  constructor() {
    for (const spec of BUILTINS) for (const version of spec.versions) this.#builtin.set(`${apiVersionOf(spec.group, version)}|${spec.kind}`, fromSpec(spec, version));
    this.#rebuild();
  }

  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.#byGvk.get(`${apiVersion}|${kind}`);
  }

  byPlural(group: string, version: string, plural: string): ResourceType | undefined {
    return this.#byGvr.get(`${apiVersionOf(group, version)}|${plural}`);
  }

  all(): ResourceType[] {
    return [...this.#byGvk.values()];
  }

  /** Every served version of the type's group/kind, preferred first. */
  versionsOf(type: Pick<ResourceType, 'group' | 'kind'>): ResourceType[] {
    return this.all()
      .filter((t) => t.group === type.group && t.kind === type.kind)
      .sort((a, b) => compareVersionPriority(a.version, b.version));
  }

  /** Groups with their versions, preferred version first; the core group is named ''. */
  groups(): GroupInfo[] {
    const byGroup = new Map<string, Set<string>>();
    for (const t of this.all()) {
      const versions = byGroup.get(t.group) ?? new Set<string>();
      versions.add(t.version);
      byGroup.set(t.group, versions);
    }
    return [...byGroup.entries()].map(([name, versions]) => ({ name, versions: [...versions].sort(compareVersionPriority) }));
  }

  /** Registers (or re-registers, after an update) the types a CRD declares. */
  registerCrd(crd: KubeObject): void {
    const name = crd.metadata.name ?? '';
    this.#fromCrds.set(name, resourceTypesOfCrd(crd));
    this.#rebuild();
  }

  unregisterCrd(name: string): ResourceType[] {
    const removed = this.#fromCrds.get(name) ?? [];
    this.#fromCrds.delete(name);
    this.#rebuild();
    return removed;
  }

  isBuiltinKind(group: string, kind: string): boolean {
    for (const t of this.#builtin.values()) if (t.group === group && t.kind === kind) return true;
    return false;
  }

  #rebuild(): void {
    const byGvk = new Map<string, ResourceType>();
    const add = (t: ResourceType): void => {
      const gvk = `${apiVersionOf(t.group, t.version)}|${t.kind}`;
      if (byGvk.has(gvk)) return;
      byGvk.set(gvk, t);
    };
    for (const t of this.#builtin.values()) add(t);
    for (const types of this.#fromCrds.values()) for (const t of types) add(t);
    const byGvr = new Map<string, ResourceType>();
    for (const t of byGvk.values()) {
      const gvr = `${apiVersionOf(t.group, t.version)}|${t.plural}`;
      if (!byGvr.has(gvr)) byGvr.set(gvr, t);
    }
    this.#byGvk = byGvk;
    this.#byGvr = byGvr;
  }
}
