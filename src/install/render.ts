/**
 * The install manifests with the user's options applied: what `amesh install` applies, what
 * `amesh install --dry-run` prints, and what the sandbox installs. The files in daemonset/ are the
 * defaults (and work unchanged with `kubectl apply -k daemonset/`); `--set key=value` overrides.
 *
 * CONTRACT (issue #10): the signatures here are shared — owner extends the values and rendering.
 *
 * Invariants:
 * - The file list is daemonset/kustomization.yaml's `resources` (directories followed into their
 *   own kustomization.yaml), so kustomize, the CLI and the sandbox can never disagree on what
 *   amesh is. Kustomize features the CLI would not honour (patches, namespace, …) are refused.
 * - DEFAULT_VALUES render the files unchanged (a unit test checks it), so `--set` is the only
 *   difference between `amesh install` and `kubectl apply -k daemonset/`.
 * - Rendering is pure over the files' contents: nothing here talks to a cluster.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { AmeshError } from '../errors/amesh-error.js';
import { readManifests } from './apply.js';
import { DAEMONSET_DIR } from './paths.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
const CAPTURE_MODES = ['ebpf', 'nftables', 'auto'] as const;

/** Options a user can `--set`; every key has a default that equals what daemonset/ holds. */
export interface InstallValues {
  /** Image registry/prefix, e.g. `amesh` → `amesh/node-agent:<tag>`. */
  'image.hub': string;
  'image.tag': string;
  'image.pullPolicy': (typeof PULL_POLICIES)[number];
  /** AMESH_LOG_LEVEL of the node agents and the controller. */
  logLevel: (typeof LOG_LEVELS)[number];
  /**
   * Node agent capture (AMESH_CAPTURE_MODE): `ebpf` (default; the agent refuses to start without
   * it), `nftables` (TPROXY fallback), or `auto` (eBPF, else nftables with a warning).
   */
  captureMode: (typeof CAPTURE_MODES)[number];
  /** Skip the CRDs (when Gateway API / Istio CRDs are already installed by someone else). */
  'crds.install': boolean;
  /** Node agent container resources (no CPU limit on purpose: see amesh-node.yaml). */
  'agent.resources.requests.cpu': string;
  'agent.resources.requests.memory': string;
  'agent.resources.limits.memory': string;
  /** Controller container resources. */
  'controller.resources.requests.cpu': string;
  'controller.resources.requests.memory': string;
  'controller.resources.limits.memory': string;
  /** The controller's PodDisruptionBudget (daemonset/amesh-controller-pdb.yaml). */
  'controller.podDisruptionBudget': boolean;
}

export const DEFAULT_VALUES: Readonly<InstallValues> = Object.freeze({
  'image.hub': 'amesh',
  'image.tag': '0.1.0',
  'image.pullPolicy': 'IfNotPresent',
  logLevel: 'info',
  captureMode: 'ebpf',
  'crds.install': true,
  'agent.resources.requests.cpu': '100m',
  'agent.resources.requests.memory': '128Mi',
  'agent.resources.limits.memory': '1Gi',
  'controller.resources.requests.cpu': '100m',
  'controller.resources.requests.memory': '256Mi',
  'controller.resources.limits.memory': '2Gi',
  'controller.podDisruptionBudget': true,
});

type Key = keyof InstallValues;

interface ValueSpec<K extends Key> {
  /** One line for `--help`, errors and docs/install.md. */
  description: string;
  /** What a valid value looks like, for error messages. */
  accepts: string;
  parse(raw: string): InstallValues[K] | undefined;
}

const oneOf =
  <T extends string>(allowed: readonly T[]) =>
  (raw: string): T | undefined =>
    (allowed as readonly string[]).includes(raw) ? (raw as T) : undefined;
const matching =
  (pattern: RegExp) =>
  (raw: string): string | undefined =>
    pattern.test(raw) ? raw : undefined;
// Kubernetes quantities as people write them for CPU and memory (500m, 0.5, 128Mi, 1G).
const QUANTITY = /^(?:\d+(?:\.\d+)?|\.\d+)(?:m|k|M|G|T|Ki|Mi|Gi|Ti)?$/;
const bool = { accepts: 'true, false', parse: (raw: string): boolean | undefined => (raw === 'true' ? true : raw === 'false' ? false : undefined) };
const quantity = { accepts: 'a Kubernetes quantity, e.g. 250m, 1, 128Mi, 2Gi', parse: matching(QUANTITY) };

/** Every `--set` key: its description, what it accepts, and its parser. */
export const VALUE_SPECS: { readonly [K in Key]: ValueSpec<K> } = {
  'image.hub': {
    description: 'registry and prefix of the amesh images (<hub>/node-agent, <hub>/controller, and <hub>/waypoint, <hub>/gateway that the controller deploys)',
    accepts: 'a registry path such as amesh, ghcr.io/amesh or localhost:5000/amesh (no trailing /)',
    parse: matching(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d{1,5})?(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*$/),
  },
  'image.tag': { description: 'tag of the amesh images', accepts: 'an image tag (letters, digits, _ . -; at most 128)', parse: matching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/) },
  'image.pullPolicy': { description: 'imagePullPolicy of the amesh containers', accepts: PULL_POLICIES.join(', '), parse: oneOf(PULL_POLICIES) },
  logLevel: { description: 'AMESH_LOG_LEVEL of the node agents and the controller', accepts: LOG_LEVELS.join(', '), parse: oneOf(LOG_LEVELS) },
  captureMode: {
    description: 'node agent traffic capture (AMESH_CAPTURE_MODE): ebpf refuses to start without eBPF, auto falls back to nftables',
    accepts: CAPTURE_MODES.join(', '),
    parse: oneOf(CAPTURE_MODES),
  },
  'crds.install': { description: 'apply the Gateway API and Istio CRDs in daemonset/crds/ (existing CRDs are never replaced by amesh install)', ...bool },
  'agent.resources.requests.cpu': { description: 'node agent CPU request (there is no CPU limit)', ...quantity },
  'agent.resources.requests.memory': { description: 'node agent memory request', ...quantity },
  'agent.resources.limits.memory': { description: 'node agent memory limit', ...quantity },
  'controller.resources.requests.cpu': { description: 'controller CPU request (there is no CPU limit)', ...quantity },
  'controller.resources.requests.memory': { description: 'controller memory request', ...quantity },
  'controller.resources.limits.memory': { description: 'controller memory limit', ...quantity },
  'controller.podDisruptionBudget': { description: "apply the controller's PodDisruptionBudget (needs policy/v1)", ...bool },
};

export const VALUE_KEYS = Object.keys(VALUE_SPECS) as Key[];

/** `key  description (default: x)` lines for `amesh install --help`. */
export function describeValues(): string[] {
  const width = Math.max(...VALUE_KEYS.map((k) => k.length));
  return VALUE_KEYS.map((k) => `${k.padEnd(width)}  ${VALUE_SPECS[k].description} (default: ${String(DEFAULT_VALUES[k])})`);
}

function setOne<K extends Key>(values: InstallValues, key: K, raw: string, flag: string): void {
  const spec = VALUE_SPECS[key];
  const parsed = spec.parse(raw);
  if (parsed === undefined) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `--set ${flag}: ${JSON.stringify(raw)} is not a valid ${key}; expected ${spec.accepts}`, {
      hint: `${key}: ${spec.description} (default: ${String(DEFAULT_VALUES[key])})`,
    });
  }
  values[key] = parsed;
}

const isKey = (key: string): key is Key => Object.prototype.hasOwnProperty.call(VALUE_SPECS, key);

/**
 * Parse `--set key=value` flags (each may hold several comma-separated pairs, as with Helm);
 * unknown keys and bad values are errors naming the valid ones. Later flags win.
 */
export function parseSetFlags(flags: readonly string[], base: Readonly<InstallValues> = DEFAULT_VALUES): InstallValues {
  const values: InstallValues = { ...base };
  for (const flag of flags) {
    for (const pair of flag.split(',')) {
      const eq = pair.indexOf('=');
      const key = (eq < 0 ? pair : pair.slice(0, eq)).trim();
      if (eq < 0 || !key) {
        throw new AmeshError('AMESH_CONFIG_INVALID', `--set ${JSON.stringify(flag)}: expected key=value`, { hint: `keys: ${VALUE_KEYS.join(', ')}` });
      }
      if (!isKey(key)) {
        throw new AmeshError('AMESH_CONFIG_INVALID', `--set ${pair}: unknown key ${JSON.stringify(key)}`, {
          hint: `valid keys:\n    ${describeValues().join('\n    ')}`,
        });
      }
      setOne(values, key, pair.slice(eq + 1).trim(), pair);
    }
  }
  return values;
}

// ------------------------------------------------------------------------------ the file list

interface Kustomization {
  resources?: unknown;
  [field: string]: unknown;
}

/** Fields of a kustomization.yaml that render.ts honours; anything else would be ignored silently. */
const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources']);

function kustomizationFiles(dir: string): string[] {
  const path = join(dir, 'kustomization.yaml');
  let doc: Kustomization;
  try {
    doc = (parse(readFileSync(path, 'utf8')) ?? {}) as Kustomization;
  } catch (err) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `cannot read the install manifest list ${path}: ${(err as Error).message}`, {
      cause: err,
      hint: `amesh install renders the manifests in ${DAEMONSET_DIR}: run it from an amesh checkout or release (not from an image that carries only the compiled CLI)`,
    });
  }
  const extra = Object.keys(doc).filter((k) => !KUSTOMIZATION_FIELDS.has(k));
  if (extra.length) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `${path}: ${extra.join(', ')} would be applied by kustomize but not by amesh install`, {
      hint: 'keep daemonset/ to plain `resources:`; express options as install values (src/install/render.ts)',
    });
  }
  if (!Array.isArray(doc.resources) || !doc.resources.every((r): r is string => typeof r === 'string')) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `${path}: resources must be a list of file or directory names`);
  }
  const files: string[] = [];
  for (const entry of doc.resources) {
    const target = join(dir, entry);
    if (relative(DAEMONSET_DIR, target).startsWith('..')) throw new AmeshError('AMESH_CONFIG_INVALID', `${path}: resource ${entry} is outside daemonset/`);
    let isDirectory: boolean;
    try {
      isDirectory = statSync(target).isDirectory();
    } catch (err) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `${path}: resource ${entry} does not exist`, { cause: err });
    }
    files.push(...(isDirectory ? kustomizationFiles(target) : [target]));
  }
  return files;
}

/** The manifest files, as daemonset/kustomization.yaml lists them (CRDs first). */
export function installManifestFiles(): string[] {
  return kustomizationFiles(DAEMONSET_DIR);
}

// ------------------------------------------------------------------------------ rendering

/** Apply order: what others refer to goes first. Kinds not listed go last, in file order. */
const KIND_ORDER = [
  'CustomResourceDefinition',
  'Namespace',
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'ConfigMap',
  'Secret',
  'DaemonSet',
  'Deployment',
  'Service',
  'PodDisruptionBudget',
];

function kindRank(object: KubernetesObject): number {
  const rank = KIND_ORDER.indexOf(object.kind ?? '');
  return rank < 0 ? KIND_ORDER.length : rank;
}

/** True for a CustomResourceDefinition (`amesh install` skips those that already exist). */
export function isCrd(object: KubernetesObject): boolean {
  return object.kind === 'CustomResourceDefinition' && (object.apiVersion ?? '').startsWith('apiextensions.k8s.io/');
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

interface Container {
  name?: string;
  image?: string;
  imagePullPolicy?: string;
  env?: EnvVar[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

interface Workload extends KubernetesObject {
  spec?: { template?: { spec?: { containers?: Container[]; initContainers?: Container[] } } };
}

const isWorkload = (o: KubernetesObject): o is Workload => o.kind === 'DaemonSet' || o.kind === 'Deployment';

/** `amesh/<name>:<tag>` as the files write amesh's images; other images are left alone. */
const AMESH_IMAGE = /^amesh\/([a-z0-9._-]+)(?::[A-Za-z0-9_.-]+)?$/;

function setEnv(container: Container, name: string, value: string): void {
  const env = (container.env ??= []);
  const existing = env.find((e) => e.name === name);
  if (existing) {
    existing.value = value;
    delete existing.valueFrom;
  } else env.push({ name, value });
}

/** `<hub>/<name>:<tag>`: an amesh image under the values' hub and tag. */
export function ameshImage(values: Readonly<Pick<InstallValues, 'image.hub' | 'image.tag'>>, name: string): string {
  return `${values['image.hub']}/${name}:${values['image.tag']}`;
}

/** The controller settings naming the images of what it deploys, and those images' names. */
const CONTROLLER_DEPLOYED_IMAGES = [
  ['AMESH_WAYPOINT_IMAGE', 'waypoint'],
  ['AMESH_GATEWAY_IMAGE', 'gateway'],
] as const;

function applyToContainer(container: Container, role: 'agent' | 'controller' | undefined, values: Readonly<InstallValues>): void {
  const image = AMESH_IMAGE.exec(container.image ?? '');
  if (!image) return;
  container.image = ameshImage(values, image[1] ?? '');
  container.imagePullPolicy = values['image.pullPolicy'];
  setEnv(container, 'AMESH_LOG_LEVEL', values.logLevel);
  if (role === 'agent') setEnv(container, 'AMESH_CAPTURE_MODE', values.captureMode);
  if (role === 'controller') {
    // The controller renders waypoint and ingress gateway Deployments: their images follow the
    // same hub and tag (AMESH_WAYPOINT_IMAGE / AMESH_GATEWAY_IMAGE, src/config/controller-config.ts).
    for (const [env, name] of CONTROLLER_DEPLOYED_IMAGES) setEnv(container, env, ameshImage(values, name));
  }
  if (role) {
    const resources = (container.resources ??= {});
    resources.requests = { ...resources.requests, cpu: values[`${role}.resources.requests.cpu`], memory: values[`${role}.resources.requests.memory`] };
    resources.limits = { ...resources.limits, memory: values[`${role}.resources.limits.memory`] };
  }
}

/** Which role's values a workload takes: the node agent DaemonSet or the controller Deployment. */
function roleOf(o: Workload): 'agent' | 'controller' | undefined {
  if (o.kind === 'DaemonSet' && o.metadata?.name === 'amesh-node') return 'agent';
  if (o.kind === 'Deployment' && o.metadata?.name === 'amesh-controller') return 'controller';
  return undefined;
}

/** Pure: `values` applied to parsed manifest objects (copied), sorted into apply order. */
export function applyValues(objects: readonly KubernetesObject[], values: Readonly<InstallValues>): KubernetesObject[] {
  const out = (structuredClone(objects) as KubernetesObject[]).filter(
    (o) => (values['crds.install'] || !isCrd(o)) && (values['controller.podDisruptionBudget'] || o.kind !== 'PodDisruptionBudget'),
  );
  for (const object of out) {
    if (!isWorkload(object)) continue;
    const role = roleOf(object);
    const pod = object.spec?.template?.spec;
    for (const container of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) applyToContainer(container, role, values);
  }
  // Array.prototype.sort is stable: objects of one kind keep their file order.
  return out.sort((a, b) => kindRank(a) - kindRank(b));
}

/** Every object to apply, in order, with `values` applied. */
export async function renderInstall(values: Readonly<InstallValues> = DEFAULT_VALUES): Promise<KubernetesObject[]> {
  const objects: KubernetesObject[] = [];
  for (const file of installManifestFiles()) objects.push(...(await readManifests(file)));
  return applyValues(objects, values);
}

/** The rendered objects as one multi-document YAML text (`amesh install --dry-run`). */
export function toYaml(objects: readonly KubernetesObject[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}
