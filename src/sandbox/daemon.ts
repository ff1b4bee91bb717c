/**
 * The sandbox daemon: the whole control side of the sandbox cluster in one process, started by
 * `amesh sandbox up` inside the fabric network namespace (so the API server and DNS listen on
 * sandbox addresses without any route from the host), as the child of a supervisor that starts it
 * again when it dies (daemon-supervisor.ts). It hosts:
 *
 *   API server   HTTPS on FABRIC_IP:6443 (for pods, via the `kubernetes` Service 10.96.0.1:443)
 *                and on the host-loopback listener inherited as fd 3 (for kubectl)
 *   controllers  Deployments, ReplicaSets, DaemonSets, scheduler, Endpoints/EndpointSlices, ...
 *   kubelets     one per node: pods as processes in network namespaces
 *   cluster DNS  FABRIC_IP:53 (the `kube-dns` Service 10.96.0.10)
 *   kube-proxy   nftables DNAT for ClusterIPs and LoadBalancer addresses in every node namespace
 *                and the fabric
 *   LoadBalancer addresses from the sandbox pool (a controller), and host loopback ports for
 *                them: listeners on the host's 127.0.0.1 opened through the host netns handle
 *                `sandbox up` passes (AMESH_SANDBOX_HOST_NETNS_FD), relayed from here
 *   mesh config  the node agents' local config files (until the controller serves xDS, #5)
 *
 * Lifecycle: build → run → (SIGTERM) stop kubelets (pods get their grace period), controllers,
 * DNS, kube-proxy rules, API server → save the snapshot → exit 0.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { Server } from 'node:https';
import type { Logger } from 'pino';
import { createApiServer } from './apiserver/http-server.js';
import { createMemoryStore, type MemoryStore } from './apiserver/memory-store.js';
import { TokenAuthority } from './apiserver/tokens.js';
import type { ClusterStore, KubeObject } from './apiserver/types.js';
import { startControllers } from './controllers/index.js';
import { startClusterDns } from './dns/cluster-dns-server.js';
import { Kubelet } from './kubelet/kubelet.js';
import { ClusterNetwork, podNames } from './network/cluster-network.js';
import { KubeProxy } from './network/kube-proxy.js';
import { checkHostNetnsFd, hostNetnsListen } from './network/host-listener.js';
import { HostPortRelay } from './network/host-port-relay.js';
import { API_SERVER_PORT, CLUSTER_DNS_PORT, FABRIC_IP, HOST_NETNS_FD_ENV, readState, sandboxPaths } from './state.js';
import { AmeshError } from '../errors/amesh-error.js';

/** How often the store is snapshotted to disk while running (also on shutdown). */
const SNAPSHOT_INTERVAL_MS = 5_000;

export interface DaemonOptions {
  dir: string;
  log: Logger;
  /** The inherited host-loopback listening socket (fd 3), when the CLI passed one. */
  loopbackFd?: number;
  /**
   * An inherited handle of the host's network namespace (fd 4 from `sandbox up`), for the
   * LoadBalancer host loopback ports; default: $AMESH_SANDBOX_HOST_NETNS_FD. Without it the
   * sandbox has no host ports (logged).
   */
  hostNetnsFd?: number;
}

function hostNetnsFdOf(options: DaemonOptions, log: Logger): number | undefined {
  const raw = options.hostNetnsFd ?? (process.env[HOST_NETNS_FD_ENV] ? Number(process.env[HOST_NETNS_FD_ENV]) : undefined);
  // Children (pods, helpers) must not take the variable for their own.
  delete process.env[HOST_NETNS_FD_ENV];
  if (raw === undefined) {
    log.warn('no host network namespace handle: LoadBalancer Services get no host loopback ports (restart with `amesh sandbox down --keep && amesh sandbox up`)');
    return undefined;
  }
  const check = Number.isInteger(raw) && raw > 2 ? checkHostNetnsFd(raw) : { ok: false as const, reason: `${String(raw)} is not a file descriptor number` };
  if (!check.ok) {
    log.warn({ reason: check.reason }, 'unusable host network namespace handle: LoadBalancer Services get no host loopback ports');
    return undefined;
  }
  return raw;
}

export interface RunningDaemon {
  store: ClusterStore;
  stop(): Promise<void>;
}

/** The Services every Kubernetes cluster has, pointing at the daemon itself. */
function bootstrapObjects(): KubeObject[] {
  const slice = (namespace: string, service: string, ports: Array<{ name: string; port: number; protocol: string }>): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: service, namespace, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'amesh-sandbox' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [FABRIC_IP], conditions: { ready: true, serving: true, terminating: false } }],
    ports,
  });
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
      spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: API_SERVER_PORT }] },
    },
    {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'kubernetes', namespace: 'default' },
      subsets: [{ addresses: [{ ip: FABRIC_IP }], ports: [{ name: 'https', port: API_SERVER_PORT, protocol: 'TCP' }] }],
    },
    slice('default', 'kubernetes', [{ name: 'https', port: API_SERVER_PORT, protocol: 'TCP' }]),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
      spec: {
        clusterIP: '10.96.0.10',
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP', targetPort: CLUSTER_DNS_PORT },
          { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: CLUSTER_DNS_PORT },
        ],
      },
    },
    slice('kube-system', 'kube-dns', [
      { name: 'dns', port: CLUSTER_DNS_PORT, protocol: 'UDP' },
      { name: 'dns-tcp', port: CLUSTER_DNS_PORT, protocol: 'TCP' },
    ]),
  ];
}

function ensureObjects(store: ClusterStore, objects: KubeObject[], log: Logger): void {
  for (const object of objects) {
    const existing = store.get(object.apiVersion, object.kind, object.metadata.namespace, object.metadata.name ?? '');
    if (existing) continue;
    try {
      store.create(object);
    } catch (err) {
      log.warn({ err, kind: object.kind, name: object.metadata.name }, 'could not create a bootstrap object');
    }
  }
}

function listenOn(server: Server, listener: net.Server): void {
  listener.on('connection', (socket) => server.emit('connection', socket));
}

async function listen(listener: net.Server, options: net.ListenOptions, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    listener.once('error', (err) => reject(new AmeshError('AMESH_SANDBOX_FAILED', `the API server cannot listen on ${what}`, { cause: err })));
    listener.listen(options, () => resolve());
  });
}

export async function runDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const { dir, log } = options;
  const paths = sandboxPaths(dir);
  const state = await readState(dir);
  if (!state) throw new AmeshError('AMESH_SANDBOX_FAILED', `no sandbox state in ${dir}`, { hint: 'start the sandbox with `amesh sandbox up`' });

  const [clusterCaPem, certPem, keyPem, adminToken] = await Promise.all([
    readFile(paths.clusterCaCert, 'utf8'),
    readFile(paths.apiServerCert, 'utf8'),
    readFile(paths.apiServerKey, 'utf8'),
    readFile(paths.adminToken, 'utf8').then((t) => t.trim()),
  ]);
  const tokens = await TokenAuthority.create({ keyFile: paths.serviceAccountKey });
  tokens.addStaticToken(adminToken, { username: 'sandbox-admin', uid: 'sandbox-admin', groups: ['system:masters', 'system:authenticated'] });

  const store: MemoryStore = createMemoryStore({ snapshotPath: paths.snapshot, gracefulPodDeletion: true, ...(state.eventLogSize !== undefined ? { eventLogSize: state.eventLogSize } : {}) });
  ensureObjects(store, bootstrapObjects(), log);

  const server = createApiServer({
    store,
    log: log.child({ component: 'apiserver' }),
    tls: { cert: certPem, key: keyPem },
    authenticate: (token: string) => tokens.verify(token),
    tokenReview: (token: string, audiences?: string[]) => tokens.verify(token, audiences ? { audiences } : {}),
  });
  const inside = net.createServer({ pauseOnConnect: false });
  listenOn(server, inside);
  await listen(inside, { host: FABRIC_IP, port: API_SERVER_PORT }, `${FABRIC_IP}:${API_SERVER_PORT}`);
  const loopback = options.loopbackFd === undefined ? undefined : net.createServer();
  if (loopback) {
    listenOn(server, loopback);
    await listen(loopback, { fd: options.loopbackFd } as net.ListenOptions, `the host loopback socket (fd ${options.loopbackFd})`);
  }
  log.info({ address: `${FABRIC_IP}:${API_SERVER_PORT}`, hostPort: state.apiPort }, 'API server listening');

  const network = await ClusterNetwork.attach({ prefix: state.name, nodes: state.nodes, fabricIp: FABRIC_IP }, { log: (m: string) => log.debug(m) });
  const dns = await startClusterDns({ store, address: FABRIC_IP, port: CLUSTER_DNS_PORT, log: log.child({ component: 'dns' }) });
  const kubeProxy = new KubeProxy({ store, network, log: log.child({ component: 'kube-proxy' }) });
  await kubeProxy.start();
  const controllers = startControllers({ store, log: log.child({ component: 'controllers' }), clusterCaPem, loadBalancerCidr: network.plan.loadBalancerCidr });
  const hostNetnsFd = hostNetnsFdOf(options, log);
  const hostPorts = hostNetnsFd === undefined ? undefined : new HostPortRelay({ store, log: log.child({ component: 'host-ports' }), listen: hostNetnsListen(hostNetnsFd) });
  await hostPorts?.start();

  const issueToken = (pod: KubeObject, request: { audience?: string; expirationSeconds?: number } = {}): Promise<string> => {
    const spec = (pod.spec ?? {}) as { serviceAccountName?: string; nodeName?: string };
    const namespace = pod.metadata.namespace ?? 'default';
    const serviceAccount = spec.serviceAccountName ?? 'default';
    const sa = store.get('v1', 'ServiceAccount', namespace, serviceAccount);
    const node = spec.nodeName ? store.get('v1', 'Node', undefined, spec.nodeName) : undefined;
    return tokens.issueServiceAccountToken({
      namespace,
      serviceAccount,
      serviceAccountUid: sa?.metadata.uid ?? '',
      pod: { name: pod.metadata.name ?? '', uid: pod.metadata.uid ?? '' },
      ...(node ? { node: { name: node.metadata.name ?? '', uid: node.metadata.uid ?? '' } } : {}),
      // Projected tokens name their audience (Istio's CA wants `istio-ca`) and lifetime.
      ...(request.audience ? { audiences: [request.audience] } : {}),
      expirationSeconds: request.expirationSeconds ?? 3600,
    });
  };
  const kubelets = state.nodes.map(
    (nodeName) =>
      new Kubelet({
        store,
        nodeName,
        network,
        stateDir: paths.kubelet,
        log: log.child({ component: 'kubelet', node: nodeName }),
        issueToken,
        clusterCaPem,
      }),
  );
  for (const kubelet of kubelets) await kubelet.start();
  // Pods deleted while the daemon was down (or created after the last snapshot) left their
  // network namespaces behind; the pods that still exist keep theirs.
  const livePodNetns = new Set(
    store
      .list('v1', 'Pod')
      .items.filter((pod) => state.nodes.includes(((pod.spec ?? {}) as { nodeName?: string }).nodeName ?? ''))
      .map((pod) => podNames(state.name, pod.metadata.uid ?? '').netns),
  );
  const pruned = await network.pruneUnclaimedPods((netns) => livePodNetns.has(netns));
  if (pruned.length) log.info({ namespaces: pruned }, 'removed the network namespaces of pods that no longer exist');

  let lastSaved = '';
  const snapshot = async (): Promise<void> => {
    const version = store.currentResourceVersion();
    if (version === lastSaved) return;
    await store.saveSnapshot();
    lastSaved = version;
  };
  const snapshotTimer = setInterval(() => {
    snapshot().catch((err: unknown) => log.warn({ err }, 'could not save the API server snapshot'));
  }, SNAPSHOT_INTERVAL_MS);
  snapshotTimer.unref();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(snapshotTimer);
      log.info('stopping: pods first, then controllers, DNS, kube-proxy and the API server');
      await Promise.allSettled(kubelets.map((k) => k.stop()));
      await controllers.stop();
      await hostPorts?.stop();
      await kubeProxy.stop();
      await dns.close();
      inside.close();
      loopback?.close();
      server.close();
      server.closeAllConnections?.();
      await snapshot().catch((err: unknown) => log.warn({ err }, 'could not save the final API server snapshot'));
      store.close();
      log.info('stopped');
    })();
    return stopping;
  };
  return { store, stop };
}
