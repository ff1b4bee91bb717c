/**
 * `amesh diagnose <namespace>/<pod>`: why is this pod (not) in the mesh, and what is failing its
 * traffic — one line per finding with its fix, exit status 0 when healthy, 1 when there are
 * problems (`-o json` for tools).
 *
 * Gathers facts (this file) and decides (inspect/diagnose-rules.ts, pure):
 * - API server: the pod (labels, annotations `ambient.istio.io/redirection` and the controller's
 *   `amesh.io/waypoint`, node, phase, host network), its namespace's labels, Services selecting it
 *   (with their `istio.io/WaypointBound` condition), waypoint Gateways and `istio.io/waypoint-for`,
 *   PeerAuthentications and AuthorizationPolicies that select it (its namespace + the root
 *   namespace amesh-system), the controller's pods;
 * - the node agent on the pod's node, through PodHttp: `/config_dump` (is the workload known,
 *   its identity's certificate state, CA and xDS status) and `/debug/denials` (recent denials to
 *   or from the pod's address, naming the deciding policy).
 * A source that cannot be read becomes a fact ("could not read…") rather than a failure: the
 * command's job is to explain, so it says what it could not see.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { statusCodeOf } from '../controller/kube/informer.js';
import { parseDurationSeconds } from './ca.js';
import { readAgentDenials, readAgentDump } from './inspect/agent-dump.js';
import { openClusterAccess } from './inspect/cluster-access.js';
import { diagnose, formatDiagnosis, identityOf, relevantDenials, type DiagnoseFacts } from './inspect/diagnose-rules.js';
import { CONTROLLER_SELECTOR, isRunning, listAgents, MESH_NAMESPACE, podName } from './inspect/mesh-pods.js';
import { KUBE_OPTIONS_HELP, parseOutput, structuredText } from './inspect/output.js';
import type { PodHttp } from './inspect/pod-http.js';

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

interface CustomObject {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: {
    gatewayClassName?: string;
    selector?: { matchLabels?: Record<string, string> };
    targetRef?: unknown;
    targetRefs?: unknown[];
    action?: string;
    mtls?: { mode?: string };
  };
  status?: { conditions?: Condition[] };
}

function parseRef(ref: string, defaultNamespace: string): { namespace: string; name: string } {
  const parts = ref.split('/');
  if (parts.length === 1 && parts[0]) return { namespace: defaultNamespace, name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  throw new AmeshError('AMESH_CONFIG_INVALID', `${JSON.stringify(ref)} is not a pod reference`, { hint: 'write <namespace>/<pod>, e.g. demo/backend-v1-7d9c4-abcde (a Deployment name works when it has one pod)' });
}

/** The pod by name, or the only pod whose name starts with `<name>-` (a Deployment's). */
async function findPod(core: CoreV1Api, namespace: string, name: string): Promise<V1Pod> {
  const pods = (await core.listNamespacedPod({ namespace })).items;
  const exact = pods.find((p) => p.metadata?.name === name);
  if (exact) return exact;
  const prefixed = pods.filter((p) => p.metadata?.name?.startsWith(`${name}-`) && !p.metadata.deletionTimestamp);
  if (prefixed.length === 1 && prefixed[0]) return prefixed[0];
  throw new AmeshError('AMESH_COMMAND_FAILED', prefixed.length > 1 ? `${namespace}/${name} matches several pods: ${prefixed.map((p) => p.metadata?.name).join(', ')}` : `pod ${namespace}/${name} not found`, {
    hint: `pods in ${namespace}: ${pods.map((p) => p.metadata?.name).join(', ') || '(none)'}`,
  });
}

function readyOf(pod: V1Pod): { ready?: { status: boolean; message: string } } {
  const c = pod.status?.conditions?.find((x) => x.type === 'Ready');
  return c ? { ready: { status: c.status === 'True', message: c.message ?? '' } } : {};
}

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>): boolean => Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

/** Lists a namespaced custom resource, trying versions in order; [] when the kind is not served. */
async function listCustom(custom: CustomObjectsApi, group: string, versions: readonly string[], plural: string, namespace: string): Promise<CustomObject[]> {
  for (const version of versions) {
    try {
      const r = (await custom.listNamespacedCustomObject({ group, version, namespace, plural })) as { items?: CustomObject[] };
      return r.items ?? [];
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
  }
  return [];
}

export async function gatherFacts(kubeConfig: KubeConfig, podHttp: PodHttp, ref: { namespace: string; name: string }, o: { sinceMs: number; now?: number }): Promise<DiagnoseFacts> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const pod = await findPod(core, ref.namespace, ref.name);
  const namespace = pod.metadata?.namespace ?? ref.namespace;
  const labels = pod.metadata?.labels ?? {};
  const node = pod.spec?.nodeName ?? '';
  const ip = pod.status?.podIP ?? '';
  const uid = pod.metadata?.uid ?? '';

  const [ns, services, controllerPods, agents] = await Promise.all([
    core.readNamespace({ name: namespace }),
    core.listNamespacedService({ namespace }),
    core.listNamespacedPod({ namespace: MESH_NAMESPACE, labelSelector: CONTROLLER_SELECTOR }),
    listAgents(kubeConfig),
  ]);
  const namespaceLabels = ns.metadata?.labels ?? {};

  const useWaypointNamespaces = new Set([namespace, labels['istio.io/use-waypoint-namespace'], namespaceLabels['istio.io/use-waypoint-namespace']].filter((x): x is string => !!x));
  const policyNamespaces = [...new Set([namespace, MESH_NAMESPACE])];
  const [gateways, peerAuthentications, authorizationPolicies] = await Promise.all([
    Promise.all([...useWaypointNamespaces].map((n) => listCustom(custom, 'gateway.networking.k8s.io', ['v1', 'v1beta1'], 'gateways', n))).then((l) => l.flat()),
    Promise.all(policyNamespaces.map((n) => listCustom(custom, 'security.istio.io', ['v1', 'v1beta1'], 'peerauthentications', n))).then((l) => l.flat()),
    Promise.all(policyNamespaces.map((n) => listCustom(custom, 'security.istio.io', ['v1', 'v1beta1'], 'authorizationpolicies', n))).then((l) => l.flat()),
  ]);
  // A policy applies when it selects the pod, or has no selector (its namespace; the root namespace: the mesh).
  const applies = (p: CustomObject): boolean => !p.spec?.targetRef && !p.spec?.targetRefs?.length && selects(p.spec?.selector?.matchLabels, labels);
  const scopeOf = (p: CustomObject): string => (p.spec?.selector?.matchLabels ? 'selects the pod' : p.metadata?.namespace === MESH_NAMESPACE ? 'mesh-wide' : 'namespace-wide');

  const facts: DiagnoseFacts = {
    pod: {
      namespace,
      name: pod.metadata?.name ?? ref.name,
      uid,
      phase: pod.status?.phase ?? '',
      ...readyOf(pod),
      deleting: !!pod.metadata?.deletionTimestamp,
      hostNetwork: pod.spec?.hostNetwork === true,
      node,
      ip,
      serviceAccount: pod.spec?.serviceAccountName ?? 'default',
      labels,
      annotations: pod.metadata?.annotations ?? {},
    },
    namespaceLabels,
    trustDomain: 'cluster.local',
    services: services.items
      .filter((s) => s.spec?.selector && Object.keys(s.spec.selector).length > 0 && selects(s.spec.selector, labels))
      .map((s) => {
        const c = (s.status as { conditions?: Condition[] } | undefined)?.conditions?.find((x) => x.type === 'istio.io/WaypointBound');
        return { name: s.metadata?.name ?? '', ...(c ? { waypointBound: { status: c.status ?? '', reason: c.reason ?? '', message: c.message ?? '' } } : {}) };
      }),
    waypoints: gateways
      .filter((g) => g.spec?.gatewayClassName === 'istio-waypoint')
      .map((g) => {
        const programmed = g.status?.conditions?.find((c) => c.type === 'Programmed');
        return {
          namespace: g.metadata?.namespace ?? '',
          name: g.metadata?.name ?? '',
          for: g.metadata?.labels?.['istio.io/waypoint-for'] ?? 'service',
          programmed: programmed ? programmed.status === 'True' : undefined,
          programmedMessage: programmed?.message ?? '',
        };
      }),
    peerAuthentications: peerAuthentications.filter(applies).map((p) => ({ namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '', mode: p.spec?.mtls?.mode ?? '' })),
    existingAuthorizationPolicies: authorizationPolicies.map((p) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`),
    authorizationPolicies: authorizationPolicies.filter(applies).map((p) => ({ namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '', action: p.spec?.action ?? 'ALLOW', scope: scopeOf(p) })),
    controller: { running: controllerPods.items.filter(isRunning).length, total: controllerPods.items.length },
  };

  const agent = agents.find((a) => a.spec?.nodeName === node && !a.metadata?.deletionTimestamp);
  if (agent && node) {
    const running = isRunning(agent);
    facts.agent = { pod: podName(agent), running };
    if (running) {
      const [dump, denials] = await Promise.allSettled([readAgentDump(podHttp, agent), readAgentDenials(podHttp, agent)]);
      if (dump.status === 'fulfilled') {
        const view = dump.value.view;
        const workload = view.workloads.find((w) => (uid && w.uid === uid) || (w.namespace === namespace && w.name === facts.pod.name));
        const rawWorkload = (view.raw.workloads as Array<{ uid?: string; trustDomain?: string }> | undefined)?.find((w) => w.uid === workload?.uid);
        if (rawWorkload?.trustDomain) facts.trustDomain = rawWorkload.trustDomain;
        const identity = identityOf(facts);
        const cert = view.certificates.find((c) => c.identity === identity && (c.type === 'Leaf' || c.type === ''));
        const xds = view.raw.xds as { connected?: boolean; lastError?: string; address?: string } | undefined;
        facts.agent.dump = {
          workloadKnown: !!workload,
          workloadProtocol: workload?.protocol ?? '',
          ...(cert ? { certificate: { state: cert.state, valid: cert.valid, notAfter: cert.notAfter, error: cert.error } } : {}),
          caAddress: view.ca.address,
          caProblem: view.ca.problem,
          ...(xds && typeof xds.connected === 'boolean' ? { xds: { connected: xds.connected, lastError: xds.lastError ?? '', address: xds.address ?? '' } } : {}),
        };
      } else facts.agent.readError = dump.reason instanceof Error ? dump.reason.message : String(dump.reason);
      if (denials.status === 'fulfilled') facts.agent.denials = relevantDenials(denials.value, { ip, uid }, o.sinceMs, o.now ?? Date.now());
      else facts.agent.denialsError = denials.reason instanceof Error ? denials.reason.message : String(denials.reason);
    }
  }
  return facts;
}

export function registerDiagnose(program: Command): void {
  program
    .command('diagnose')
    .description('why a pod is (not) in the mesh and what fails its traffic: one line per finding with the fix; exit 1 when there are problems')
    .argument('<pod>', '<namespace>/<pod> (a Deployment name works when it has one pod)')
    .option('-o, --output <format>', 'short (plain lines) or json', 'short')
    .option('--since <duration>', 'how far back recent denials count (e.g. 15m, 1h)', '15m')
    .option('--kubeconfig <path>', KUBE_OPTIONS_HELP.kubeconfig)
    .option('--dir <dir>', KUBE_OPTIONS_HELP.dir)
    .action(async (ref: string, o: { output: string; since: string; kubeconfig?: string; dir?: string }) => {
      const output = parseOutput(o.output, ['short', 'json']);
      const since = parseDurationSeconds(o.since);
      if (since === undefined) throw new AmeshError('AMESH_CONFIG_INVALID', `--since ${o.since}: expected a duration such as 15m, 1h or 600s`);
      const access = await openClusterAccess(o);
      try {
        const defaultNamespace = access.kubeConfig.getContextObject(access.kubeConfig.getCurrentContext())?.namespace ?? 'default';
        const facts = await gatherFacts(access.kubeConfig, access.podHttp, parseRef(ref, defaultNamespace), { sinceMs: since * 1000 });
        const result = diagnose(facts);
        process.stdout.write(output === 'json' ? structuredText('json', { ...result, facts }) : formatDiagnosis(result));
        process.exitCode = result.healthy ? 0 : 1;
      } finally {
        access.podHttp.close();
      }
    });
}
