/**
 * The controller's live view of the mesh: one informer per input kind (Namespaces, Pods,
 * Services, PeerAuthentications, AuthorizationPolicies, RequestAuthentications, Gateway API and
 * Istio routing objects, Istio Gateways and Secrets for ingress, Telemetries and the mesh config
 * ConfigMap `istio` of the root namespace) and the resources computed from them
 * (compute-mesh-resources.ts).
 *
 * Contract: `onChange` listeners are called synchronously for every watched change — not
 * debounced; the xDS layer debounces and diffs. `resources()` recomputes lazily, at most once per
 * batch of changes, and returns the same object until the next change (callers must not mutate
 * it). `synced()` is true once every informer has listed once (a kind whose CRD is missing counts
 * as synced and empty).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { Informer, RESOURCES, type InformerObject, type InformerOptions, type ResourceKind } from '../kube/informer.js';
import type { AuthorizationPolicyObject } from '../translate/authorization-policy.js';
import type { NamespaceObject, PodObject } from '../translate/enrolment.js';
import type { PeerAuthenticationObject } from '../translate/peer-authentication.js';
import type { RequestAuthenticationObject } from '../translate/request-authentication.js';
import type { ServiceObject } from '../translate/service.js';
import { meshInputsChanged } from './relevant-change.js';
import { computeMeshResources, MESH_ROOT_NAMESPACE, type KubeObjectLike, type MeshOptions, type MeshResources, type MeshView } from './compute-mesh-resources.js';
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
  services: ServiceObject;
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
  services: RESOURCES.services,
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
  #cached: MeshResources | undefined;

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
        this.#changed();
      });
      return informer;
    };
    this.#informers = {
      namespaces: make('namespaces'),
      pods: make('pods'),
      services: make('services'),
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
    };
  }

  resources(): MeshResources {
    if (!this.#cached) {
      const started = performance.now();
      this.#cached = computeMeshResources(this.view(), this.#options);
      this.#log.debug({ workloads: this.#cached.workloads.size, services: this.#cached.services.size, authorizations: this.#cached.authorizations.size, ms: Math.round(performance.now() - started) }, 'mesh resources computed');
    }
    return this.#cached;
  }

  namespace(name: string): NamespaceObject | undefined {
    return this.#informers.namespaces.get(name);
  }

  #changed(): void {
    this.#cached = undefined;
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch (err) {
        this.#log.error({ err: err instanceof Error ? err.message : String(err) }, 'mesh change listener threw');
      }
    }
  }
}
