/**
 * Server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the columns
 * `kubectl get` shows, computed here as kube-apiserver's printers do. kubectl adds the
 * NAMESPACE column for `-A` and label columns itself; priority-1 columns appear with `-o wide`.
 * Pure functions over plain objects.
 */
import type { KubeObject } from './types.js';

export interface TableColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  format: string;
  description: string;
  priority: number;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

type Cell = string | number;
type Get = (o: KubeObject) => unknown;

interface Printer {
  columns: Array<[name: string, priority: number, cell: (o: KubeObject, now: Date) => Cell]>;
}

/** kube-apiserver's `duration.HumanDuration`. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${hours / 24}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const years = Math.floor(hours / 24 / 365);
  if (hours < 24 * 365 * 8) {
    const days = Math.floor(hours / 24) % 365;
    return days === 0 ? `${years}y` : `${years}y${days}d`;
  }
  return `${years}y`;
}

const path =
  (...keys: string[]): Get =>
  (o) => {
    let current: unknown = o;
    for (const k of keys) current = current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[k] : undefined;
    return current;
  };
const num = (get: Get) => (o: KubeObject) => (typeof get(o) === 'number' ? (get(o) as number) : 0);
const str = (get: Get, empty = '<none>') => (o: KubeObject) => {
  const v = get(o);
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : empty;
};
const age = (o: KubeObject, now: Date): string => {
  const created = o.metadata.creationTimestamp ? Date.parse(o.metadata.creationTimestamp) : NaN;
  return Number.isNaN(created) ? '<unknown>' : humanDuration(now.getTime() - created);
};
const name = (o: KubeObject): string => o.metadata.name ?? '';

interface Container {
  name?: string;
  image?: string;
}
interface ContainerStatus {
  ready?: boolean;
  restartCount?: number;
  state?: { waiting?: { reason?: string }; terminated?: { reason?: string; signal?: number; exitCode?: number } };
}

const containersOf = (spec: Get) => (o: KubeObject) => ((path('containers')((spec(o) ?? {}) as KubeObject) as Container[] | undefined) ?? []);
const selectorText = (get: Get) => (o: KubeObject) => {
  const s = get(o) as { matchLabels?: Record<string, string> } | Record<string, string> | undefined;
  const labels = (s && 'matchLabels' in s ? s.matchLabels : s) as Record<string, string> | undefined;
  const text = Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return text || '<none>';
};

/** kubectl's pod STATUS column: Terminating, a container's waiting/terminated reason, or the phase. */
export function podStatusText(pod: KubeObject): string {
  const status = (pod.status ?? {}) as { phase?: string; reason?: string; containerStatuses?: ContainerStatus[]; initContainerStatuses?: ContainerStatus[] };
  let reason = status.reason || status.phase || 'Unknown';
  for (const cs of status.initContainerStatuses ?? []) {
    const waiting = cs.state?.waiting?.reason;
    const terminated = cs.state?.terminated;
    if (terminated && terminated.exitCode !== 0) return `Init:${terminated.reason || 'Error'}`;
    if (waiting && waiting !== 'PodInitializing') return `Init:${waiting}`;
  }
  for (const cs of [...(status.containerStatuses ?? [])].reverse()) {
    if (cs.state?.waiting?.reason) reason = cs.state.waiting.reason;
    else if (cs.state?.terminated?.reason) reason = cs.state.terminated.reason;
    else if (cs.state?.terminated) reason = cs.state.terminated.signal ? `Signal:${cs.state.terminated.signal}` : `ExitCode:${cs.state.terminated.exitCode ?? 0}`;
  }
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  return reason;
}

function servicePorts(o: KubeObject): string {
  const ports = (path('spec', 'ports')(o) as Array<{ port?: number; protocol?: string; nodePort?: number }> | undefined) ?? [];
  return ports.map((p) => `${p.port ?? ''}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(',') || '<none>';
}

function nodeStatus(o: KubeObject): string {
  const conditions = (path('status', 'conditions')(o) as Array<{ type?: string; status?: string }> | undefined) ?? [];
  const ready = conditions.find((c) => c.type === 'Ready');
  let text = ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
  if (path('spec', 'unschedulable')(o) === true) text += ',SchedulingDisabled';
  return text;
}

function endpointsText(o: KubeObject): string {
  const subsets = (o.subsets as Array<{ addresses?: Array<{ ip?: string }>; ports?: Array<{ port?: number }> }> | undefined) ?? [];
  const out: string[] = [];
  for (const s of subsets) for (const a of s.addresses ?? []) for (const p of s.ports?.length ? s.ports : [{}]) out.push(p.port ? `${a.ip ?? ''}:${p.port}` : (a.ip ?? ''));
  if (out.length === 0) return '<none>';
  return out.length > 3 ? `${out.slice(0, 3).join(',')} + ${out.length - 3} more...` : out.join(',');
}

const images = (spec: Get) => (o: KubeObject) => containersOf(spec)(o).map((c) => c.image ?? '').join(',') || '<none>';
const containerNames = (spec: Get) => (o: KubeObject) => containersOf(spec)(o).map((c) => c.name ?? '').join(',') || '<none>';
const templateSpec = path('spec', 'template', 'spec');

interface RbacSubject {
  kind?: string;
  name?: string;
  namespace?: string;
}
const subjectsOf = (kind: string, withNamespace = false) => (o: KubeObject) =>
  ((path('subjects')(o) as RbacSubject[] | undefined) ?? [])
    .filter((s) => s.kind === kind)
    .map((s) => (withNamespace ? `${s.namespace ?? ''}/${s.name ?? ''}` : (s.name ?? '')))
    .join(', ');
const createdAt = (o: KubeObject): string => str(path('metadata', 'creationTimestamp'), '<unknown>')(o);
const ROLE_PRINTER: Printer = {
  columns: [
    ['Name', 0, name],
    ['Created At', 0, createdAt],
  ],
};
const BINDING_PRINTER: Printer = {
  columns: [
    ['Name', 0, name],
    ['Role', 0, (o) => `${String(path('roleRef', 'kind')(o) ?? '')}/${String(path('roleRef', 'name')(o) ?? '')}`],
    ['Age', 0, age],
    ['Users', 1, subjectsOf('User')],
    ['Groups', 1, subjectsOf('Group')],
    ['ServiceAccounts', 1, subjectsOf('ServiceAccount', true)],
  ],
};
/** An int-or-percent PDB field as kubectl prints it (N/A when unset). */
const intOrPercent = (get: Get) => (o: KubeObject) => {
  const v = get(o);
  return typeof v === 'number' || (typeof v === 'string' && v !== '') ? String(v) : 'N/A';
};

const PRINTERS: Record<string, Printer> = {
  'rbac.authorization.k8s.io/ClusterRole': ROLE_PRINTER,
  'rbac.authorization.k8s.io/Role': ROLE_PRINTER,
  'rbac.authorization.k8s.io/ClusterRoleBinding': BINDING_PRINTER,
  'rbac.authorization.k8s.io/RoleBinding': BINDING_PRINTER,
  'policy/PodDisruptionBudget': {
    columns: [
      ['Name', 0, name],
      ['Min Available', 0, intOrPercent(path('spec', 'minAvailable'))],
      ['Max Unavailable', 0, intOrPercent(path('spec', 'maxUnavailable'))],
      ['Allowed Disruptions', 0, num(path('status', 'disruptionsAllowed'))],
      ['Age', 0, age],
    ],
  },
  '/Pod': {
    columns: [
      ['Name', 0, name],
      [
        'Ready',
        0,
        (o) => {
          const statuses = (path('status', 'containerStatuses')(o) as ContainerStatus[] | undefined) ?? [];
          return `${statuses.filter((s) => s.ready).length}/${containersOf(path('spec'))(o).length}`;
        },
      ],
      ['Status', 0, podStatusText],
      ['Restarts', 0, (o) => ((path('status', 'containerStatuses')(o) as ContainerStatus[] | undefined) ?? []).reduce((n, s) => n + (s.restartCount ?? 0), 0)],
      ['Age', 0, age],
      ['IP', 1, str(path('status', 'podIP'))],
      ['Node', 1, str(path('spec', 'nodeName'))],
      ['Nominated Node', 1, str(path('status', 'nominatedNodeName'))],
      ['Readiness Gates', 1, () => '<none>'],
    ],
  },
  '/Service': {
    columns: [
      ['Name', 0, name],
      ['Type', 0, str(path('spec', 'type'), 'ClusterIP')],
      ['Cluster-IP', 0, str(path('spec', 'clusterIP'))],
      // kubectl prints <pending> for a LoadBalancer still waiting for its address.
      ['External-IP', 0, (o) => ((path('status', 'loadBalancer', 'ingress')(o) as Array<{ ip?: string }> | undefined) ?? []).map((i) => i.ip ?? '').join(',') || (path('spec', 'type')(o) === 'LoadBalancer' ? '<pending>' : '<none>')],
      ['Port(s)', 0, servicePorts],
      ['Age', 0, age],
      ['Selector', 1, selectorText(path('spec', 'selector'))],
    ],
  },
  '/Namespace': {
    columns: [
      ['Name', 0, name],
      ['Status', 0, str(path('status', 'phase'), 'Active')],
      ['Age', 0, age],
    ],
  },
  '/Node': {
    columns: [
      ['Name', 0, name],
      ['Status', 0, nodeStatus],
      ['Roles', 0, (o) => Object.keys(o.metadata.labels ?? {}).filter((k) => k.startsWith('node-role.kubernetes.io/')).map((k) => k.slice('node-role.kubernetes.io/'.length)).join(',') || '<none>'],
      ['Age', 0, age],
      ['Version', 0, str(path('status', 'nodeInfo', 'kubeletVersion'), '')],
      ['Internal-IP', 1, (o) => ((path('status', 'addresses')(o) as Array<{ type?: string; address?: string }> | undefined) ?? []).find((a) => a.type === 'InternalIP')?.address ?? '<none>'],
      ['External-IP', 1, () => '<none>'],
      ['OS-Image', 1, str(path('status', 'nodeInfo', 'osImage'), '<unknown>')],
      ['Kernel-Version', 1, str(path('status', 'nodeInfo', 'kernelVersion'), '<unknown>')],
      ['Container-Runtime', 1, str(path('status', 'nodeInfo', 'containerRuntimeVersion'), '<unknown>')],
    ],
  },
  '/Endpoints': {
    columns: [
      ['Name', 0, name],
      ['Endpoints', 0, endpointsText],
      ['Age', 0, age],
    ],
  },
  'apps/Deployment': {
    columns: [
      ['Name', 0, name],
      ['Ready', 0, (o) => `${num(path('status', 'readyReplicas'))(o)}/${num(path('spec', 'replicas'))(o)}`],
      ['Up-to-date', 0, num(path('status', 'updatedReplicas'))],
      ['Available', 0, num(path('status', 'availableReplicas'))],
      ['Age', 0, age],
      ['Containers', 1, containerNames(templateSpec)],
      ['Images', 1, images(templateSpec)],
      ['Selector', 1, selectorText(path('spec', 'selector'))],
    ],
  },
  'apps/ReplicaSet': {
    columns: [
      ['Name', 0, name],
      ['Desired', 0, num(path('spec', 'replicas'))],
      ['Current', 0, num(path('status', 'replicas'))],
      ['Ready', 0, num(path('status', 'readyReplicas'))],
      ['Age', 0, age],
      ['Containers', 1, containerNames(templateSpec)],
      ['Images', 1, images(templateSpec)],
      ['Selector', 1, selectorText(path('spec', 'selector'))],
    ],
  },
  'apps/DaemonSet': {
    columns: [
      ['Name', 0, name],
      ['Desired', 0, num(path('status', 'desiredNumberScheduled'))],
      ['Current', 0, num(path('status', 'currentNumberScheduled'))],
      ['Ready', 0, num(path('status', 'numberReady'))],
      ['Up-to-date', 0, num(path('status', 'updatedNumberScheduled'))],
      ['Available', 0, num(path('status', 'numberAvailable'))],
      ['Node Selector', 0, selectorText(path('spec', 'template', 'spec', 'nodeSelector'))],
      ['Age', 0, age],
      ['Containers', 1, containerNames(templateSpec)],
      ['Images', 1, images(templateSpec)],
      ['Selector', 1, selectorText(path('spec', 'selector'))],
    ],
  },
  '/Event': {
    columns: [
      [
        'Last Seen',
        0,
        (o, now) => {
          const at = [o.lastTimestamp, o.eventTime, o.metadata.creationTimestamp].find((t): t is string => typeof t === 'string' && t !== '');
          return at ? humanDuration(now.getTime() - Date.parse(at)) : '<unknown>';
        },
      ],
      ['Type', 0, str(path('type'), 'Normal')],
      ['Reason', 0, str(path('reason'), '')],
      ['Object', 0, (o) => `${String(path('involvedObject', 'kind')(o) ?? '').toLowerCase()}/${String(path('involvedObject', 'name')(o) ?? '')}`],
      ['Message', 0, str(path('message'), '')],
      ['Count', 1, (o) => num(path('count'))(o) || 1],
      ['Name', 1, name],
    ],
  },
  'gateway.networking.k8s.io/Gateway': {
    columns: [
      ['Name', 0, name],
      ['Class', 0, str(path('spec', 'gatewayClassName'))],
      ['Address', 0, (o) => ((path('status', 'addresses')(o) as Array<{ value?: string }> | undefined) ?? [])[0]?.value ?? ''],
      [
        'Programmed',
        0,
        (o) => ((path('status', 'conditions')(o) as Array<{ type?: string; status?: string }> | undefined) ?? []).find((c) => c.type === 'Programmed')?.status ?? 'Unknown',
      ],
      ['Age', 0, age],
    ],
  },
};

const DEFAULT_PRINTER: Printer = {
  columns: [
    ['Name', 0, name],
    ['Age', 0, age],
  ],
};

const DESCRIPTIONS: Record<string, string> = {
  Name: 'Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  Age: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
};

function rowObject(object: KubeObject, include: IncludeObject): Record<string, unknown> | undefined {
  if (include === 'None') return undefined;
  if (include === 'Object') return object;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: object.metadata };
}

/** A `meta.k8s.io/v1` Table of `objects` (all of one group/kind). */
export function toTable(group: string, kind: string, objects: KubeObject[], options: { resourceVersion: string; now: Date; includeObject: IncludeObject }): Record<string, unknown> {
  const printer = PRINTERS[`${group}/${kind}`] ?? DEFAULT_PRINTER;
  const columnDefinitions: TableColumn[] = printer.columns.map(([columnName, priority]) => ({
    name: columnName,
    type: columnName === 'Restarts' || columnName === 'Desired' || columnName === 'Current' || columnName === 'Allowed Disruptions' ? 'integer' : 'string',
    format: columnName === 'Name' ? 'name' : '',
    description: DESCRIPTIONS[columnName] ?? columnName,
    priority,
  }));
  const rows = objects.map((object) => {
    const object_ = rowObject(object, options.includeObject);
    return { cells: printer.columns.map(([, , cell]) => cell(object, options.now)), ...(object_ ? { object: object_ } : {}) };
  });
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: options.resourceVersion }, columnDefinitions, rows };
}

/** Whether an Accept header asks for a Table (kubectl get), as opposed to plain JSON. */
export function wantsTable(accept: string | undefined): boolean {
  if (!accept) return false;
  const first = accept.split(',')[0] ?? '';
  return /(^|;)\s*as=Table/.test(first) && /g=meta\.k8s\.io/.test(first);
}
