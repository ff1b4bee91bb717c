/**
 * PodSpec defaulting and validation, shared by Pods and by workload pod templates.
 * Defaults are Kubernetes' (pkg/apis/core/v1/defaults.go) so `kubectl get -o yaml` looks as
 * on a real cluster and controllers can rely on them; validation covers what the sandbox's
 * kubelet depends on and the mistakes people make in manifests (pkg/apis/core/validation).
 */
import type { FieldErrors } from './field-errors.js';
import { isPlainObject, type JsonObject } from '../patch/json-value.js';
import { PORT_RANGE_MESSAGE, configMapKey, dns1123Label, dns1123Subdomain, isPortNumber, portName } from './names.js';

export const PROTOCOLS = ['SCTP', 'TCP', 'UDP'] as const;
const RESTART_POLICIES = ['Always', 'Never', 'OnFailure'] as const;
const DNS_POLICIES = ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'] as const;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
const CONTAINER_LISTS = ['initContainers', 'containers'] as const;

/** `Always` for `:latest` or untagged images (they may change), else `IfNotPresent`. */
export function defaultPullPolicy(image: string): string {
  if (image.includes('@')) return 'IfNotPresent';
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : '';
  return tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function defaultProbe(probe: unknown): void {
  if (!isPlainObject(probe)) return;
  probe['timeoutSeconds'] ??= 1;
  probe['periodSeconds'] ??= 10;
  probe['successThreshold'] ??= 1;
  probe['failureThreshold'] ??= 3;
  const httpGet = probe['httpGet'];
  if (isPlainObject(httpGet)) {
    httpGet['path'] ??= '/';
    httpGet['scheme'] ??= 'HTTP';
  }
}

function defaultContainer(container: JsonObject): void {
  if (typeof container['image'] === 'string') container['imagePullPolicy'] ??= defaultPullPolicy(container['image']);
  container['terminationMessagePath'] ??= '/dev/termination-log';
  container['terminationMessagePolicy'] ??= 'File';
  container['resources'] ??= {};
  for (const port of Array.isArray(container['ports']) ? container['ports'] : []) if (isPlainObject(port)) port['protocol'] ??= 'TCP';
  for (const env of Array.isArray(container['env']) ? container['env'] : []) {
    const fieldRef = isPlainObject(env) && isPlainObject(env['valueFrom']) ? env['valueFrom']['fieldRef'] : undefined;
    if (isPlainObject(fieldRef)) fieldRef['apiVersion'] ??= 'v1';
  }
  for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) defaultProbe(container[probe]);
}

/** Defaults a PodSpec in place. `forPod` adds the ServiceAccount admission plugin's default. */
export function defaultPodSpec(spec: JsonObject, forPod: boolean): void {
  spec['restartPolicy'] ??= 'Always';
  spec['dnsPolicy'] ??= 'ClusterFirst';
  spec['terminationGracePeriodSeconds'] ??= 30;
  spec['securityContext'] ??= {};
  spec['schedulerName'] ??= 'default-scheduler';
  spec['enableServiceLinks'] ??= true;
  for (const list of CONTAINER_LISTS) {
    for (const container of Array.isArray(spec[list]) ? spec[list] : []) if (isPlainObject(container)) defaultContainer(container);
  }
  for (const volume of Array.isArray(spec['volumes']) ? spec['volumes'] : []) {
    if (!isPlainObject(volume)) continue;
    for (const source of ['configMap', 'secret']) {
      const from = volume[source];
      if (isPlainObject(from)) from['defaultMode'] ??= 420;
    }
  }
  if (forPod) {
    // The ServiceAccount admission plugin; `serviceAccount` is the deprecated mirror field.
    const serviceAccount = (spec['serviceAccountName'] as string | undefined) ?? (spec['serviceAccount'] as string | undefined) ?? 'default';
    spec['serviceAccountName'] = serviceAccount;
    spec['serviceAccount'] = serviceAccount;
    spec['priority'] ??= 0;
  }
}

/**
 * The DefaultTolerationSeconds admission plugin (Pod create only): evict from not-ready or
 * unreachable nodes after 5 minutes unless the pod says otherwise.
 */
export function addDefaultTolerations(spec: JsonObject): void {
  const tolerations = Array.isArray(spec['tolerations']) ? (spec['tolerations'] as unknown[]) : [];
  for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
    if (!tolerations.some((t) => isPlainObject(t) && (t['key'] === key || (t['operator'] === 'Exists' && t['key'] === undefined)))) {
      tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
    }
  }
  spec['tolerations'] = tolerations;
}

function validateContainer(container: unknown, field: string, volumeNames: Set<string>, errors: FieldErrors): void {
  if (!isPlainObject(container)) {
    errors.typeInvalid(field, container, 'must be an object');
    return;
  }
  const name = container['name'];
  if (typeof name !== 'string' || name === '') errors.required(`${field}.name`);
  else for (const message of dns1123Label(name)) errors.invalid(`${field}.name`, name, message);
  const image = container['image'];
  if (typeof image !== 'string' || image.trim() === '') errors.required(`${field}.image`);
  const pullPolicy = container['imagePullPolicy'];
  if (pullPolicy !== undefined && !(PULL_POLICIES as readonly unknown[]).includes(pullPolicy)) errors.notSupported(`${field}.imagePullPolicy`, pullPolicy, PULL_POLICIES);
  for (const key of ['command', 'args']) {
    const value = container[key];
    if (value !== undefined && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) errors.typeInvalid(`${field}.${key}`, value, 'must be a list of strings');
  }

  const ports = Array.isArray(container['ports']) ? container['ports'] : [];
  const portNames = new Set<string>();
  ports.forEach((port: unknown, i) => {
    const at = `${field}.ports[${i}]`;
    if (!isPlainObject(port)) return errors.typeInvalid(at, port, 'must be an object');
    if (port['containerPort'] === undefined) errors.required(`${at}.containerPort`);
    else if (!isPortNumber(port['containerPort'])) errors.invalid(`${at}.containerPort`, port['containerPort'], PORT_RANGE_MESSAGE);
    if (port['hostPort'] !== undefined && port['hostPort'] !== 0 && !isPortNumber(port['hostPort'])) errors.invalid(`${at}.hostPort`, port['hostPort'], PORT_RANGE_MESSAGE);
    if (port['protocol'] !== undefined && !(PROTOCOLS as readonly unknown[]).includes(port['protocol'])) errors.notSupported(`${at}.protocol`, port['protocol'], PROTOCOLS);
    const portNameValue = port['name'];
    if (typeof portNameValue === 'string' && portNameValue !== '') {
      for (const message of portName(portNameValue)) errors.invalid(`${at}.name`, portNameValue, message);
      if (portNames.has(portNameValue)) errors.duplicate(`${at}.name`, portNameValue);
      portNames.add(portNameValue);
    }
  });

  const env = Array.isArray(container['env']) ? container['env'] : [];
  env.forEach((entry: unknown, i) => {
    const at = `${field}.env[${i}]`;
    if (!isPlainObject(entry)) return errors.typeInvalid(at, entry, 'must be an object');
    const envName = entry['name'];
    if (typeof envName !== 'string' || envName === '') errors.required(`${at}.name`);
    else if (/[=\0]/.test(envName)) errors.invalid(`${at}.name`, envName, "a valid environment variable name must consist only of printable ASCII characters other than '='");
    if (entry['value'] !== undefined && typeof entry['value'] !== 'string') errors.typeInvalid(`${at}.value`, entry['value'], 'must be a string');
    if (entry['value'] !== undefined && entry['valueFrom'] !== undefined) errors.invalid(`${at}.valueFrom`, '', 'may not be specified when `value` is not empty');
  });

  const mounts = Array.isArray(container['volumeMounts']) ? container['volumeMounts'] : [];
  const mountPaths = new Set<string>();
  mounts.forEach((mount: unknown, i) => {
    const at = `${field}.volumeMounts[${i}]`;
    if (!isPlainObject(mount)) return errors.typeInvalid(at, mount, 'must be an object');
    const volume = mount['name'];
    if (typeof volume !== 'string' || volume === '') errors.required(`${at}.name`);
    else if (!volumeNames.has(volume)) errors.notFound(`${at}.name`, volume);
    const path = mount['mountPath'];
    if (typeof path !== 'string' || path === '') errors.required(`${at}.mountPath`);
    else {
      if (mountPaths.has(path)) errors.invalid(`${at}.mountPath`, path, 'must be unique');
      mountPaths.add(path);
    }
  });
}

export interface PodSpecRules {
  /** Workload templates only allow `Always` (their controllers recreate pods themselves). */
  restartPolicies?: readonly string[];
}

export function validatePodSpec(spec: unknown, field: string, errors: FieldErrors, rules: PodSpecRules = {}): void {
  if (!isPlainObject(spec)) {
    errors.required(field);
    return;
  }
  const volumeNames = new Set<string>();
  (Array.isArray(spec['volumes']) ? spec['volumes'] : []).forEach((volume: unknown, i) => {
    const at = `${field}.volumes[${i}]`;
    const name = isPlainObject(volume) ? volume['name'] : undefined;
    if (typeof name !== 'string' || name === '') return errors.required(`${at}.name`);
    for (const message of dns1123Label(name)) errors.invalid(`${at}.name`, name, message);
    if (volumeNames.has(name)) errors.duplicate(`${at}.name`, name);
    volumeNames.add(name);
    for (const source of ['configMap', 'secret']) {
      const from = isPlainObject(volume) ? volume[source] : undefined;
      const items = isPlainObject(from) && Array.isArray(from['items']) ? from['items'] : [];
      items.forEach((item: unknown, j) => {
        const key = isPlainObject(item) ? item['key'] : undefined;
        if (typeof key !== 'string') errors.required(`${at}.${source}.items[${j}].key`);
        else for (const message of configMapKey(key)) errors.invalid(`${at}.${source}.items[${j}].key`, key, message);
      });
    }
  });

  const containers = spec['containers'];
  if (!Array.isArray(containers) || containers.length === 0) errors.required(`${field}.containers`);
  const seen = new Set<string>();
  for (const list of CONTAINER_LISTS) {
    const items = Array.isArray(spec[list]) ? (spec[list] as unknown[]) : [];
    items.forEach((container, i) => {
      const at = `${field}.${list}[${i}]`;
      validateContainer(container, at, volumeNames, errors);
      const name = isPlainObject(container) ? container['name'] : undefined;
      if (typeof name === 'string' && name !== '') {
        if (seen.has(name)) errors.duplicate(`${at}.name`, name);
        seen.add(name);
      }
    });
  }

  const restartPolicies = rules.restartPolicies ?? RESTART_POLICIES;
  if (spec['restartPolicy'] !== undefined && !restartPolicies.includes(spec['restartPolicy'] as string)) errors.notSupported(`${field}.restartPolicy`, spec['restartPolicy'], restartPolicies);
  if (spec['dnsPolicy'] !== undefined && !(DNS_POLICIES as readonly unknown[]).includes(spec['dnsPolicy'])) errors.notSupported(`${field}.dnsPolicy`, spec['dnsPolicy'], DNS_POLICIES);
  if (spec['dnsPolicy'] === 'None' && !isPlainObject(spec['dnsConfig'])) errors.required(`${field}.dnsConfig`, "must provide `dnsConfig` when `dnsPolicy` is None");
  const grace = spec['terminationGracePeriodSeconds'];
  if (grace !== undefined && (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0)) errors.invalid(`${field}.terminationGracePeriodSeconds`, grace, 'must be greater than or equal to 0');
  const deadline = spec['activeDeadlineSeconds'];
  if (deadline !== undefined && (typeof deadline !== 'number' || !Number.isInteger(deadline) || deadline < 1)) errors.invalid(`${field}.activeDeadlineSeconds`, deadline, 'must be between 1 and 2147483647, inclusive');
  for (const key of ['serviceAccountName', 'nodeName', 'hostname', 'subdomain']) {
    const value = spec[key];
    if (typeof value !== 'string' || value === '') continue;
    const rule = key === 'hostname' || key === 'subdomain' ? dns1123Label : dns1123Subdomain;
    for (const message of rule(value)) errors.invalid(`${field}.${key}`, value, message);
  }
  const nodeSelector = spec['nodeSelector'];
  if (nodeSelector !== undefined && !isPlainObject(nodeSelector)) errors.typeInvalid(`${field}.nodeSelector`, nodeSelector, 'must be a map of string keys to string values');
  const tolerations = spec['tolerations'];
  if (tolerations !== undefined && !Array.isArray(tolerations)) errors.typeInvalid(`${field}.tolerations`, tolerations, 'must be a list');
}
