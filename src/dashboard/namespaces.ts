/**
 * The dashboard's per-namespace mesh state, from the Kubernetes API: enrolment
 * (`istio.io/dataplane-mode`, and per pod the same decision the controller makes), waypoints
 * (Gateways of class istio-waypoint / amesh-waypoint with their `istio.io/waypoint-for`), the
 * namespace's `istio.io/use-waypoint`, and the AuthorizationPolicies and PeerAuthentications in it.
 *
 * `summariseNamespaces` is pure (table-testable); `readNamespaceInventory` does the five lists.
 * A missing CRD (a cluster without Istio's security API) reads as no objects, not as a failure.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { statusCodeOf } from '../controller/kube/informer.js';
import { enrolmentOf, DATAPLANE_MODE_LABEL, type NamespaceObject, type PodObject } from '../controller/translate/enrolment.js';
import { USE_WAYPOINT_LABEL, WAYPOINT_CLASSES, WAYPOINT_FOR_LABEL } from '../controller/translate/waypoint-binding.js';

const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';

interface Meta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface GatewayObject {
  metadata: Meta;
  spec?: { gatewayClassName?: string };
  status?: { conditions?: Array<{ type?: string; status?: string }> };
}

export interface PolicyObject {
  metadata: Meta;
  spec?: { action?: string; mtls?: { mode?: string }; selector?: unknown; targetRefs?: unknown[]; targetRef?: unknown };
}

export interface NamespaceInventory {
  namespaces: NamespaceObject[];
  pods: PodObject[];
  gateways: GatewayObject[];
  authorizationPolicies: PolicyObject[];
  peerAuthentications: PolicyObject[];
}

export interface NamespaceSummary {
  name: string;
  /** The namespace's istio.io/dataplane-mode label (undefined: not set). */
  dataplaneMode: string | undefined;
  useWaypoint: string | undefined;
  /** Pods (not finished); enrolled by label; `ambient.istio.io/redirection` enabled / pending as the controller wrote it. */
  pods: { total: number; enrolled: number; redirected: number; pending: number };
  waypoints: Array<{ name: string; for: string; programmed: string }>;
  authorizationPolicies: Array<{ name: string; action: string; scope: string }>;
  peerAuthentications: Array<{ name: string; mode: string }>;
}

function scopeOf(p: PolicyObject): string {
  if (p.spec?.targetRefs?.length || p.spec?.targetRef) return 'targetRefs';
  if (p.spec?.selector) return 'selector';
  return 'namespace';
}

export function summariseNamespaces(inv: NamespaceInventory): NamespaceSummary[] {
  const byName = new Map<string, NamespaceSummary>();
  const nsObjects = new Map(inv.namespaces.map((n) => [n.metadata.name ?? '', n]));
  for (const n of inv.namespaces) {
    const name = n.metadata.name ?? '';
    byName.set(name, {
      name,
      dataplaneMode: n.metadata.labels?.[DATAPLANE_MODE_LABEL],
      useWaypoint: n.metadata.labels?.[USE_WAYPOINT_LABEL],
      pods: { total: 0, enrolled: 0, redirected: 0, pending: 0 },
      waypoints: [],
      authorizationPolicies: [],
      peerAuthentications: [],
    });
  }
  const of = (namespace: string | undefined): NamespaceSummary | undefined => byName.get(namespace ?? '');
  for (const pod of inv.pods) {
    const s = of(pod.metadata.namespace);
    if (!s || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
    s.pods.total++;
    if (enrolmentOf(pod, nsObjects.get(s.name)).enrolled) s.pods.enrolled++;
    const redirection = (pod.metadata as Meta).annotations?.[REDIRECTION_ANNOTATION];
    if (redirection === 'enabled') s.pods.redirected++;
    else if (redirection === 'pending') s.pods.pending++;
  }
  for (const g of inv.gateways) {
    const s = of(g.metadata.namespace);
    if (!s || !WAYPOINT_CLASSES.has(g.spec?.gatewayClassName ?? '')) continue;
    s.waypoints.push({
      name: g.metadata.name ?? '',
      for: g.metadata.labels?.[WAYPOINT_FOR_LABEL] ?? 'service',
      programmed: g.status?.conditions?.find((c) => c.type === 'Programmed')?.status ?? 'Unknown',
    });
  }
  for (const p of inv.authorizationPolicies) of(p.metadata.namespace)?.authorizationPolicies.push({ name: p.metadata.name ?? '', action: p.spec?.action ?? 'ALLOW', scope: scopeOf(p) });
  for (const p of inv.peerAuthentications) of(p.metadata.namespace)?.peerAuthentications.push({ name: p.metadata.name ?? '', mode: p.spec?.mtls?.mode ?? 'UNSET' });
  for (const s of byName.values()) {
    s.waypoints.sort((a, b) => a.name.localeCompare(b.name));
    s.authorizationPolicies.sort((a, b) => a.name.localeCompare(b.name));
    s.peerAuthentications.sort((a, b) => a.name.localeCompare(b.name));
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Waypoint workloads (`ns/name`: a waypoint's Deployment is named like its Gateway). */
export function waypointWorkloads(gateways: readonly GatewayObject[]): string[] {
  return gateways.filter((g) => WAYPOINT_CLASSES.has(g.spec?.gatewayClassName ?? '')).map((g) => `${g.metadata.namespace ?? ''}/${g.metadata.name ?? ''}`);
}

async function listCustom(custom: CustomObjectsApi, group: string, version: string, plural: string): Promise<unknown[]> {
  try {
    const list = (await custom.listClusterCustomObject({ group, version, plural })) as { items?: unknown[] };
    return list.items ?? [];
  } catch (err) {
    if (statusCodeOf(err) === 404) return [];
    throw err;
  }
}

export async function readNamespaceInventory(kubeConfig: KubeConfig): Promise<NamespaceInventory> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const [namespaces, pods, gateways, authorizationPolicies, peerAuthentications] = await Promise.all([
    core.listNamespace(),
    core.listPodForAllNamespaces(),
    listCustom(custom, 'gateway.networking.k8s.io', 'v1', 'gateways'),
    listCustom(custom, 'security.istio.io', 'v1', 'authorizationpolicies'),
    listCustom(custom, 'security.istio.io', 'v1', 'peerauthentications'),
  ]);
  return {
    namespaces: namespaces.items as NamespaceObject[],
    pods: pods.items as PodObject[],
    gateways: gateways as GatewayObject[],
    authorizationPolicies: authorizationPolicies as PolicyObject[],
    peerAuthentications: peerAuthentications as PolicyObject[],
  };
}
