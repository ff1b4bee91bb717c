/**
 * The cluster of the xDS scale bench (`bench/xds-scale.ts`): the sandbox API server in this
 * process (TLS on 127.0.0.1, port 0, TokenAuthority-backed authentication and TokenReview, as
 * test/direct/controller-app.test.ts wires it) and a mesh written straight into its store.
 *
 * Shape (`meshObjects`, pure): `namespaces` namespaces labelled ambient; Services spread over
 * them round robin, each with a named and a numeric targetPort; pods assigned to Services round
 * robin (2 000 pods / 500 Services = 4 each), selected by `app`, Running with a pod IP and Ready,
 * spread over the Nodes round robin. Pods run no process: only their API objects exist.
 * The node agents' own pods (`amesh-node-<node>`) stay Pending, so they are not workloads and
 * the expected counts are exactly the bench's pods and Services.
 */
import { once } from 'node:events';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { CA_TOKEN_AUDIENCE } from '../src/controller/ca/types.js';
import { DATAPLANE_MODE_LABEL } from '../src/controller/translate/enrolment.js';
import { createApiServer } from '../src/sandbox/apiserver/http-server.js';
import { createMemoryStore, type MemoryStore } from '../src/sandbox/apiserver/memory-store.js';
import { createServingCertificates } from '../src/sandbox/apiserver/serving-cert.js';
import { TokenAuthority } from '../src/sandbox/apiserver/tokens.js';
import type { KubeObject } from '../src/sandbox/apiserver/types.js';

export const AGENT_NAMESPACE = 'amesh-system';
export const AGENT_SERVICE_ACCOUNT = 'amesh-node';
const ADMIN_TOKEN = 'xds-scale-admin';
const HOST = '127.0.0.1';

export interface MeshShape {
  pods: number;
  services: number;
  nodes: number;
  namespaces: number;
}

/** One bench pod, as the change loop needs it. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
  node: string;
}

export interface MeshObjects {
  namespaces: KubeObject[];
  nodes: KubeObject[];
  services: KubeObject[];
  /** Pods as created (Pending); `status` is what the kubelet would report once they run. */
  pods: Array<{ pod: KubeObject; status: Record<string, unknown> }>;
}

export const nodeName = (i: number): string => `bench-node-${String(i).padStart(2, '0')}`;
const namespaceName = (i: number): string => `bench-ns-${String(i).padStart(2, '0')}`;
const serviceName = (i: number): string => `svc-${String(i).padStart(4, '0')}`;

/** 10.96.0.0/16 is the sandbox's service CIDR; start at 10.96.10.2, clear of the reserved .0.1 and .0.10. */
function clusterIp(i: number): string {
  return `10.96.${10 + Math.floor(i / 250)}.${(i % 250) + 2}`;
}

function podIp(i: number): string {
  return `10.200.${Math.floor(i / 250)}.${(i % 250) + 2}`;
}

/** The bench's mesh as API objects. Pure; names and addresses are deterministic. */
export function meshObjects(shape: MeshShape): MeshObjects {
  if (shape.services > 250 * 240) throw new Error('at most 60 000 services (the service CIDR block the bench uses)');
  if (shape.pods > 250 * 256) throw new Error('at most 64 000 pods (the pod CIDR block the bench uses)');
  const namespaceCount = Math.max(1, Math.min(shape.namespaces, shape.services));
  const namespaces = Array.from({ length: namespaceCount }, (_, i): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: namespaceName(i), labels: { [DATAPLANE_MODE_LABEL]: 'ambient' } },
  }));
  const nodes = Array.from({ length: shape.nodes }, (_, i): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: nodeName(i), labels: { 'kubernetes.io/hostname': nodeName(i) } },
    status: { addresses: [{ type: 'InternalIP', address: `172.18.0.${i + 2}` }], conditions: [{ type: 'Ready', status: 'True' }] },
  }));
  const services = Array.from({ length: shape.services }, (_, i): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(i), namespace: namespaceName(i % namespaceCount) },
    spec: {
      type: 'ClusterIP',
      clusterIP: clusterIp(i),
      clusterIPs: [clusterIp(i)],
      selector: { app: serviceName(i) },
      ports: [
        // Named target: resolved per pod from its container port (workload.ts).
        { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
        { name: 'grpc', port: 9090, targetPort: 9090, protocol: 'TCP' },
      ],
    },
  }));
  const pods = Array.from({ length: shape.pods }, (_, i) => {
    const service = i % shape.services;
    const node = nodeName(i % shape.nodes);
    const pod: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${serviceName(service)}-${String(Math.floor(i / shape.services)).padStart(3, '0')}`,
        namespace: namespaceName(service % namespaceCount),
        labels: { app: serviceName(service), version: 'v1' },
      },
      spec: {
        nodeName: node,
        serviceAccountName: `sa-${serviceName(service)}`,
        containers: [{ name: 'app', image: 'bench/app:1', ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9090 }] }],
      },
    };
    const status = {
      phase: 'Running',
      hostIP: `172.18.0.${(i % shape.nodes) + 2}`,
      podIP: podIp(i),
      podIPs: [{ ip: podIp(i) }],
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Initialized', status: 'True' },
        { type: 'ContainersReady', status: 'True' },
        { type: 'Ready', status: 'True' },
      ],
    };
    return { pod, status };
  });
  return { namespaces, nodes, services, pods };
}

export interface BenchCluster {
  store: MemoryStore;
  /** The API server's URL and a kubeconfig (JSON) with an admin token for it. */
  server: string;
  kubeConfigJson: string;
  pods: PodRef[];
  /** What every agent must end up with: listed pods and ClusterIP Services in the store. */
  expected: { workloads: number; services: number };
  /** Creates `amesh-node-<node>` (Pending) and returns a token bound to it and its Node, audience istio-ca. */
  agentToken(node: string): Promise<string>;
  stop(): Promise<void>;
}

/** Starts the API server and writes the mesh into its store; `onProgress` gets a line per 500 pods. */
export async function startBenchCluster(shape: MeshShape, onProgress: (line: string) => void = () => undefined): Promise<BenchCluster> {
  const tokens = await TokenAuthority.create();
  tokens.addStaticToken(ADMIN_TOKEN, { username: 'admin', uid: 'admin', groups: ['system:masters', 'system:authenticated'] });
  const tls = await createServingCertificates({ ipAddresses: [HOST], dnsNames: ['localhost'], days: 1 });
  const store = createMemoryStore();
  let server: Server | undefined;
  const stop = async (): Promise<void> => {
    if (server?.listening) {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    }
    store.close();
  };
  try {
    const objects = meshObjects(shape);
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: AGENT_NAMESPACE } });
    const serviceAccount = store.create<KubeObject>({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: AGENT_SERVICE_ACCOUNT, namespace: AGENT_NAMESPACE } });
    for (const o of [...objects.namespaces, ...objects.nodes, ...objects.services]) store.create(o);
    const pods: PodRef[] = [];
    for (const [i, { pod, status }] of objects.pods.entries()) {
      const created = store.create(pod);
      // Status as the kubelet writes it: through the status subresource after the pod exists.
      store.update({ ...created, status }, { subresource: 'status' });
      pods.push({ namespace: created.metadata.namespace ?? '', name: created.metadata.name ?? '', uid: created.metadata.uid ?? '', node: String((pod.spec as { nodeName: string }).nodeName) });
      if ((i + 1) % 500 === 0 || i + 1 === objects.pods.length) onProgress(`${i + 1}/${objects.pods.length} pods Running`);
    }
    const expected = countExpected(store);

    server = createApiServer({
      store,
      tls: { cert: tls.certPem, key: tls.keyPem },
      authenticate: (token) => tokens.verify(token),
      tokenReview: (token, audiences) => tokens.verify(token, audiences ? { audiences } : {}),
    });
    server.listen(0, HOST);
    await once(server, 'listening');
    const url = `https://${HOST}:${(server.address() as AddressInfo).port}`;
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'bench', server: url, caData: Buffer.from(tls.caCertPem).toString('base64') }],
      users: [{ name: 'admin', token: ADMIN_TOKEN }],
      contexts: [{ name: 'bench', cluster: 'bench', user: 'admin' }],
      currentContext: 'bench',
    });

    const agentToken = async (node: string): Promise<string> => {
      const nodeObject = store.get('v1', 'Node', undefined, node);
      if (!nodeObject) throw new Error(`no Node ${node} in the bench cluster`);
      const podName = `amesh-node-${node}`;
      const pod: KubeObject =
        store.get('v1', 'Pod', AGENT_NAMESPACE, podName) ??
        store.create<KubeObject>({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: podName, namespace: AGENT_NAMESPACE, labels: { app: 'amesh-node' } },
          spec: { nodeName: node, serviceAccountName: AGENT_SERVICE_ACCOUNT, containers: [{ name: 'agent', image: 'amesh/node:bench' }] },
        });
      return tokens.issueServiceAccountToken({
        namespace: AGENT_NAMESPACE,
        serviceAccount: AGENT_SERVICE_ACCOUNT,
        serviceAccountUid: serviceAccount.metadata.uid ?? '',
        pod: { name: podName, uid: pod.metadata.uid ?? '' },
        node: { name: node, uid: nodeObject.metadata.uid ?? '' },
        audiences: [CA_TOKEN_AUDIENCE],
      });
    };
    return { store, server: url, kubeConfigJson: kubeConfig.exportConfig(), pods, expected, agentToken, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface StoredPod extends KubeObject {
  spec?: { hostNetwork?: boolean };
  status?: { phase?: string; podIP?: string };
}

interface StoredService extends KubeObject {
  spec?: { clusterIP?: string };
}

/** Listed pods (Running, with an IP, not host network) and Services with a ClusterIP, across the store. */
function countExpected(store: MemoryStore): { workloads: number; services: number } {
  const pods = store.list<StoredPod>('v1', 'Pod').items;
  const services = store.list<StoredService>('v1', 'Service').items;
  return {
    workloads: pods.filter((p) => p.status?.phase === 'Running' && p.status.podIP && !p.spec?.hostNetwork && !p.metadata.deletionTimestamp).length,
    services: services.filter((s) => s.spec?.clusterIP && s.spec.clusterIP !== 'None').length,
  };
}

/** A merge patch that opts the pod out of the mesh (`none`) or lifts the opt-out (`undefined`). */
export function setDataplaneMode(store: MemoryStore, pod: PodRef, mode: 'none' | undefined): void {
  store.patch('v1', 'Pod', pod.namespace, pod.name, 'merge', { metadata: { labels: { [DATAPLANE_MODE_LABEL]: mode ?? null } } });
}
