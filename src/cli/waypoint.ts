/**
 * `amesh waypoint apply|list|delete|status`, mirroring `istioctl waypoint` (DESIGN §7).
 *
 * - apply: server-side applies (field manager `amesh-cli`) a Gateway of class `istio-waypoint`
 *   with the listener `{name: mesh, port: 15008, protocol: HBONE}` and the label
 *   `istio.io/waypoint-for`; `--service-account SA` adds `amesh.io/for-service-account: SA`. The
 *   default name is `waypoint`, or `<SA>-waypoint` for a per-service-account waypoint — not
 *   `<SA>` as early istioctl did: the waypoint runs as a ServiceAccount named like its Gateway,
 *   and reusing the workloads' own account would give the waypoint their identity.
 *   `--enroll-namespace` labels the namespace `istio.io/use-waypoint=<name>`, refusing to replace
 *   another waypoint there without `--overwrite`. `--wait` polls until Programmed, printing each
 *   new state, and fails with the Gateway's own condition message.
 * - list: NAME NAMESPACE FOR SERVICE-ACCOUNT PROGRAMMED ADDRESS (or `-o json`).
 * - delete: the named waypoints (or `--all` in the namespace); a namespace label that pointed at
 *   a deleted waypoint is removed too.
 * - status: each waypoint's conditions, addresses and the Services bound to it (from their
 *   `istio.io/WaypointBound` conditions, which the controller writes).
 * The kubeconfig is found as for `amesh ca rotate-root` (--kubeconfig, in-cluster, $KUBECONFIG).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, setHeaderOptions, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { statusCodeOf } from '../controller/kube/informer.js';
import { FOR_SERVICE_ACCOUNT_ANNOTATION, USE_WAYPOINT_LABEL, USE_WAYPOINT_NAMESPACE_LABEL, WAYPOINT_CLASSES, WAYPOINT_FOR_LABEL, WAYPOINT_HBONE_PORT } from '../controller/translate/waypoint-binding.js';
import { WAYPOINT_FOR_VALUES } from '../controller/waypoint/acceptance.js';
import { apiErrorMessage } from '../controller/waypoint/kube-client.js';
import { WAYPOINT_BOUND_CONDITION } from '../controller/status/waypoint-status.js';
import { parseDurationSeconds } from './ca.js';

export const CLI_FIELD_MANAGER = 'amesh-cli';
export const DEFAULT_WAYPOINT_NAME = 'waypoint';
const GROUP = 'gateway.networking.k8s.io';
const VERSION = 'v1';
const DEFAULT_POLL_MS = 500;

type Print = (line: string) => void;

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

export interface GatewayJson {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string; namespace?: string; generation?: number; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { gatewayClassName?: string };
  status?: { conditions?: Condition[]; addresses?: Array<{ type?: string; value?: string }> };
}

export interface WaypointRow {
  name: string;
  namespace: string;
  for: string;
  serviceAccount: string | undefined;
  programmed: string;
  address: string | undefined;
}

// ---- errors ---------------------------------------------------------------------------------

function apiFailure(kubeConfig: KubeConfig, what: string, err: unknown): AmeshError {
  if (err instanceof AmeshError) return err;
  const status = statusCodeOf(err);
  if (status === undefined) {
    return new AmeshError('AMESH_COMMAND_FAILED', `${what}: cannot reach the Kubernetes API at ${kubeConfig.getCurrentCluster()?.server ?? '(no server)'}: ${apiErrorMessage(err)}`, {
      cause: err,
      hint: 'is the cluster (or `amesh sandbox up`) running? pass --kubeconfig to pick another',
    });
  }
  return new AmeshError('AMESH_COMMAND_FAILED', `${what}: ${apiErrorMessage(err)} (HTTP ${status})`, { cause: err });
}

async function call<T>(kubeConfig: KubeConfig, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw apiFailure(kubeConfig, what, err);
  }
}

/** undefined on 404. */
async function optional<T>(kubeConfig: KubeConfig, what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (statusCodeOf(err) === 404) return undefined;
    throw apiFailure(kubeConfig, what, err);
  }
}

// ---- pure pieces ------------------------------------------------------------------------------

export function parseWaypointFor(value: string): (typeof WAYPOINT_FOR_VALUES)[number] {
  if ((WAYPOINT_FOR_VALUES as readonly string[]).includes(value)) return value as (typeof WAYPOINT_FOR_VALUES)[number];
  throw new AmeshError('AMESH_CONFIG_INVALID', `--for ${value}: expected one of ${WAYPOINT_FOR_VALUES.join(', ')}`);
}

export function defaultWaypointName(serviceAccount: string | undefined): string {
  return serviceAccount ? `${serviceAccount}-waypoint` : DEFAULT_WAYPOINT_NAME;
}

/** The Gateway `apply` writes. */
export function waypointGateway(o: { namespace: string; name: string; for: string; serviceAccount?: string }): KubernetesObject {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'Gateway',
    metadata: {
      name: o.name,
      namespace: o.namespace,
      labels: { [WAYPOINT_FOR_LABEL]: o.for },
      ...(o.serviceAccount ? { annotations: { [FOR_SERVICE_ACCOUNT_ANNOTATION]: o.serviceAccount } } : {}),
    },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: WAYPOINT_HBONE_PORT, protocol: 'HBONE' }] },
  } as KubernetesObject;
}

export function conditionOf(gateway: GatewayJson, type: string): Condition | undefined {
  return gateway.status?.conditions?.find((c) => c.type === type);
}

export function waypointRow(g: GatewayJson): WaypointRow {
  return {
    name: g.metadata.name ?? '',
    namespace: g.metadata.namespace ?? '',
    for: g.metadata.labels?.[WAYPOINT_FOR_LABEL] ?? 'service',
    serviceAccount: g.metadata.annotations?.[FOR_SERVICE_ACCOUNT_ANNOTATION],
    programmed: conditionOf(g, 'Programmed')?.status ?? 'Unknown',
    address: g.status?.addresses?.find((a) => a.type === 'IPAddress')?.value,
  };
}

export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join('');
  return [line(header), ...rows.map(line)];
}

export function formatWaypointTable(rows: readonly WaypointRow[]): string[] {
  return formatTable(
    ['NAME', 'NAMESPACE', 'FOR', 'SERVICE-ACCOUNT', 'PROGRAMMED', 'ADDRESS'],
    rows.map((r) => [r.name, r.namespace, r.for, r.serviceAccount ?? '-', r.programmed, r.address ?? '-']),
  );
}

/** "Programmed=False Pending: waiting for …", or what is missing. */
export function describeProgress(gateway: GatewayJson | undefined): string {
  if (!gateway) return 'the Gateway is not there yet';
  const generation = gateway.metadata.generation;
  const accepted = conditionOf(gateway, 'Accepted');
  const programmed = conditionOf(gateway, 'Programmed');
  if (!accepted && !programmed) return 'no status yet (is the amesh controller running?)';
  const stale = (c: Condition | undefined): boolean => c?.observedGeneration !== undefined && generation !== undefined && c.observedGeneration < generation;
  if (stale(accepted) || stale(programmed)) return 'the controller has not seen the latest change yet';
  if (accepted?.status === 'False') return `not accepted (${accepted.reason ?? '?'}): ${accepted.message ?? ''}`;
  return `${programmed?.reason ?? 'Unknown'}: ${programmed?.message ?? ''}`;
}

export function isProgrammed(gateway: GatewayJson | undefined): boolean {
  if (!gateway) return false;
  const c = conditionOf(gateway, 'Programmed');
  return c?.status === 'True' && (c.observedGeneration === undefined || gateway.metadata.generation === undefined || c.observedGeneration >= gateway.metadata.generation);
}

// ---- commands --------------------------------------------------------------------------------

export interface ApplyOptions {
  namespace: string;
  name?: string;
  for?: string;
  serviceAccount?: string;
  enrollNamespace?: boolean;
  overwrite?: boolean;
  wait?: boolean;
  timeoutMs?: number;
  pollMs?: number;
}

async function requireNamespace(kubeConfig: KubeConfig, core: CoreV1Api, namespace: string): Promise<{ metadata?: { labels?: Record<string, string> } }> {
  const ns = await optional(kubeConfig, `reading namespace ${namespace}`, () => core.readNamespace({ name: namespace }));
  if (!ns) throw new AmeshError('AMESH_CONFIG_INVALID', `namespace ${namespace} not found`, { hint: `create it first: kubectl create namespace ${namespace}` });
  return ns;
}

async function readGateway(kubeConfig: KubeConfig, custom: CustomObjectsApi, namespace: string, name: string): Promise<GatewayJson | undefined> {
  return (await optional(kubeConfig, `reading waypoint ${namespace}/${name}`, () => custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'gateways', name }))) as GatewayJson | undefined;
}

export async function applyWaypoint(kubeConfig: KubeConfig, o: ApplyOptions, print: Print): Promise<GatewayJson | undefined> {
  const waypointFor = parseWaypointFor(o.for ?? 'service');
  const sa = o.serviceAccount?.trim();
  if (o.serviceAccount !== undefined && !sa) throw new AmeshError('AMESH_CONFIG_INVALID', '--service-account: must not be empty');
  const name = o.name ?? defaultWaypointName(sa);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  const ns = await requireNamespace(kubeConfig, core, o.namespace);
  const current = ns.metadata?.labels?.[USE_WAYPOINT_LABEL];
  if (o.enrollNamespace && current !== undefined && current !== name && !o.overwrite) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `namespace ${o.namespace} already uses waypoint ${current} (${USE_WAYPOINT_LABEL}=${current})`, { hint: 'pass --overwrite to switch it to this waypoint' });
  }
  await call(kubeConfig, `applying waypoint ${o.namespace}/${name}`, () => objects.patch(waypointGateway({ namespace: o.namespace, name, for: waypointFor, ...(sa ? { serviceAccount: sa } : {}) }), undefined, undefined, CLI_FIELD_MANAGER, true, PatchStrategy.ServerSideApply));
  print(`waypoint ${o.namespace}/${name} applied`);
  if (o.enrollNamespace) {
    const labels: Record<string, string | null> = { [USE_WAYPOINT_LABEL]: name };
    if (ns.metadata?.labels?.[USE_WAYPOINT_NAMESPACE_LABEL] !== undefined) labels[USE_WAYPOINT_NAMESPACE_LABEL] = null;
    await call(kubeConfig, `labelling namespace ${o.namespace}`, () => core.patchNamespace({ name: o.namespace, body: { metadata: { labels } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)));
    print(`namespace ${o.namespace} labeled with "${USE_WAYPOINT_LABEL}: ${name}"`);
  }
  if (!o.wait) return undefined;
  const timeoutMs = o.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const gateway = await readGateway(kubeConfig, custom, o.namespace, name);
    if (isProgrammed(gateway)) {
      const address = gateway?.status?.addresses?.find((a) => a.type === 'IPAddress')?.value;
      print(`waypoint ${o.namespace}/${name} is programmed${address ? ` (${address})` : ''}`);
      return gateway;
    }
    const progress = describeProgress(gateway);
    const accepted = gateway ? conditionOf(gateway, 'Accepted') : undefined;
    if (accepted?.status === 'False' && accepted.observedGeneration === gateway?.metadata.generation) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `waypoint ${o.namespace}/${name} ${progress}`);
    }
    if (progress !== last) print(`waiting for waypoint ${o.namespace}/${name}: ${progress}`);
    last = progress;
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new AmeshError('AMESH_COMMAND_FAILED', `waypoint ${o.namespace}/${name} was not programmed within ${Math.round(timeoutMs / 1000)}s: ${progress}`, {
        hint: `kubectl -n ${o.namespace} describe deployment ${name}; kubectl -n ${o.namespace} get pods -l gateway.networking.k8s.io/gateway-name=${name}`,
      });
    }
    await delay(Math.min(o.pollMs ?? DEFAULT_POLL_MS, remaining));
  }
}

export async function listWaypointGateways(kubeConfig: KubeConfig, o: { namespace?: string }): Promise<GatewayJson[]> {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const list = (await call(kubeConfig, 'listing waypoints', () =>
    o.namespace === undefined
      ? custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'gateways' })
      : custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: o.namespace, plural: 'gateways' }),
  )) as { items?: GatewayJson[] };
  return (list.items ?? [])
    .filter((g) => WAYPOINT_CLASSES.has(g.spec?.gatewayClassName ?? ''))
    .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
}

export async function deleteWaypoints(kubeConfig: KubeConfig, o: { namespace: string; names: readonly string[]; all?: boolean }, print: Print): Promise<string[]> {
  if (o.all && o.names.length) throw new AmeshError('AMESH_CONFIG_INVALID', 'give waypoint names or --all, not both');
  if (!o.all && o.names.length === 0) throw new AmeshError('AMESH_CONFIG_INVALID', 'name the waypoints to delete, or pass --all');
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const ns = await requireNamespace(kubeConfig, core, o.namespace);
  const names = o.all ? (await listWaypointGateways(kubeConfig, { namespace: o.namespace })).map((g) => g.metadata.name ?? '') : [...o.names];
  const deleted: string[] = [];
  const missing: string[] = [];
  for (const name of names) {
    const gateway = await readGateway(kubeConfig, custom, o.namespace, name);
    if (!gateway || !WAYPOINT_CLASSES.has(gateway.spec?.gatewayClassName ?? '')) {
      missing.push(name);
      continue;
    }
    const gone = await optional(kubeConfig, `deleting waypoint ${o.namespace}/${name}`, () => custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: o.namespace, plural: 'gateways', name }));
    if (gone === undefined) missing.push(name);
    else {
      deleted.push(name);
      print(`waypoint ${o.namespace}/${name} deleted`);
    }
  }
  const labels = ns.metadata?.labels ?? {};
  const used = labels[USE_WAYPOINT_LABEL];
  const usedNamespace = labels[USE_WAYPOINT_NAMESPACE_LABEL] ?? o.namespace;
  if (used !== undefined && usedNamespace === o.namespace && deleted.includes(used)) {
    await call(kubeConfig, `unlabelling namespace ${o.namespace}`, () =>
      core.patchNamespace({ name: o.namespace, body: { metadata: { labels: { [USE_WAYPOINT_LABEL]: null, [USE_WAYPOINT_NAMESPACE_LABEL]: null } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    );
    print(`namespace ${o.namespace} unlabeled (${USE_WAYPOINT_LABEL}=${used} removed)`);
  }
  if (missing.length) throw new AmeshError('AMESH_CONFIG_INVALID', `waypoint${missing.length > 1 ? 's' : ''} not found in namespace ${o.namespace}: ${missing.join(', ')}`);
  return deleted;
}

/** Services whose WaypointBound condition names `namespace/name` as their waypoint. */
export function boundServices(services: ReadonlyArray<{ metadata?: { name?: string; namespace?: string }; status?: { conditions?: Condition[] } }>, namespace: string, name: string): string[] {
  const prefix = `bound to waypoint ${namespace}/${name} (`;
  return services
    .filter((s) => s.status?.conditions?.some((c) => c.type === WAYPOINT_BOUND_CONDITION && c.status === 'True' && (c.message ?? '').startsWith(prefix)))
    .map((s) => `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`)
    .sort();
}

export async function waypointStatus(kubeConfig: KubeConfig, o: { namespace: string; name?: string }, print: Print): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  await requireNamespace(kubeConfig, core, o.namespace);
  let gateways: GatewayJson[];
  if (o.name) {
    const one = await readGateway(kubeConfig, custom, o.namespace, o.name);
    if (!one || !WAYPOINT_CLASSES.has(one.spec?.gatewayClassName ?? '')) throw new AmeshError('AMESH_CONFIG_INVALID', `waypoint ${o.namespace}/${o.name} not found`);
    gateways = [one];
  } else gateways = await listWaypointGateways(kubeConfig, { namespace: o.namespace });
  if (gateways.length === 0) {
    print(`no waypoints in namespace ${o.namespace}`);
    return;
  }
  const services = (await call(kubeConfig, 'listing services', () => core.listServiceForAllNamespaces())).items as unknown as Array<{ metadata?: { name?: string; namespace?: string }; status?: { conditions?: Condition[] } }>;
  for (const g of gateways) {
    const row = waypointRow(g);
    print(`waypoint ${row.namespace}/${row.name} (for ${row.for}${row.serviceAccount ? `, service account ${row.serviceAccount}` : ''})`);
    const conditions = (g.status?.conditions ?? []).map((c) => [c.type ?? '', c.status ?? '', c.reason ?? '', c.message ?? '']);
    if (conditions.length) for (const line of formatTable(['CONDITION', 'STATUS', 'REASON', 'MESSAGE'], conditions)) print(`  ${line}`);
    else print('  no status yet (is the amesh controller running?)');
    print(`  addresses: ${(g.status?.addresses ?? []).map((a) => a.value).join(', ') || '-'}`);
    const bound = boundServices(services, row.namespace, row.name);
    print(`  bound services: ${bound.join(', ') || '-'}`);
  }
}

// ---- commander wiring --------------------------------------------------------------------------

async function kubeConfigFrom(path: string | undefined): Promise<KubeConfig> {
  const { loadKubeConfig } = await import('../controller/app.js');
  return loadKubeConfig(path);
}

function namespaceOr(kubeConfig: KubeConfig, namespace: string | undefined): string {
  if (namespace) return namespace;
  const context = kubeConfig.getContextObject(kubeConfig.getCurrentContext());
  return context?.namespace || 'default';
}

function timeoutMs(raw: string): number {
  const seconds = parseDurationSeconds(raw);
  if (seconds === undefined || seconds <= 0) throw new AmeshError('AMESH_CONFIG_INVALID', `--timeout ${raw}: expected a duration such as 2m, 90s or 1h`);
  return seconds * 1000;
}

const KUBECONFIG_HELP = 'kubeconfig to use (default: in-cluster, else $KUBECONFIG or ~/.kube/config)';
const print: Print = (line) => console.log(line);

export function registerWaypoint(program: Command): void {
  const waypoint = program.command('waypoint').description('waypoint proxies: L7 routing for a namespace or a service account (like istioctl waypoint)');
  waypoint
    .command('apply')
    .description('create or update a waypoint (a Gateway of class istio-waypoint)')
    .option('-n, --namespace <ns>', 'namespace of the waypoint (default: the kubeconfig context’s, else default)')
    .option('--name <name>', `waypoint name (default: ${DEFAULT_WAYPOINT_NAME}, or <service account>-waypoint)`)
    .option('--for <kind>', `traffic the waypoint handles: ${WAYPOINT_FOR_VALUES.join('|')}`, 'service')
    .option('--service-account <sa>', 'a per-service-account waypoint: handles the workloads (and services) of this account only')
    .option('--enroll-namespace', `label the namespace ${USE_WAYPOINT_LABEL}=<name>`)
    .option('--overwrite', 'with --enroll-namespace: replace the waypoint the namespace uses now')
    .option('--wait', 'wait until the waypoint is programmed')
    .option('--timeout <duration>', 'how long --wait waits', '2m')
    .option('--kubeconfig <path>', KUBECONFIG_HELP)
    .action(async (o: { namespace?: string; name?: string; for: string; serviceAccount?: string; enrollNamespace?: boolean; overwrite?: boolean; wait?: boolean; timeout: string; kubeconfig?: string }) => {
      parseWaypointFor(o.for);
      const wait = timeoutMs(o.timeout);
      const kubeConfig = await kubeConfigFrom(o.kubeconfig);
      await applyWaypoint(
        kubeConfig,
        {
          namespace: namespaceOr(kubeConfig, o.namespace),
          for: o.for,
          ...(o.name ? { name: o.name } : {}),
          ...(o.serviceAccount !== undefined ? { serviceAccount: o.serviceAccount } : {}),
          enrollNamespace: Boolean(o.enrollNamespace),
          overwrite: Boolean(o.overwrite),
          wait: Boolean(o.wait),
          timeoutMs: wait,
        },
        print,
      );
    });
  waypoint
    .command('list')
    .description('list waypoints')
    .option('-n, --namespace <ns>', 'namespace (default: the kubeconfig context’s, else default)')
    .option('-A, --all-namespaces', 'waypoints of every namespace')
    .option('-o, --output <format>', 'table or json', 'table')
    .option('--kubeconfig <path>', KUBECONFIG_HELP)
    .action(async (o: { namespace?: string; allNamespaces?: boolean; output: string; kubeconfig?: string }) => {
      if (o.output !== 'table' && o.output !== 'json') throw new AmeshError('AMESH_CONFIG_INVALID', `-o ${o.output}: expected table or json`);
      const kubeConfig = await kubeConfigFrom(o.kubeconfig);
      const namespace = o.allNamespaces ? undefined : namespaceOr(kubeConfig, o.namespace);
      const gateways = await listWaypointGateways(kubeConfig, namespace === undefined ? {} : { namespace });
      if (o.output === 'json') print(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: gateways }, null, 2));
      else if (gateways.length === 0) print(namespace === undefined ? 'no waypoints' : `no waypoints in namespace ${namespace}`);
      else for (const line of formatWaypointTable(gateways.map(waypointRow))) print(line);
    });
  waypoint
    .command('delete')
    .description('delete waypoints (and the namespace label that pointed at them)')
    .argument('[names...]', 'waypoints to delete')
    .option('-n, --namespace <ns>', 'namespace (default: the kubeconfig context’s, else default)')
    .option('--all', 'every waypoint of the namespace')
    .option('--kubeconfig <path>', KUBECONFIG_HELP)
    .action(async (names: string[], o: { namespace?: string; all?: boolean; kubeconfig?: string }) => {
      const kubeConfig = await kubeConfigFrom(o.kubeconfig);
      await deleteWaypoints(kubeConfig, { namespace: namespaceOr(kubeConfig, o.namespace), names, all: Boolean(o.all) }, print);
    });
  waypoint
    .command('status')
    .description("waypoints' conditions, addresses and bound services")
    .argument('[name]', 'one waypoint (default: all of the namespace)')
    .option('-n, --namespace <ns>', 'namespace (default: the kubeconfig context’s, else default)')
    .option('--kubeconfig <path>', KUBECONFIG_HELP)
    .action(async (name: string | undefined, o: { namespace?: string; kubeconfig?: string }) => {
      const kubeConfig = await kubeConfigFrom(o.kubeconfig);
      await waypointStatus(kubeConfig, { namespace: namespaceOr(kubeConfig, o.namespace), ...(name ? { name } : {}) }, print);
    });
}
