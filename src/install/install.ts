/**
 * `installAmesh`: the one install path — `amesh install` and the sandbox's `up` both call it, so
 * the sandbox proves the manifests a real cluster gets.
 *
 * 1. render the manifests with the user's values (render.ts);
 * 2. plan against the cluster (pure `planInstall`, facts read by `readClusterFacts`):
 *    - a CRD that already exists and was not installed by amesh (no `amesh-install` field manager,
 *      no `app.kubernetes.io/part-of: amesh` label) is left alone and reported — Gateway API and
 *      Istio CRDs installed by someone else stay theirs; one amesh installed is updated;
 *    - a CRD whose resource the API server already serves without a CRD object (built in, as the
 *      sandbox serves Gateway API and the Istio subset) is skipped and reported;
 *    - RBAC and PodDisruptionBudget objects are skipped when the API server does not serve their
 *      group (the sandbox may not: it authorizes every authenticated caller) — a real cluster
 *      always serves both;
 *    - any other kind the cluster does not serve (and no CRD in the manifests defines) is an error
 *      before anything is applied;
 * 3. server-side apply (apply.ts), CRDs first, waiting until the API server serves them;
 * 4. wait for every Deployment and DaemonSet applied to roll out (rollout.ts), with progress.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ApiextensionsV1Api, KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { AmeshError } from '../errors/amesh-error.js';
import { applyObjects, FIELD_MANAGER, type ApplyResult } from './apply.js';
import { renderInstall, type InstallValues } from './render.js';
import { waitForRollout, type RolloutTarget } from './rollout.js';

export const PART_OF_LABEL = 'app.kubernetes.io/part-of';
export const CRD_KIND = 'CustomResourceDefinition';
/**
 * API groups every real cluster serves but the sandbox's API server may not: their objects are
 * skipped (and reported) when not served, instead of failing the install.
 */
const OPTIONAL_GROUPS: Record<string, string> = {
  'rbac.authorization.k8s.io': 'the API server does not serve rbac.authorization.k8s.io (it authorizes every caller)',
  policy: 'the API server does not serve policy/v1 (no disruption budgets)',
};
const DEFAULT_TIMEOUT_MS = 300_000;
const CRD_SERVED_TIMEOUT_MS = 30_000;

export type Progress = (line: string) => void;

export interface InstallOptions {
  /** How long to wait for the rollout (default 5 min). */
  timeoutMs?: number;
  /** Set when the cluster is an amesh sandbox (error hints name `amesh sandbox logs --dir`). */
  sandboxDir?: string;
  /** Stops the rollout wait at once when it returns an error (e.g. the sandbox daemon died). */
  fatal?: () => Error | undefined;
  /** Poll interval of the rollout wait (tests). */
  pollMs?: number;
}

export interface SkippedObject {
  object: KubernetesObject;
  reason: string;
}

export interface InstallResult {
  applied: ApplyResult[];
  skipped: SkippedObject[];
  /** The Deployments and DaemonSets waited for. */
  rollouts: RolloutTarget[];
}

/** `Kind/namespace/name`, as the output and errors name an object. */
export function describeObject(o: KubernetesObject): string {
  return `${o.kind}/${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;
}

const groupOf = (apiVersion: string | undefined): string => (apiVersion?.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '');

/** Installed by amesh: applied with our field manager, or carrying our part-of label. */
export function ownedByAmesh(o: KubernetesObject): boolean {
  if (o.metadata?.labels?.[PART_OF_LABEL] === 'amesh') return true;
  return (o.metadata?.managedFields ?? []).some((m) => m.manager === FIELD_MANAGER);
}

interface CrdSpecLike {
  group?: string;
  names?: { kind?: string; plural?: string };
  versions?: Array<{ name?: string; served?: boolean }>;
}

function crdSpec(o: KubernetesObject): CrdSpecLike {
  return ((o as { spec?: CrdSpecLike }).spec ?? {}) as CrdSpecLike;
}

/** `group/version` + kind pairs a CRD defines. */
export function crdTypes(o: KubernetesObject): Array<{ apiVersion: string; kind: string }> {
  const spec = crdSpec(o);
  return (spec.versions ?? []).filter((v) => v.served !== false && v.name).map((v) => ({ apiVersion: `${spec.group}/${v.name}`, kind: spec.names?.kind ?? '' }));
}

/** What the plan needs to know about the cluster. */
export interface ClusterFacts {
  /** Whether the API server serves `kind` at `apiVersion` now. */
  served: (apiVersion: string, kind: string) => boolean;
  /** Existing CRDs by name. */
  crds: ReadonlyMap<string, KubernetesObject>;
}

export interface InstallPlan {
  apply: KubernetesObject[];
  skipped: SkippedObject[];
}

/** Pure: which objects to apply and which to leave, and why. Throws on a kind nobody serves. */
export function planInstall(objects: readonly KubernetesObject[], facts: ClusterFacts): InstallPlan {
  const apply: KubernetesObject[] = [];
  const skipped: SkippedObject[] = [];
  const definedHere = new Set<string>();
  for (const o of objects) if (o.kind === CRD_KIND) for (const t of crdTypes(o)) definedHere.add(`${t.apiVersion} ${t.kind}`);
  const unserved: string[] = [];
  for (const o of objects) {
    if (o.kind === CRD_KIND) {
      const existing = facts.crds.get(o.metadata?.name ?? '');
      if (existing) {
        if (ownedByAmesh(existing)) apply.push(o);
        else skipped.push({ object: o, reason: 'already installed by someone else; left alone' });
        continue;
      }
      const types = crdTypes(o);
      if (types.some((t) => facts.served(t.apiVersion, t.kind))) {
        skipped.push({ object: o, reason: 'the API server already serves it (built in); left alone' });
        continue;
      }
      apply.push(o);
      continue;
    }
    const apiVersion = o.apiVersion ?? '';
    const kind = o.kind ?? '';
    if (facts.served(apiVersion, kind) || definedHere.has(`${apiVersion} ${kind}`)) {
      apply.push(o);
    } else if (OPTIONAL_GROUPS[groupOf(apiVersion)] !== undefined) {
      skipped.push({ object: o, reason: OPTIONAL_GROUPS[groupOf(apiVersion)] ?? '' });
    } else {
      unserved.push(`${describeObject(o)} (${apiVersion})`);
    }
  }
  if (unserved.length) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `the cluster does not serve the API of ${unserved.join(', ')}`, {
      hint: 'install the CRDs it needs (or drop --set crds.install=false), or check the kubeconfig points at the right cluster',
    });
  }
  return { apply, skipped };
}

/** The client's discovery (`resource`, protected there) made callable. */
class Discovery extends KubernetesObjectApi {
  lookup(apiVersion: string, kind: string): ReturnType<KubernetesObjectApi['resource']> {
    return this.resource(apiVersion, kind);
  }
}

/** Discovery through a fresh client: its resource cache must not predate a CRD we just applied. */
export function servedChecker(kc: KubeConfig): (apiVersion: string, kind: string) => Promise<boolean> {
  const api = kc.makeApiClient(Discovery);
  return async (apiVersion, kind) => {
    try {
      return (await api.lookup(apiVersion, kind)) !== undefined;
    } catch {
      return false;
    }
  };
}

export async function readClusterFacts(kc: KubeConfig, objects: readonly KubernetesObject[]): Promise<ClusterFacts> {
  const check = servedChecker(kc);
  const wanted = new Set<string>();
  for (const o of objects) {
    if (o.kind === CRD_KIND) for (const t of crdTypes(o)) wanted.add(`${t.apiVersion} ${t.kind}`);
    else wanted.add(`${o.apiVersion} ${o.kind}`);
  }
  const served = new Set<string>();
  for (const key of wanted) {
    const [apiVersion = '', kind = ''] = key.split(' ');
    if (await check(apiVersion, kind)) served.add(key);
  }
  const crds = new Map<string, KubernetesObject>();
  if (objects.some((o) => o.kind === CRD_KIND) && (await check('apiextensions.k8s.io/v1', CRD_KIND))) {
    const list = await kc.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition();
    for (const crd of list.items) if (crd.metadata?.name) crds.set(crd.metadata.name, { ...crd, apiVersion: 'apiextensions.k8s.io/v1', kind: CRD_KIND });
  }
  return { served: (apiVersion, kind) => served.has(`${apiVersion} ${kind}`), crds };
}

/** What the user reads for a workload in progress lines. */
export function rolloutTitle(o: KubernetesObject): string {
  if (o.kind === 'DaemonSet' && o.metadata?.name === 'amesh-node') return 'node agents';
  if (o.kind === 'Deployment' && o.metadata?.name === 'amesh-controller') return 'controller';
  return `${o.kind?.toLowerCase()} ${o.metadata?.name}`;
}

export function rolloutTargets(objects: readonly KubernetesObject[]): RolloutTarget[] {
  return objects
    .filter((o): o is KubernetesObject & { kind: 'Deployment' | 'DaemonSet' } => (o.kind === 'Deployment' || o.kind === 'DaemonSet') && groupOf(o.apiVersion) === 'apps')
    .map((o) => ({ kind: o.kind, namespace: o.metadata?.namespace ?? 'default', name: o.metadata?.name ?? '', title: rolloutTitle(o) }));
}

function appliedLine(r: ApplyResult): string {
  return `  ${r.object.kind?.toLowerCase()}/${r.object.metadata?.name} ${r.outcome}`;
}

/** Applies amesh's manifests rendered with `values` and waits until its workloads are up. */
export async function installAmesh(kc: KubeConfig, values: Readonly<InstallValues>, progress: Progress, options: InstallOptions = {}): Promise<InstallResult> {
  const objects = await renderInstall(values);
  const plan = planInstall(objects, await readClusterFacts(kc, objects));
  for (const s of plan.skipped) progress(`  ${s.object.kind?.toLowerCase()}/${s.object.metadata?.name} skipped: ${s.reason}`);
  const crds = plan.apply.filter((o) => o.kind === CRD_KIND);
  const rest = plan.apply.filter((o) => o.kind !== CRD_KIND);
  const applied: ApplyResult[] = [];
  if (crds.length) {
    for (const r of await applyObjects(kc, crds)) {
      applied.push(r);
      progress(appliedLine(r));
    }
    await waitServed(kc, crds);
  }
  for (const r of await applyObjects(kc, rest)) {
    applied.push(r);
    progress(appliedLine(r));
  }
  const rollouts = rolloutTargets(rest);
  await waitForRollout(kc, rollouts, {
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    progress: (line) => progress(line),
    ...(options.sandboxDir !== undefined ? { sandboxDir: options.sandboxDir } : {}),
    ...(options.fatal ? { fatal: options.fatal } : {}),
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
  });
  return { applied, skipped: plan.skipped, rollouts };
}

/** After applying CRDs: until the API server serves every type they define (bounded). */
export async function waitServed(kc: KubeConfig, crds: readonly KubernetesObject[]): Promise<void> {
  const deadline = Date.now() + CRD_SERVED_TIMEOUT_MS;
  let missing: string[] = [];
  while (Date.now() < deadline) {
    const check = servedChecker(kc);
    missing = [];
    for (const crd of crds) for (const t of crdTypes(crd)) if (!(await check(t.apiVersion, t.kind))) missing.push(`${t.kind} (${t.apiVersion})`);
    if (missing.length === 0) return;
    await delay(250);
  }
  throw new AmeshError('AMESH_COMMAND_FAILED', `the API server does not serve ${missing.join(', ')} ${CRD_SERVED_TIMEOUT_MS / 1000} s after its CRD was applied`, {
    hint: 'look at the CRD: kubectl get crd -o wide; kubectl describe crd <name>',
  });
}
