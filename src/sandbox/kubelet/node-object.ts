/**
 * The Node and Lease objects a kubelet registers and keeps fresh (pure builders).
 * https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/node-v1/
 */
import type { KubeObject } from '../apiserver/types.js';

export const KUBELET_VERSION = 'v1.32.0-amesh';
export const LEASE_DURATION_SECONDS = 40;
export const LEASE_RENEW_MS = 10_000;

export interface NodeFacts {
  name: string;
  ip: string;
  podCidr: string;
  now: string;
}

export function nodeLabels(name: string): Record<string, string> {
  return {
    'kubernetes.io/hostname': name,
    'kubernetes.io/os': 'linux',
    'kubernetes.io/arch': process.arch === 'arm64' ? 'arm64' : 'amd64',
    'beta.kubernetes.io/os': 'linux',
    'beta.kubernetes.io/arch': process.arch === 'arm64' ? 'arm64' : 'amd64',
  };
}

export function nodeStatus(f: NodeFacts, previous?: { conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }> }): Record<string, unknown> {
  const since = (type: string, status: string): string => {
    const before = previous?.conditions?.find((c) => c.type === type);
    return before?.status === status && before.lastTransitionTime ? before.lastTransitionTime : f.now;
  };
  const pressure = (type: string, reason: string, message: string): Record<string, unknown> => ({
    type,
    status: 'False',
    reason,
    message,
    lastHeartbeatTime: f.now,
    lastTransitionTime: since(type, 'False'),
  });
  const resources = { cpu: '4', memory: '8Gi', pods: '110', 'ephemeral-storage': '50Gi' };
  return {
    capacity: resources,
    allocatable: resources,
    conditions: [
      pressure('MemoryPressure', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
      pressure('DiskPressure', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
      pressure('PIDPressure', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
      { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: f.now, lastTransitionTime: since('Ready', 'True') },
    ],
    addresses: [
      { type: 'InternalIP', address: f.ip },
      { type: 'Hostname', address: f.name },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    nodeInfo: {
      machineID: '',
      systemUUID: '',
      bootID: '',
      kernelVersion: '',
      osImage: 'amesh sandbox',
      containerRuntimeVersion: 'amesh://0.1.0',
      kubeletVersion: KUBELET_VERSION,
      kubeProxyVersion: KUBELET_VERSION,
      operatingSystem: 'linux',
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
    },
  };
}

export function nodeObject(f: NodeFacts): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: f.name, labels: nodeLabels(f.name), annotations: { 'node.alpha.kubernetes.io/ttl': '0' } },
    spec: { podCIDR: f.podCidr, podCIDRs: [f.podCidr] },
    status: nodeStatus(f),
  };
}

export function leaseObject(node: { name: string; uid?: string }, now: string): KubeObject {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: node.name,
      namespace: 'kube-node-lease',
      ...(node.uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid }] } : {}),
    },
    spec: { holderIdentity: node.name, leaseDurationSeconds: LEASE_DURATION_SECONDS, renewTime: now },
  };
}
