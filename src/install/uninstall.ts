/**
 * `uninstallAmesh`: removes amesh from a cluster — its objects AND the state its node agents left
 * in every node's kernel (tc filters, pinned BPF maps, the `inet amesh` nft table, the policy
 * routing rule and table) — through the cluster only, never by touching a host directly:
 *
 * 1. stop the control plane and the agents: delete the controller Deployment and the agent
 *    DaemonSet and wait until their pods are gone (the agents drain; capture stays in place while
 *    they go, so enrolled pods fail closed — never plaintext — until step 2);
 * 2. node cleanup: a short-lived DaemonSet `amesh-node-cleanup` with the agent's image, host
 *    network, privileges, hostPath mounts and settings (env), running `amesh node-agent
 *    --uninstall` (RedirectionManager.uninstall) on every node. A DaemonSet's pods restart when
 *    they exit, so "done on a node" is its container having exited 0 (state or lastState
 *    `terminated` with exit code 0 — `Completed`), which works the same on the sandbox kubelet and
 *    a real one. Non-zero exits are shown with the node; the wait is bounded. Then it is deleted;
 * 3. what the controller made at run time: waypoint / gateway Deployments, Services and
 *    ServiceAccounts (`app.kubernetes.io/managed-by=amesh`), the `istio-ca-root-cert` ConfigMaps it
 *    published in every namespace, and the pod annotations it wrote (`ambient.istio.io/redirection`,
 *    `amesh.io/waypoint`: a leftover `enabled` would claim a capture that no longer exists);
 * 4. the installed objects in reverse order (RBAC, ConfigMaps, ServiceAccounts, the namespace),
 *    and the CRDs amesh installed unless `keepCrds` (CRDs someone else installed, or the API server
 *    serves itself, are never touched);
 * 5. verify that nothing of amesh remains in the API (listing what does, if anything).
 *
 * Left alone, as Istio's uninstall leaves them: the namespaces' and pods' `istio.io/dataplane-mode`
 * and `istio.io/use-waypoint` labels (the user's intent, not amesh state; the result lists them with
 * the command that removes them) and Gateway objects (user configuration; they go with the Gateway
 * API CRDs when amesh installed those and `keepCrds` is off).
 */
import { setTimeout as delay } from 'node:timers/promises';
import {
  AppsV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Container,
  type V1DaemonSet,
  type V1EnvVar,
  type V1Pod,
  type V1PodSpec,
} from '@kubernetes/client-node';
import { AmeshError } from '../errors/amesh-error.js';
import { CRD_KIND, describeObject, ownedByAmesh, PART_OF_LABEL, readClusterFacts, type Progress } from './install.js';
import { DEFAULT_VALUES, renderInstall, type InstallValues } from './render.js';
import { lookCommands, selectorString } from './rollout.js';

export const CLEANUP_NAME = 'amesh-node-cleanup';
export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';
export const WAYPOINT_ANNOTATION = 'amesh.io/waypoint';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const TRUST_BUNDLE_CONFIGMAP = 'istio-ca-root-cert';
export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
export const USE_WAYPOINT_LABEL = 'istio.io/use-waypoint';
const DEFAULT_TIMEOUT_MS = 300_000;
const CONTROLLER_XDS = 'amesh-controller.amesh-system.svc:15012';

export interface UninstallOptions {
  keepCrds?: boolean;
  /** The whole uninstall's bound (default 5 min). */
  timeoutMs?: number;
  /** The values it was installed with (names); default DEFAULT_VALUES. */
  values?: Readonly<InstallValues>;
  sandboxDir?: string;
  pollMs?: number;
}

export interface UninstallResult {
  /** Objects deleted (`Kind/ns/name`). */
  deleted: string[];
  /** Nodes whose kernel state the cleanup pod removed. */
  nodesCleaned: string[];
  /** Things deliberately left, with why (CRDs not ours or kept, user labels). */
  left: string[];
}

const isNotFound = (err: unknown): boolean => {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  return e?.code === 404 || e?.statusCode === 404;
};

/** Only env the cleanup can resolve on its own: literal values and the downward API. */
function cleanupEnv(env: readonly V1EnvVar[] | undefined): V1EnvVar[] {
  const kept = (env ?? []).filter((e) => e.value !== undefined || e.valueFrom?.fieldRef !== undefined);
  const has = (name: string): boolean => kept.some((e) => e.name === name);
  // `node-agent` wants a source of mesh state even for --uninstall; it is never dialled.
  if (!has('AMESH_XDS_ADDRESS')) kept.push({ name: 'AMESH_XDS_ADDRESS', value: CONTROLLER_XDS });
  if (!has('AMESH_CA_ADDRESS')) kept.push({ name: 'AMESH_CA_ADDRESS', value: CONTROLLER_XDS });
  if (!has('NODE_NAME') && !has('AMESH_NODE_NAME')) kept.push({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
  return kept;
}

/**
 * Pure: the cleanup DaemonSet from the agent's — same image, host network, privileges, tolerations,
 * node selection, settings and host mounts (bpffs …), running `node-agent --uninstall`. Volumes
 * other than hostPath (token, CA ConfigMap) are dropped: the cleanup talks to no one, and a volume
 * whose ConfigMap is already gone would keep the pod from starting.
 */
export function cleanupDaemonSet(agent: V1DaemonSet): V1DaemonSet {
  const template = agent.spec?.template;
  const spec: V1PodSpec = template?.spec ?? { containers: [] };
  const hostVolumes = (spec.volumes ?? []).filter((v) => v.hostPath !== undefined);
  const hostNames = new Set(hostVolumes.map((v) => v.name));
  const source = spec.containers[0];
  if (!source?.image) throw new AmeshError('AMESH_CONFIG_INVALID', `the node agent DaemonSet ${agent.metadata?.namespace}/${agent.metadata?.name} has no container image to run the cleanup with`);
  const container: V1Container = {
    name: 'cleanup',
    image: source.image,
    ...(source.imagePullPolicy ? { imagePullPolicy: source.imagePullPolicy } : {}),
    ...(source.command ? { command: source.command } : {}),
    args: ['node-agent', '--uninstall'],
    env: cleanupEnv(source.env),
    ...(source.securityContext ? { securityContext: source.securityContext } : {}),
    volumeMounts: (source.volumeMounts ?? []).filter((m) => hostNames.has(m.name)),
  };
  const labels = { app: CLEANUP_NAME, [PART_OF_LABEL]: 'amesh' };
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: CLEANUP_NAME, namespace: agent.metadata?.namespace ?? 'amesh-system', labels },
    spec: {
      selector: { matchLabels: { app: CLEANUP_NAME } },
      template: {
        metadata: { labels: { ...labels, [DATAPLANE_MODE_LABEL]: 'none' } },
        spec: {
          hostNetwork: spec.hostNetwork ?? true,
          ...(spec.hostPID !== undefined ? { hostPID: spec.hostPID } : {}),
          ...(spec.dnsPolicy ? { dnsPolicy: spec.dnsPolicy } : {}),
          ...(spec.nodeSelector ? { nodeSelector: spec.nodeSelector } : {}),
          ...(spec.affinity ? { affinity: spec.affinity } : {}),
          ...(spec.priorityClassName ? { priorityClassName: spec.priorityClassName } : {}),
          ...(spec.imagePullSecrets ? { imagePullSecrets: spec.imagePullSecrets } : {}),
          tolerations: spec.tolerations ?? [{ operator: 'Exists' }],
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 5,
          containers: [container],
          volumes: hostVolumes,
        },
      },
    },
  };
}

export interface CleanupProgress {
  done: boolean;
  desired: number;
  /** Nodes whose cleanup container exited 0. */
  cleaned: string[];
  line: string;
  /** Pods not done yet, with why. */
  waiting: Array<{ pod: string; node: string | undefined; reason: string }>;
}

/** The exit of a pod's cleanup run, if it finished one: 0 = done. */
function lastExit(pod: V1Pod): { code: number; reason?: string } | undefined {
  const c = pod.status?.containerStatuses?.[0];
  const t = c?.state?.terminated ?? c?.lastState?.terminated;
  if (c?.state?.terminated?.exitCode === 0 || c?.lastState?.terminated?.exitCode === 0) return { code: 0 };
  return t ? { code: t.exitCode, ...(t.reason ? { reason: t.reason } : {}) } : undefined;
}

/** Pure: how far the node cleanup is, from its DaemonSet status and pods. */
export function cleanupProgress(ds: V1DaemonSet | undefined, pods: readonly V1Pod[]): CleanupProgress {
  const desired = ds?.status?.desiredNumberScheduled ?? 0;
  const cleaned = new Set<string>();
  const waiting: CleanupProgress['waiting'] = [];
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    const exit = lastExit(pod);
    if (exit?.code === 0 && node) {
      cleaned.add(node);
      continue;
    }
    const c = pod.status?.containerStatuses?.[0];
    const reason = exit
      ? `exited ${exit.code}${exit.reason ? ` ${exit.reason}` : ''}${c?.state?.waiting?.reason ? `, ${c.state.waiting.reason}` : ''}`
      : c?.state?.waiting
        ? `${c.state.waiting.reason ?? 'waiting'}${c.state.waiting.message ? `: ${c.state.waiting.message}` : ''}`
        : c?.state?.running
          ? 'running'
          : node
            ? (pod.status?.phase ?? 'Pending')
            : 'not scheduled';
    waiting.push({ pod: pod.metadata?.name ?? '?', node, reason });
  }
  const list = [...cleaned].sort();
  const done = desired > 0 && list.length >= desired;
  const tail = !done && waiting.length ? `; waiting: ${waiting.map((w) => `${w.pod}${w.node ? ` on ${w.node}` : ''}: ${w.reason}`).join(', ')}` : '';
  return { done, desired, cleaned: list, waiting, line: `node cleanup: ${list.length}/${desired} nodes done${list.length ? ` (${list.join(', ')})` : ''}${tail}`, };
}

class Deadline {
  readonly #at: number;
  constructor(readonly ms: number) {
    this.#at = Date.now() + ms;
  }
  get left(): number {
    return this.#at - Date.now();
  }
}

async function deleteObject(api: KubernetesObjectApi, o: KubernetesObject): Promise<boolean> {
  try {
    await api.delete({ apiVersion: o.apiVersion ?? '', kind: o.kind ?? '', metadata: { name: o.metadata?.name ?? '', ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}) } }, undefined, undefined, undefined, undefined, 'Background');
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw new AmeshError('AMESH_COMMAND_FAILED', `deleting ${describeObject(o)} failed: ${(err as Error).message}`, { cause: err });
  }
}

async function exists(api: KubernetesObjectApi, o: KubernetesObject): Promise<boolean> {
  try {
    await api.read({ apiVersion: o.apiVersion ?? '', kind: o.kind ?? '', metadata: { name: o.metadata?.name ?? '', namespace: o.metadata?.namespace ?? '' } });
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Polls until `check` returns undefined (nothing left), printing its line when it changes. */
async function waitUntil(what: string, deadline: Deadline, pollMs: number, progress: Progress, check: () => Promise<string | undefined>): Promise<void> {
  let shown = '';
  for (;;) {
    const left = await check();
    if (left === undefined) return;
    if (left !== shown) progress((shown = left));
    if (deadline.left <= 0) throw new AmeshError('AMESH_COMMAND_FAILED', `timed out after ${Math.round(deadline.ms / 1000)} s waiting for ${what}: ${left}`, { hint: 'raise --timeout, or look with: kubectl get pods -A -o wide' });
    await delay(Math.min(pollMs, Math.max(0, deadline.left)));
  }
}

async function podsGone(core: CoreV1Api, namespace: string, labelSelector: string): Promise<string | undefined> {
  if (!labelSelector) return undefined;
  const pods = (await core.listNamespacedPod({ namespace, labelSelector }).catch((err: unknown) => (isNotFound(err) ? { items: [] } : Promise.reject(err)))).items;
  return pods.length ? `${pods.length} pod(s) still stopping: ${pods.map((p) => `${p.metadata?.name}${p.spec?.nodeName ? ` on ${p.spec.nodeName}` : ''}`).join(', ')}` : undefined;
}

/** Removes amesh from the cluster and every node; see the file comment for the steps. */
export async function uninstallAmesh(kc: KubeConfig, progress: Progress, options: UninstallOptions = {}): Promise<UninstallResult> {
  const deadline = new Deadline(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const pollMs = options.pollMs ?? 500;
  const api = KubernetesObjectApi.makeApiClient(kc);
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const objects = await renderInstall(options.values ?? DEFAULT_VALUES);
  const facts = await readClusterFacts(kc, objects);
  const deleted: string[] = [];
  const left: string[] = [];
  const remove = async (o: KubernetesObject): Promise<void> => {
    if (await deleteObject(api, o)) {
      deleted.push(describeObject(o));
      progress(`  ${o.kind?.toLowerCase()}/${o.metadata?.name}${o.metadata?.namespace ? ` (${o.metadata.namespace})` : ''} deleted`);
    }
  };

  // 1. Control plane and agents.
  const agentObject = objects.find((o) => o.kind === 'DaemonSet');
  const namespaceObject = objects.find((o) => o.kind === 'Namespace');
  const namespace = agentObject?.metadata?.namespace ?? namespaceObject?.metadata?.name ?? 'amesh-system';
  const rendered = agentObject as V1DaemonSet | undefined;
  const live = rendered ? await apps.readNamespacedDaemonSet({ name: rendered.metadata?.name ?? '', namespace }).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err))) : undefined;
  const agentTemplate = live ?? rendered;
  if (!agentTemplate) throw new AmeshError('AMESH_CONFIG_INVALID', 'the install manifests hold no node agent DaemonSet: cannot clean the nodes');
  const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
  progress(`stopping the controller and the node agents (${workloads.map((w) => w.metadata?.name).join(', ')})`);
  for (const w of workloads) await remove(w);
  for (const w of workloads) {
    const selector = selectorString((w as V1DaemonSet).spec?.selector);
    await waitUntil(`the pods of ${describeObject(w)} to stop`, deadline, pollMs, progress, () => podsGone(core, w.metadata?.namespace ?? namespace, selector));
  }

  // 2. Node cleanup.
  const namespaceExisted = await exists(api, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  if (!namespaceExisted) await core.createNamespace({ body: { metadata: { name: namespace, labels: { [PART_OF_LABEL]: 'amesh' } } } });
  const cleanup = cleanupDaemonSet(agentTemplate);
  progress(`removing capture from every node: DaemonSet ${namespace}/${CLEANUP_NAME} runs \`amesh node-agent --uninstall\` (tc filters, pinned BPF maps, nft table, routing rules)`);
  await apps.deleteNamespacedDaemonSet({ name: CLEANUP_NAME, namespace }).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
  await waitUntil(`an earlier ${CLEANUP_NAME}'s pods to stop`, deadline, pollMs, progress, () => podsGone(core, namespace, `app=${CLEANUP_NAME}`));
  await apps.createNamespacedDaemonSet({ namespace, body: cleanup });
  let cleaned: string[] = [];
  let shown = '';
  for (;;) {
    const ds = await apps.readNamespacedDaemonSet({ name: CLEANUP_NAME, namespace });
    const pods = (await core.listNamespacedPod({ namespace, labelSelector: `app=${CLEANUP_NAME}` })).items;
    const state = cleanupProgress(ds, pods);
    if (state.line !== shown) progress((shown = state.line));
    if (state.done) {
      cleaned = state.cleaned;
      break;
    }
    if (deadline.left <= 0) {
      const first = state.waiting[0];
      throw new AmeshError('AMESH_COMMAND_FAILED', `timed out after ${Math.round(deadline.ms / 1000)} s: the node cleanup did not finish on every node (${state.line})`, {
        hint: `${first ? `look with: ${lookCommands(namespace, first.pod, options.sandboxDir)}; ` : ''}the DaemonSet ${namespace}/${CLEANUP_NAME} is left running so it can finish; re-run \`amesh uninstall\` to check again`,
      });
    }
    await delay(Math.min(pollMs, Math.max(0, deadline.left)));
  }
  await remove(cleanup);
  await waitUntil(`the ${CLEANUP_NAME} pods to stop`, deadline, pollMs, progress, () => podsGone(core, namespace, `app=${CLEANUP_NAME}`));

  // 3. What the controller made at run time.
  progress('removing what the controller created: waypoint/gateway deployments, trust bundle ConfigMaps, pod annotations');
  const managed = `${MANAGED_BY_LABEL}=amesh`;
  for (const d of (await apps.listDeploymentForAllNamespaces({ labelSelector: managed })).items) await remove({ ...d, apiVersion: 'apps/v1', kind: 'Deployment' });
  for (const s of (await core.listServiceForAllNamespaces({ labelSelector: managed })).items) await remove({ ...s, apiVersion: 'v1', kind: 'Service' });
  for (const s of (await core.listServiceAccountForAllNamespaces({ labelSelector: managed })).items) await remove({ ...s, apiVersion: 'v1', kind: 'ServiceAccount' });
  for (const cm of (await core.listConfigMapForAllNamespaces({ labelSelector: 'istio.io/config=true' })).items) {
    if (cm.metadata?.name === TRUST_BUNDLE_CONFIGMAP) await remove({ ...cm, apiVersion: 'v1', kind: 'ConfigMap' });
  }
  let stripped = 0;
  for (const pod of (await core.listPodForAllNamespaces()).items) {
    const annotations = pod.metadata?.annotations ?? {};
    const ours = [REDIRECTION_ANNOTATION, WAYPOINT_ANNOTATION].filter((k) => k in annotations);
    if (!ours.length || !pod.metadata?.name || !pod.metadata.namespace) continue;
    const body = { metadata: { annotations: Object.fromEntries(ours.map((k) => [k, null])) } };
    await core.patchNamespacedPod({ name: pod.metadata.name, namespace: pod.metadata.namespace, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)).then(
      () => stripped++,
      (err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)),
    );
  }
  if (stripped) progress(`  removed amesh's annotations from ${stripped} pod(s)`);

  // 4. The installed objects, last first; CRDs only when amesh installed them.
  progress('removing the installed objects');
  for (const o of [...objects].reverse()) {
    if (o.kind === 'Deployment' || o.kind === 'DaemonSet') continue;
    if (o.kind === CRD_KIND) {
      const existing = facts.crds.get(o.metadata?.name ?? '');
      if (!existing) continue;
      if (!ownedByAmesh(existing)) left.push(`CRD ${o.metadata?.name}: not installed by amesh`);
      else if (options.keepCrds) left.push(`CRD ${o.metadata?.name}: --keep-crds`);
      else await remove(o);
      continue;
    }
    if (!facts.served(o.apiVersion ?? '', o.kind ?? '')) continue;
    await remove(o);
  }
  if (!namespaceObject && !namespaceExisted) await remove({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  await waitUntil(`namespace ${namespace} to be deleted`, deadline, pollMs, progress, async () =>
    (await exists(api, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } })) ? `namespace ${namespace} terminating` : undefined,
  );

  // 5. Verify.
  const remaining = await leftovers(kc, objects, facts.crds, options.keepCrds ?? false);
  if (remaining.length) {
    throw new AmeshError('AMESH_COMMAND_FAILED', `amesh objects remain after uninstall: ${remaining.join(', ')}`, { hint: 'delete them with kubectl, or re-run `amesh uninstall -y`' });
  }
  for (const ns of (await core.listNamespace({ labelSelector: DATAPLANE_MODE_LABEL })).items) {
    left.push(`namespace ${ns.metadata?.name} label ${DATAPLANE_MODE_LABEL}=${ns.metadata?.labels?.[DATAPLANE_MODE_LABEL]} (kubectl label namespace ${ns.metadata?.name} ${DATAPLANE_MODE_LABEL}-)`);
  }
  for (const ns of (await core.listNamespace({ labelSelector: USE_WAYPOINT_LABEL })).items) {
    left.push(`namespace ${ns.metadata?.name} label ${USE_WAYPOINT_LABEL}=${ns.metadata?.labels?.[USE_WAYPOINT_LABEL]} (kubectl label namespace ${ns.metadata?.name} ${USE_WAYPOINT_LABEL}-)`);
  }
  return { deleted, nodesCleaned: cleaned, left };
}

/** What of amesh is still in the API: installed objects, our labelled objects, published ConfigMaps, annotated pods. */
export async function leftovers(kc: KubeConfig, objects: readonly KubernetesObject[], crdsBefore: ReadonlyMap<string, KubernetesObject>, keepCrds: boolean): Promise<string[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const out: string[] = [];
  const facts = await readClusterFacts(kc, objects);
  for (const o of objects) {
    if (o.kind === CRD_KIND) {
      const before = crdsBefore.get(o.metadata?.name ?? '');
      if (!keepCrds && before && ownedByAmesh(before) && facts.crds.has(o.metadata?.name ?? '')) out.push(describeObject(o));
      continue;
    }
    if (!facts.served(o.apiVersion ?? '', o.kind ?? '')) continue;
    if (await exists(api, o)) out.push(describeObject(o));
  }
  for (const selector of [`${PART_OF_LABEL}=amesh`, `${MANAGED_BY_LABEL}=amesh`]) {
    for (const d of (await apps.listDeploymentForAllNamespaces({ labelSelector: selector })).items) out.push(`Deployment/${d.metadata?.namespace}/${d.metadata?.name}`);
    for (const d of (await apps.listDaemonSetForAllNamespaces({ labelSelector: selector })).items) out.push(`DaemonSet/${d.metadata?.namespace}/${d.metadata?.name}`);
    for (const s of (await core.listServiceForAllNamespaces({ labelSelector: selector })).items) out.push(`Service/${s.metadata?.namespace}/${s.metadata?.name}`);
    for (const s of (await core.listServiceAccountForAllNamespaces({ labelSelector: selector })).items) out.push(`ServiceAccount/${s.metadata?.namespace}/${s.metadata?.name}`);
    for (const c of (await core.listConfigMapForAllNamespaces({ labelSelector: selector })).items) out.push(`ConfigMap/${c.metadata?.namespace}/${c.metadata?.name}`);
  }
  for (const c of (await core.listConfigMapForAllNamespaces({ labelSelector: 'istio.io/config=true' })).items) {
    if (c.metadata?.name === TRUST_BUNDLE_CONFIGMAP) out.push(`ConfigMap/${c.metadata.namespace}/${c.metadata.name}`);
  }
  for (const p of (await core.listPodForAllNamespaces()).items) {
    const a = p.metadata?.annotations ?? {};
    if (REDIRECTION_ANNOTATION in a || WAYPOINT_ANNOTATION in a) out.push(`annotation on Pod/${p.metadata?.namespace}/${p.metadata?.name}`);
  }
  return [...new Set(out)];
}
