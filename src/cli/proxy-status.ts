/**
 * `amesh proxy-status`, like `istioctl proxy-status`: for every proxy with an xDS stream to the
 * controller (node agents, waypoints, gateways) whether each resource type it subscribes to is
 * SYNCED, STALE or NACKED (with the proxy's reason), read from the controller's `/debug/syncz`
 * on its monitoring port (15014) through PodHttp; then the agent, waypoint and gateway pods that
 * run but are NOT CONNECTED. Formatting is in inspect/proxy-status-format.ts.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { openClusterAccess } from './inspect/cluster-access.js';
import { CONTROLLER_MONITORING_PORT, findController, GATEWAY_NAME_LABEL, isRunning, listAgents, podName } from './inspect/mesh-pods.js';
import { KUBE_OPTIONS_HELP, parseOutput, structuredText } from './inspect/output.js';
import type { PodHttp } from './inspect/pod-http.js';
import { formatProxyStatus, readSyncz, type ExpectedProxy } from './inspect/proxy-status-format.js';

/** Running agent, waypoint and gateway pods: each should hold an xDS stream. */
async function expectedProxies(kubeConfig: KubeConfig): Promise<ExpectedProxy[]> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const agents = (await listAgents(kubeConfig)).filter(isRunning);
  const gatewayPods = (await core.listPodForAllNamespaces({ labelSelector: GATEWAY_NAME_LABEL })).items.filter(isRunning);
  const classes = new Map<string, string>();
  if (gatewayPods.length) {
    const list = (await kubeConfig
      .makeApiClient(CustomObjectsApi)
      .listClusterCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gateways' })
      .catch(() => ({ items: [] }))) as { items?: Array<{ metadata?: { namespace?: string; name?: string }; spec?: { gatewayClassName?: string } }> };
    for (const g of list.items ?? []) classes.set(`${g.metadata?.namespace}/${g.metadata?.name}`, g.spec?.gatewayClassName ?? '');
  }
  const role = (p: V1Pod): string => (classes.get(`${p.metadata?.namespace}/${p.metadata?.labels?.[GATEWAY_NAME_LABEL]}`) === 'istio-waypoint' ? 'waypoint' : 'gateway');
  return [
    ...agents.map((p) => ({ pod: podName(p), node: p.spec?.nodeName ?? '', role: 'node-agent' })),
    ...gatewayPods.map((p) => ({ pod: podName(p), node: p.spec?.nodeName ?? '', role: role(p) })),
  ];
}

export async function readSynczFrom(podHttp: PodHttp, controller: V1Pod): Promise<unknown> {
  const r = await podHttp.get(controller, CONTROLLER_MONITORING_PORT, '/debug/syncz', { host: 'pod', timeoutMs: 10_000 });
  if (r.status !== 200) {
    throw new AmeshError('AMESH_COMMAND_FAILED', `controller ${podName(controller)}: /debug/syncz answered HTTP ${r.status}: ${r.body.slice(0, 200)}`, {
      hint: r.status === 404 ? 'this controller predates /debug/syncz; upgrade it' : undefined,
    });
  }
  try {
    return JSON.parse(r.body);
  } catch (err) {
    throw new AmeshError('AMESH_COMMAND_FAILED', `controller ${podName(controller)}: /debug/syncz is not JSON`, { cause: err });
  }
}

export function registerProxyStatus(program: Command): void {
  program
    .command('proxy-status')
    .description('xDS sync state of every node agent, waypoint and gateway (SYNCED / STALE / NACKED per type), and mesh pods not connected; like istioctl proxy-status')
    .option('-o, --output <format>', 'short (a table), json or yaml', 'short')
    .option('--kubeconfig <path>', KUBE_OPTIONS_HELP.kubeconfig)
    .option('--dir <dir>', KUBE_OPTIONS_HELP.dir)
    .action(async (o: { output: string; kubeconfig?: string; dir?: string }) => {
      const output = parseOutput(o.output);
      const access = await openClusterAccess(o);
      try {
        const controller = await findController(access.kubeConfig);
        const [syncz, expected] = await Promise.all([readSynczFrom(access.podHttp, controller), expectedProxies(access.kubeConfig)]);
        const proxies = readSyncz(syncz);
        if (output === 'short') {
          process.stdout.write(formatProxyStatus(proxies, expected).text);
          return;
        }
        const connected = new Set(proxies.map((p) => p.pod));
        const data = { proxies: syncz, notConnected: expected.filter((e) => !connected.has(e.pod)) };
        process.stdout.write(structuredText(output, data));
      } finally {
        access.podHttp.close();
      }
    });
}
