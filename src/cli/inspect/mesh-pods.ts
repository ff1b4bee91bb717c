/**
 * Where the mesh's own pods are and which ports the inspect commands read (DESIGN §3): node
 * agents (DaemonSet amesh-node, `app=amesh-node`, host network, admin on 127.0.0.1:15000),
 * the controller (`app=amesh-controller`, monitoring on :15014), waypoints and gateways (pods
 * labelled `gateway.networking.k8s.io/gateway-name`).
 */
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { AmeshError } from '../../errors/amesh-error.js';

export const MESH_NAMESPACE = 'amesh-system';
export const AGENT_SELECTOR = 'app=amesh-node';
export const CONTROLLER_SELECTOR = 'app=amesh-controller';
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
/** Node agent admin (localhost in the agent's network namespace): /config_dump, /debug/denials. */
export const AGENT_ADMIN_PORT = 15000;
/** Controller monitoring (AMESH_CONTROLLER_MONITORING_PORT): /debug/syncz, /metrics. */
export const CONTROLLER_MONITORING_PORT = 15014;

export const isRunning = (p: V1Pod): boolean => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp;
export const podName = (p: V1Pod): string => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;

export async function listAgents(kubeConfig: KubeConfig, namespace = MESH_NAMESPACE): Promise<V1Pod[]> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return (await core.listNamespacedPod({ namespace, labelSelector: AGENT_SELECTOR })).items;
}

/** The running agents, or the one on `node`; an error that lists the nodes that have one. */
export async function selectAgents(kubeConfig: KubeConfig, node: string | undefined, namespace = MESH_NAMESPACE): Promise<V1Pod[]> {
  const all = (await listAgents(kubeConfig, namespace)).filter(isRunning);
  if (node === undefined) {
    if (all.length === 0) throw new AmeshError('AMESH_COMMAND_FAILED', `no running node agent (pods ${AGENT_SELECTOR} in ${namespace})`, { hint: 'is amesh installed? kubectl get ds -n amesh-system amesh-node' });
    return all;
  }
  const on = all.filter((p) => p.spec?.nodeName === node);
  if (on.length === 0) {
    const nodes = all.map((p) => p.spec?.nodeName).filter(Boolean).join(', ') || '(none)';
    throw new AmeshError('AMESH_COMMAND_FAILED', `no running node agent on node ${node}`, { hint: `nodes with a running agent: ${nodes}` });
  }
  return on;
}

export async function findController(kubeConfig: KubeConfig, namespace = MESH_NAMESPACE): Promise<V1Pod> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const pods = (await core.listNamespacedPod({ namespace, labelSelector: CONTROLLER_SELECTOR })).items.filter(isRunning);
  const pod = pods[0];
  if (!pod) throw new AmeshError('AMESH_COMMAND_FAILED', `no running controller (pods ${CONTROLLER_SELECTOR} in ${namespace})`, { hint: 'kubectl get deploy -n amesh-system amesh-controller' });
  return pod;
}
