/**
 * The controller's live view of the mesh: one informer per input kind (Namespaces, Pods, Nodes,
 * Services, EndpointSlices, PeerAuthentications, AuthorizationPolicies, RequestAuthentications,
 * Gateway API and Istio routing objects, Istio Gateways and Secrets for ingress, Telemetries and
 * the mesh config ConfigMap `istio` of the root namespace) and the resources computed from them
 * (compute-mesh-resources.ts).
 *
 * ServiceAccounts are not watched: a Workload names its pod's `spec.serviceAccountName`, which
 * the API server only admits for an account that exists, and an identity is issued for a pod's
 * token (the CA reviews it), not for an account object — nothing the mesh serves is computed
 * from a ServiceAccount. (The waypoint deployer creates and watches the ones it owns.)
 *
 * Contract: `onChange` listeners are called synchronously for every watched change that can
 * matter — not debounced; the xDS layer debounces and diffs. `resources()` recomputes lazily, at
 * most once per batch of changes, and returns the same object until the next change (callers
 * must not mutate it, nor any Workload, Service or Authorization in it: an unchanged one is the
 * same object from one computation to the next, which the publisher relies on). A batch of only
 * Pod and Node changes re-translates only the pods concerned (those changed, those on a changed
 * Node) when it can (`updateMeshResources`); any other change recomputes everything. An
 * EndpointSlice counts only for a selector-less Service (the others take their members from their
 * selector). `synced()` is true once every informer has listed once (a kind whose CRD is missing
 * counts as synced and empty).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { Informer, objectKey, RESOURCES, type InformerChange, type InformerObject, type InformerOptions, type ResourceKind } from '../kube/informer.js';
import { sliceServiceKey, usesEndpointSlices, type EndpointSliceObject } from '../translate/endpoint-slice.js';
import type { NodeObject } from '../translate/locality.js';
import type { AuthorizationPolicyObject } from '../translate/authorization-policy.js';
import type { NamespaceObject, PodObject } from '../translate/enrolment.js';
import type { PeerAuthenticationObject } from '../translate/peer-authentication.js';
import type { RequestAuthenticationObject } from '../translate/request-authentication.js';
import type { ServiceObject } from '../translate/service.js';
import { meshInputsChanged } from './relevant-change.js';
import { computeMesh, MESH_ROOT_NAMESPACE, updateMeshResources, type KubeObjectLike, type MeshComputation, type MeshOptions, type MeshResources, type MeshView } from './compute-mesh-resources.js';
import { MESH_CONFIG_MAP_NAME } from '../translate/mesh-config.js';

export { computeMeshResources, MESH_ROOT_NAMESPACE, type MeshOptions, type MeshResources, type MeshView } from './compute-mesh-resources.js';

/** Informer settings shared by every kind (backoff, stall window, missing-CRD retry). */
export type InformerTuning = Pick<InformerOptions<InformerObject>, 'backoffInitialMs' | 'backoffMaxMs' | 'stallWindowMs' | 'missingRetryMs'>;

export interface MeshIndexOptions extends MeshOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  informer?: InformerTuning;
}

type Kinds = {
  namespaces: NamespaceObject;
  pods: PodObject;
  nodes: NodeObject;
  services: ServiceObject;
  endpointSlices: EndpointSliceObject;
  peerAuthentications: PeerAuthenticationObject;
  authorizationPolicies: AuthorizationPolicyObject;
  requestAuthentications: RequestAuthenticationObject;
  gateways: KubeObjectLike;
  httpRoutes: KubeObjectLike;
  grpcRoutes: KubeObjectLike;
  tlsRoutes: KubeObjectLike;
  tlsRoutesV1alpha2: KubeObjectLike;
  tcpRoutes: KubeObjectLike;
  virtualServices: KubeObjectLike;
  destinationRules: KubeObjectLike;
  istioGateways: KubeObjectLike;
  secrets: KubeObjectLike;
  telemetries: KubeObjectLike;
  meshConfigMaps: KubeObjectLike;
};

const WATCHED: { [K in keyof Kinds]: ResourceKind } = {
  namespaces: RESOURCES.namespaces,
  pods: RESOURCES.pods,
  nodes: RESOURCES.nodes,
  services: RESOURCES.services,
  endpointSlices: RESOURCES.endpointSlices,
  peerAuthentications: RESOURCES.peerAuthentications,
  authorizationPolicies: RESOURCES.authorizationPolicies,
  requestAuthentications: RESOURCES.requestAuthentications,
  gateways: RESOURCES.gateways,
  httpRoutes: RESOURCES.httpRoutes,
  grpcRoutes: RESOURCES.grpcRoutes,
  tlsRoutes: RESOURCES.tlsRoutes,
  tlsRoutesV1alpha2: RESOURCES.tlsRoutesV1alpha2,
  tcpRoutes: RESOURCES.tcpRoutes,
  virtualServices: RESOURCES.virtualServices,
  destinationRules: RESOURCES.destinationRules,
  istioGateways: RESOURCES.istioGateways,
  secrets: RESOURCES.secrets,
  telemetries: RESOURCES.telemetries,
  meshConfigMaps: RESOURCES.configMaps,
};

/**
 * One kind watched through two API versions (TLSRoute v1 and v1alpha2): a server serving both
 * lists every object twice, so each object is taken once, from the first list that has it.
 */
function mergeVersions(preferred: readonly KubeObjectLike[], other: readonly KubeObjectLike[]): KubeObjectLike[] {
  if (other.length === 0) return [...preferred];
  const seen = new Set(preferred.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`));
  return [...preferred, ...other.filter((o) => !seen.has(`${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`))];
}

export class MeshIndex {
  readonly #informers: { [K in keyof Kinds]: Informer<Kinds[K] & InformerObject> };
  readonly #options: MeshOptions;
  readonly #log: Logger;
  readonly #listeners = new Set<() => void>();
  /** The last computation; stale when `#full` or `#dirtyPods` say so. */
  #computation: MeshComputation | undefined;
  /** A change since the last computation that only a full recomputation covers. */
  #full = true;
  /** Keys (`namespace/name`) of pods to re-translate: changed, or on a changed Node. */
  readonly #dirtyPods = new Set<string>();

  constructor(opts: MeshIndexOptions) {
    this.#log = opts.log.child({ component: 'mesh-index' });
    this.#options = {
      trustDomain: opts.trustDomain,
      ...(opts.clusterDomain ? { clusterDomain: opts.clusterDomain } : {}),
      ...(opts.rootNamespace ? { rootNamespace: opts.rootNamespace } : {}),
    };
    // Only the mesh config ConfigMap (every namespace holds istio-ca-root-cert; those are not read).
    const rootNamespace = opts.rootNamespace ?? MESH_ROOT_NAMESPACE;
    const fieldSelectors: Partial<Record<keyof Kinds, string>> = { meshConfigMaps: `metadata.namespace=${rootNamespace},metadata.name=${MESH_CONFIG_MAP_NAME}` };
    const make = <K extends keyof Kinds>(kind: K): Informer<Kinds[K] & InformerObject> => {
      const fieldSelector = fieldSelectors[kind];
      const informer = new Informer<Kinds[K] & InformerObject>({ kubeConfig: opts.kubeConfig, resource: WATCHED[kind], log: opts.log, ...(fieldSelector ? { fieldSelector } : {}), ...opts.informer });
      informer.onChange((change) => {
        if (change.type === 'update' && !meshInputsChanged(kind, change.previous, change.object)) return;
        this.#changed(kind, change);
      });
      return informer;
    };
    this.#informers = {
      namespaces: make('namespaces'),
      pods: make('pods'),
      nodes: make('nodes'),
      services: make('services'),
      endpointSlices: make('endpointSlices'),
      peerAuthentications: make('peerAuthentications'),
      authorizationPolicies: make('authorizationPolicies'),
      requestAuthentications: make('requestAuthentications'),
      gateways: make('gateways'),
      httpRoutes: make('httpRoutes'),
      grpcRoutes: make('grpcRoutes'),
      tlsRoutes: make('tlsRoutes'),
      tlsRoutesV1alpha2: make('tlsRoutesV1alpha2'),
      tcpRoutes: make('tcpRoutes'),
      virtualServices: make('virtualServices'),
      destinationRules: make('destinationRules'),
      istioGateways: make('istioGateways'),
      secrets: make('secrets'),
      telemetries: make('telemetries'),
      meshConfigMaps: make('meshConfigMaps'),
    };
  }

  /** Starts every informer; resolves after each made its first attempt (see `synced()`). */
  async start(): Promise<void> {
    await Promise.all(Object.values(this.#informers).map((i) => i.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(Object.values(this.#informers).map((i) => i.stop()));
  }

  synced(): boolean {
    return Object.values(this.#informers).every((i) => i.synced());
  }

  async whenSynced(): Promise<void> {
    await Promise.all(Object.values(this.#informers).map((i) => i.whenSynced()));
  }

  /** Called after every watched change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The objects currently cached (input of the status writers, too). */
  view(): MeshView {
    return {
      namespaces: this.#informers.namespaces.list(),
      pods: this.#informers.pods.list(),
      services: this.#informers.services.list(),
      peerAuthentications: this.#informers.peerAuthentications.list(),
      authorizationPolicies: this.#informers.authorizationPolicies.list(),
      requestAuthentications: this.#informers.requestAuthentications.list(),
      gateways: this.#informers.gateways.list(),
      httpRoutes: this.#informers.httpRoutes.list(),
      grpcRoutes: this.#informers.grpcRoutes.list(),
      tlsRoutes: mergeVersions(this.#informers.tlsRoutes.list(), this.#informers.tlsRoutesV1alpha2.list()),
      tcpRoutes: this.#informers.tcpRoutes.list(),
      virtualServices: this.#informers.virtualServices.list(),
      destinationRules: this.#informers.destinationRules.list(),
      istioGateways: this.#informers.istioGateways.list(),
      secrets: this.#informers.secrets.list(),
      telemetries: this.#informers.telemetries.list(),
      meshConfigMaps: this.#informers.meshConfigMaps.list(),
      nodes: this.#informers.nodes.list(),
      endpointSlices: this.#informers.endpointSlices.list(),
    };
  }

  resources(): MeshResources {
    const previous = this.#computation;
    if (previous && !this.#full && this.#dirtyPods.size === 0) return previous.resources;
    const started = performance.now();
    let computation: MeshComputation | undefined;
    let mode = 'full';
    if (previous && !this.#full) {
      const pods = this.#informers.pods;
      const changed = new Map([...this.#dirtyPods].map((key) => [key, pods.get(key)] as const));
      const nodes = new Map(this.#informers.nodes.list().map((n) => [n.metadata.name ?? '', n] as const));
      computation = updateMeshResources(previous, changed, nodes);
      mode = computation ? `${changed.size} pods` : 'full (pods could not be updated alone)';
    }
    computation ??= computeMesh(this.view(), this.#options);
    this.#computation = computation;
    this.#full = false;
    this.#dirtyPods.clear();
    const r = computation.resources;
    this.#log.debug({ mode, workloads: r.workloads.size, services: r.services.size, authorizations: r.authorizations.size, ms: Math.round((performance.now() - started) * 10) / 10 }, 'mesh resources computed');
    return r;
  }

  namespace(name: string): NamespaceObject | undefined {
    return this.#informers.namespaces.get(name);
  }

  #changed<K extends keyof Kinds>(kind: K, change: InformerChange<Kinds[K] & InformerObject>): void {
    if (kind === 'pods') this.#dirtyPods.add(objectKey(change.object));
    else if (kind === 'nodes') {
      const node = change.object.metadata?.name;
      for (const pod of this.#informers.pods.list()) if (pod.spec?.nodeName === node) this.#dirtyPods.add(objectKey(pod));
    } else if (kind === 'endpointSlices') {
      // Only a selector-less Service's slices are read; the rest need no recomputation at all.
      const keys = [sliceServiceKey(change.object as EndpointSliceObject), change.previous && sliceServiceKey(change.previous as EndpointSliceObject)];
      const relevant = keys.some((key) => {
        const service = key ? this.#informers.services.get(key) : undefined;
        return service !== undefined && usesEndpointSlices(service);
      });
      if (!relevant) return;
      this.#full = true;
    } else this.#full = true;
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch (err) {
        this.#log.error({ err: err instanceof Error ? err.message : String(err) }, 'mesh change listener threw');
      }
    }
  }
}
