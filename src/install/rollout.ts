/**
 * Waiting for amesh's workloads to come up (`amesh install`, the sandbox's `up`) with progress:
 * the controller Deployment rolled out and available, the node agent DaemonSet updated and ready
 * on every node — and, for each pod that is not ready, its node and why (the container's waiting
 * reason and message, its last exit, a failing readiness probe, not scheduled).
 *
 * The status evaluation and the line formatting are pure (unit tested); `waitForRollout` polls the
 * API server, prints a line whenever it changes, and on timeout fails naming what did not come up
 * and the commands to look at it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1DaemonSet, type V1Deployment, type V1LabelSelector, type V1Pod } from '@kubernetes/client-node';
import { AmeshError } from '../errors/amesh-error.js';

export interface RolloutTarget {
  kind: 'Deployment' | 'DaemonSet';
  namespace: string;
  name: string;
  /** What the user reads: "controller", "node agents". */
  title: string;
}

export interface PodProblem {
  pod: string;
  node: string | undefined;
  reason: string;
}

export interface RolloutStatus {
  done: boolean;
  /** One progress line, e.g. `node agents: 1/2 updated, 1/2 ready; not ready: amesh-node-x on w2: CrashLoopBackOff`. */
  line: string;
  notReady: PodProblem[];
}

const isReady = (pod: V1Pod): boolean => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** Why a pod is not ready, in a few words; undefined when it is ready. */
export function podNotReadyReason(pod: V1Pod): string | undefined {
  if (pod.metadata?.deletionTimestamp) return 'terminating';
  if (isReady(pod)) return undefined;
  const phase = pod.status?.phase ?? 'Pending';
  if (phase === 'Succeeded' || phase === 'Failed') return `pod ${phase}`;
  if (!pod.spec?.nodeName) {
    const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    return `not scheduled${scheduled?.message ? `: ${scheduled.message}` : ''}`;
  }
  const statuses = pod.status?.containerStatuses ?? [];
  const reasons: string[] = [];
  for (const c of statuses) {
    if (c.ready) continue;
    const prefix = statuses.length > 1 ? `${c.name}: ` : '';
    const last = c.lastState?.terminated;
    const lastExit = last ? ` (last exit ${last.exitCode}${last.reason ? ` ${last.reason}` : ''}${c.restartCount ? `, ${c.restartCount} restarts` : ''})` : '';
    // CrashLoopBackOff's message only repeats the pod's name and uid; the last exit says more.
    const message = c.state?.waiting?.message && c.state.waiting.reason !== 'CrashLoopBackOff' ? `: ${c.state.waiting.message}` : '';
    if (c.state?.waiting) reasons.push(`${prefix}${c.state.waiting.reason ?? 'waiting'}${message}${lastExit}`);
    else if (c.state?.terminated) reasons.push(`${prefix}exited ${c.state.terminated.exitCode}${c.state.terminated.reason ? ` ${c.state.terminated.reason}` : ''}`);
    else if (c.state?.running) reasons.push(`${prefix}running, readiness probe not passing yet${lastExit}`);
    else reasons.push(`${prefix}not started`);
  }
  if (reasons.length) return reasons.join('; ');
  return statuses.length ? 'not ready' : `${phase}, containers not started`;
}

function problems(pods: readonly V1Pod[]): PodProblem[] {
  const out: PodProblem[] = [];
  for (const pod of pods) {
    const reason = podNotReadyReason(pod);
    if (reason) out.push({ pod: pod.metadata?.name ?? '?', node: pod.spec?.nodeName, reason });
  }
  return out.sort((a, b) => (a.node ?? '').localeCompare(b.node ?? '') || a.pod.localeCompare(b.pod));
}

function withProblems(head: string, notReady: readonly PodProblem[], done: boolean): string {
  if (done || notReady.length === 0) return head;
  return `${head}; not ready: ${notReady.map((p) => `${p.pod}${p.node ? ` on ${p.node}` : ''}: ${p.reason}`).join(', ')}`;
}

/** As `kubectl rollout status deployment`: observed, every replica updated and available, no old ones left. */
export function deploymentStatus(title: string, d: V1Deployment, pods: readonly V1Pod[]): RolloutStatus {
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  const observed = (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1);
  const updated = s.updatedReplicas ?? 0;
  const available = s.availableReplicas ?? 0;
  const total = s.replicas ?? 0;
  const done = observed && updated >= want && available >= want && total <= updated;
  const old = total > updated ? `, ${total - updated} old` : '';
  const notReady = problems(pods);
  return { done, line: withProblems(`${title}: ${Math.min(updated, want)}/${want} updated, ${Math.min(available, want)}/${want} available${old}`, notReady, done), notReady };
}

/** As `kubectl rollout status daemonset`: observed, every scheduled pod updated and available. */
export function daemonSetStatus(title: string, ds: V1DaemonSet, pods: readonly V1Pod[]): RolloutStatus {
  const s = ds.status;
  const desired = s?.desiredNumberScheduled ?? 0;
  const observed = (s?.observedGeneration ?? 0) >= (ds.metadata?.generation ?? 1);
  const updated = s?.updatedNumberScheduled ?? 0;
  const ready = s?.numberReady ?? 0;
  const available = s?.numberAvailable ?? 0;
  // desired 0 before the controller has seen the DaemonSet is not "done".
  const done = observed && s !== undefined && desired > 0 && updated >= desired && available >= desired;
  const notReady = problems(pods);
  return { done, line: withProblems(`${title}: ${updated}/${desired} updated, ${ready}/${desired} ready`, notReady, done), notReady };
}

export function selectorString(selector: V1LabelSelector | undefined): string {
  return Object.entries(selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export interface WaitOptions {
  timeoutMs: number;
  progress: (line: string) => void;
  pollMs?: number;
  /** Set when the cluster is an amesh sandbox: the hint names `amesh sandbox logs --dir <dir>`. */
  sandboxDir?: string;
  /** Checked on every poll: an error ends the wait at once (the sandbox daemon died). */
  fatal?: () => Error | undefined;
}

/** The commands that show why a pod is not ready, for the error hint. */
export function lookCommands(namespace: string, pod: string, sandboxDir?: string): string {
  const logs = sandboxDir !== undefined ? `amesh sandbox logs --dir ${sandboxDir} ${namespace}/${pod}` : `kubectl -n ${namespace} logs ${pod}`;
  return `kubectl -n ${namespace} describe pod ${pod}; ${logs}`;
}

/** Reads one target's object and pods and evaluates them. */
export async function readRollout(kc: KubeConfig, target: RolloutTarget): Promise<RolloutStatus> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const object = target.kind === 'Deployment' ? await apps.readNamespacedDeployment({ name: target.name, namespace: target.namespace }) : await apps.readNamespacedDaemonSet({ name: target.name, namespace: target.namespace });
  const labelSelector = selectorString(object.spec?.selector);
  const pods = labelSelector ? (await core.listNamespacedPod({ namespace: target.namespace, labelSelector })).items : [];
  return target.kind === 'Deployment' ? deploymentStatus(target.title, object as V1Deployment, pods) : daemonSetStatus(target.title, object as V1DaemonSet, pods);
}

/**
 * Polls every target until all are rolled out, printing each target's line when it changes.
 * Fails after `timeoutMs` naming the targets that did not come up, their unready pods and reasons,
 * and the commands to look further.
 */
export async function waitForRollout(kc: KubeConfig, targets: readonly RolloutTarget[], options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const shown = new Map<string, string>();
  const last = new Map<string, RolloutStatus>();
  const errors = new Map<string, unknown>();
  const pending = new Set(targets);
  for (;;) {
    const stop = options.fatal?.();
    if (stop) throw stop;
    for (const target of [...pending]) {
      try {
        const status = await readRollout(kc, target);
        errors.delete(target.name);
        last.set(target.name, status);
        if (shown.get(target.name) !== status.line) {
          shown.set(target.name, status.line);
          options.progress(status.line);
        }
        if (status.done) pending.delete(target);
      } catch (err) {
        errors.set(target.name, err);
      }
    }
    if (pending.size === 0) return;
    if (Date.now() >= deadline) break;
    await delay(Math.min(options.pollMs ?? 500, Math.max(0, deadline - Date.now())));
  }
  const stuck = [...pending];
  const details = stuck.map((t) => {
    const status = last.get(t.name);
    const err = errors.get(t.name);
    return `${t.kind.toLowerCase()} ${t.namespace}/${t.name}: ${status ? status.line : `could not be read (${(err as Error | undefined)?.message ?? 'unknown error'})`}`;
  });
  const firstBad = stuck.flatMap((t) => (last.get(t.name)?.notReady ?? []).map((p) => ({ namespace: t.namespace, pod: p.pod })))[0];
  const look = firstBad ? lookCommands(firstBad.namespace, firstBad.pod, options.sandboxDir) : `kubectl -n ${stuck[0]?.namespace} get pods -o wide`;
  throw new AmeshError('AMESH_COMMAND_FAILED', `timed out after ${Math.round(options.timeoutMs / 1000)} s: ${stuck.map((t) => t.title).join(' and ')} did not come up\n  ${details.join('\n  ')}`, {
    cause: errors.values().next().value,
    hint: `look with: ${look}; then re-run the command (it is idempotent) or raise --timeout`,
  });
}
