/**
 * `amesh namespace enroll|unenroll NS [--timeout 2m] [--no-wait]`: sets (removes) the Namespace
 * label `istio.io/dataplane-mode=ambient`, then waits — bounded, with progress — until the
 * namespace's pods show the controller's `ambient.istio.io/redirection` annotation: `enabled` on
 * every pod the label enrols (their node agent confirmed the capture), resp. no longer `enabled`
 * or `pending` (`disabled`, or absent, which means the same). Pods that opt out with their own
 * `istio.io/dataplane-mode=none`, host-network pods and finished or terminating pods are not
 * waited for; a pod's own `istio.io/dataplane-mode=ambient` keeps it enrolled after unenroll
 * (reported).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { DATAPLANE_MODE_LABEL, enrolmentOf } from '../controller/translate/enrolment.js';
import { CLUSTER_OPTIONS_HELP, openCluster, parseTimeout, type ClusterOptions } from './install.js';

export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';

export interface CapturePods {
  done: boolean;
  line: string;
  /** Pods still waited for, with their annotation. */
  waiting: Array<{ pod: string; state: string }>;
  /** Pods that keep their own enrolment whatever the namespace says. */
  podLabelled: string[];
}

const relevant = (pod: V1Pod): boolean => !pod.spec?.hostNetwork && !pod.metadata?.deletionTimestamp && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';

/** Pure: how far `enroll` (want `enabled`) or `unenroll` (want not enabled/pending) is. */
export function capturePods(want: 'enroll' | 'unenroll', namespace: V1Namespace, pods: readonly V1Pod[]): CapturePods {
  const ns = { metadata: { ...(namespace.metadata?.labels ? { labels: namespace.metadata.labels } : {}) } };
  const waiting: CapturePods['waiting'] = [];
  const podLabelled: string[] = [];
  let settled = 0;
  let considered = 0;
  for (const pod of pods) {
    if (!relevant(pod)) continue;
    const name = pod.metadata?.name ?? '?';
    const enrolment = enrolmentOf({ metadata: { ...(pod.metadata?.labels ? { labels: pod.metadata.labels } : {}) } }, ns);
    const state = pod.metadata?.annotations?.[REDIRECTION_ANNOTATION] ?? 'disabled';
    if (want === 'enroll') {
      if (!enrolment.enrolled) continue; // opted out
      considered++;
      if (state === 'enabled') settled++;
      else waiting.push({ pod: name, state });
    } else {
      if (enrolment.enrolled) {
        podLabelled.push(name);
        continue;
      }
      considered++;
      if (state !== 'enabled' && state !== 'pending') settled++;
      else waiting.push({ pod: name, state });
    }
  }
  const done = waiting.length === 0;
  const verb = want === 'enroll' ? 'captured (redirection enabled)' : 'released (redirection disabled)';
  const tail = waiting.length ? `; waiting: ${waiting.map((w) => `${w.pod} (${w.state})`).join(', ')}` : '';
  return { done, line: `pods ${verb}: ${settled}/${considered}${tail}`, waiting, podLabelled };
}

interface NamespaceFlags extends ClusterOptions {
  timeout: string;
  wait: boolean;
}

async function run(want: 'enroll' | 'unenroll', name: string, o: NamespaceFlags): Promise<void> {
  const timeoutMs = parseTimeout(o.timeout);
  const cluster = await openCluster(o);
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const ns = await core.readNamespace({ name }).catch((err: unknown) => {
    throw new AmeshError('AMESH_CONFIG_INVALID', `namespace ${name} not found in ${cluster.description}`, { cause: err, hint: `create it first: kubectl create namespace ${name}` });
  });
  if (want === 'enroll') {
    const agents = await cluster.kubeConfig
      .makeApiClient(AppsV1Api)
      .readNamespacedDaemonSet({ name: 'amesh-node', namespace: 'amesh-system' })
      .catch(() => undefined);
    if (!agents) throw new AmeshError('AMESH_CONFIG_INVALID', `amesh is not installed in ${cluster.description}: no node agents would capture the pods of ${name}`, { hint: 'install it first: amesh install' });
  }
  const value = want === 'enroll' ? 'ambient' : null;
  if ((ns.metadata?.labels?.[DATAPLANE_MODE_LABEL] ?? null) === value) console.log(`• namespace ${name} ${want === 'enroll' ? 'is already enrolled' : 'is not enrolled'} (${DATAPLANE_MODE_LABEL}${value ? `=${value}` : ' unset'})`);
  else {
    await core.patchNamespace({ name, body: { metadata: { labels: { [DATAPLANE_MODE_LABEL]: value } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    console.log(`• namespace ${name}: ${value ? `labelled ${DATAPLANE_MODE_LABEL}=${value}` : `label ${DATAPLANE_MODE_LABEL} removed`}`);
  }
  if (!o.wait) return;
  const deadline = Date.now() + timeoutMs;
  let shown = '';
  for (;;) {
    const [current, pods] = await Promise.all([core.readNamespace({ name }), core.listNamespacedPod({ namespace: name })]);
    const state = capturePods(want, current, pods.items);
    if (state.line !== shown) console.log(`• ${(shown = state.line)}`);
    if (state.done) {
      if (state.podLabelled.length) console.log(`  still enrolled by their own ${DATAPLANE_MODE_LABEL}=ambient label: ${state.podLabelled.join(', ')}`);
      return;
    }
    if (Date.now() >= deadline) {
      throw new AmeshError('AMESH_COMMAND_FAILED', `timed out after ${Math.round(timeoutMs / 1000)} s: ${state.line}`, {
        hint: `see why with: amesh diagnose ${name}/${state.waiting[0]?.pod ?? '<pod>'}${cluster.sandboxDir !== undefined ? ` --dir ${cluster.sandboxDir}` : ''}; the label is set — pods follow once their node agent confirms`,
      });
    }
    await delay(500);
  }
}

export function registerNamespace(program: Command): void {
  const namespace = program.command('namespace').description('enrol namespaces in the mesh (Istio ambient labels) and wait for their pods');
  for (const want of ['enroll', 'unenroll'] as const) {
    namespace
      .command(want)
      .description(want === 'enroll' ? `label NS ${DATAPLANE_MODE_LABEL}=ambient and wait until its pods are captured` : `remove NS's ${DATAPLANE_MODE_LABEL} label and wait until its pods are released`)
      .argument('<namespace>', 'the namespace')
      .option('--timeout <duration>', CLUSTER_OPTIONS_HELP.timeout, '2m')
      .option('--no-wait', 'set the label and return')
      .option('--kubeconfig <path>', CLUSTER_OPTIONS_HELP.kubeconfig)
      .option('--context <name>', CLUSTER_OPTIONS_HELP.context)
      .option('--dir <dir>', CLUSTER_OPTIONS_HELP.dir)
      .action((name: string, o: NamespaceFlags) => run(want, name, o));
  }
}
