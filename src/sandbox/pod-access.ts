/**
 * What `amesh sandbox exec` and `logs` need to reach a pod from the host: the kubelet's record of
 * how a container was started (its network namespace and environment) and its log files.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { AmeshError } from '../errors/amesh-error.js';
import { containerLogPath as logPathOf, readContainerRecord } from './kubelet/kubelet.js';

export interface ExecTarget {
  /** Prefix that enters the pod's network namespace (`ip netns exec <netns>` for cluster DNS, `nsenter --net` for host-network pods). */
  prefix: string[];
  /** The container's environment as the kubelet computed it. */
  env: Record<string, string>;
}

function containerName(pod: V1Pod, container: string | undefined): string {
  const names = pod.spec?.containers.map((c) => c.name) ?? [];
  const name = container ?? names[0];
  if (!name || !names.includes(name)) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `pod ${pod.metadata?.namespace}/${pod.metadata?.name} has no container ${JSON.stringify(container)}`, { hint: `containers: ${names.join(', ')}` });
  }
  return name;
}

export async function podExecTarget(o: { stateDir: string; pod: V1Pod; container?: string | undefined }): Promise<ExecTarget> {
  const container = containerName(o.pod, o.container);
  const record = await readContainerRecord(o.stateDir, o.pod.metadata?.uid ?? '', container);
  if (!record) {
    throw new AmeshError('AMESH_SANDBOX_FAILED', `the kubelet has no running container ${container} in pod ${o.pod.metadata?.namespace}/${o.pod.metadata?.name}`, {
      hint: 'is the pod Running? kubectl describe pod / amesh sandbox logs',
    });
  }
  const prefix = record.network.kind === 'pod' ? ['ip', 'netns', 'exec', record.network.netns] : ['nsenter', `--net=${record.network.netnsPath}`, '--'];
  return { prefix, env: record.env };
}

export async function containerLogPath(o: { stateDir: string; pod: V1Pod; container: string; previous?: boolean }): Promise<string | undefined> {
  return logPathOf(o.stateDir, o.pod.metadata?.uid ?? '', containerName(o.pod, o.container), o.previous ?? false);
}
