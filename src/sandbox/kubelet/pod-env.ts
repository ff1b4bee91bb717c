/**
 * A container's environment, decided from the pod and the objects it references — pure: the
 * store is reached through `EnvSources`. Rules follow Kubernetes
 * (https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/):
 * `envFrom` first, then `env` in order (later wins), `$(VAR)` expands variables defined before
 * it, `$$(VAR)` is a literal `$(VAR)`, an undefined `$(VAR)` is left as written.
 */
import type { Container, KeySelector, Pod } from './pod-types.js';

export interface EnvSources {
  /** `data` of a ConfigMap, undefined when it does not exist. */
  configMap(namespace: string, name: string): Record<string, string> | undefined;
  /** `data` of a Secret (base64 values, as stored), undefined when it does not exist. */
  secret(namespace: string, name: string): Record<string, string> | undefined;
}

export interface RuntimeFacts {
  podIP?: string;
  hostIP?: string;
}

export const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const API_SERVICE_HOST = '10.96.0.1';

/** Expands `$(NAME)` references against `env`; `$$` escapes. */
export function expandVariables(text: string, env: Readonly<Record<string, string>>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (name === undefined) return '$';
    return env[name] ?? match;
  });
}

/** The value of a downward-API `fieldPath`, or undefined when it names nothing we know. */
export function fieldPathValue(pod: Pod, fieldPath: string, facts: RuntimeFacts): string | undefined {
  const m = /^metadata\.(labels|annotations)\['(.*)'\]$/.exec(fieldPath) ?? /^metadata\.(labels|annotations)\["(.*)"\]$/.exec(fieldPath);
  if (m?.[1] && m[2] !== undefined) return (m[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations)?.[m[2]] ?? '';
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata.name;
    case 'metadata.namespace':
      return pod.metadata.namespace ?? 'default';
    case 'metadata.uid':
      return pod.metadata.uid;
    case 'metadata.labels':
      return Object.entries(pod.metadata.labels ?? {}).map(([k, v]) => `${k}="${v}"`).join('\n');
    case 'metadata.annotations':
      return Object.entries(pod.metadata.annotations ?? {}).map(([k, v]) => `${k}="${v}"`).join('\n');
    case 'spec.nodeName':
      return pod.spec.nodeName;
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? 'default';
    case 'status.podIP':
    case 'status.podIPs':
      return facts.podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return facts.hostIP;
    default:
      return undefined;
  }
}

type Lookup = { value: string } | { missing: true } | { error: string };

function keyRef(kind: 'ConfigMap' | 'Secret', ref: KeySelector, namespace: string, sources: EnvSources): Lookup {
  const data = kind === 'ConfigMap' ? sources.configMap(namespace, ref.name ?? '') : sources.secret(namespace, ref.name ?? '');
  const raw = data?.[ref.key];
  if (raw !== undefined) return { value: kind === 'Secret' ? Buffer.from(raw, 'base64').toString('utf8') : raw };
  if (ref.optional) return { missing: true };
  if (!data) return { error: `${kind.toLowerCase()} "${ref.name}" not found` };
  return { error: `couldn't find key ${ref.key} in ${kind} ${namespace}/${ref.name}` };
}

/**
 * The full environment of `container`, or the reason it cannot be built (shown as
 * `CreateContainerConfigError`, like the real kubelet).
 */
export function resolveContainerEnv(pod: Pod, container: Container, sources: EnvSources, facts: RuntimeFacts): { env: Record<string, string> } | { error: string } {
  const namespace = pod.metadata.namespace ?? 'default';
  const env: Record<string, string> = {
    PATH: CONTAINER_PATH,
    HOME: '/root',
    HOSTNAME: pod.spec.hostname ?? pod.metadata.name ?? '',
    KUBERNETES_SERVICE_HOST: API_SERVICE_HOST,
    KUBERNETES_SERVICE_PORT: '443',
    KUBERNETES_SERVICE_PORT_HTTPS: '443',
    KUBERNETES_PORT: `tcp://${API_SERVICE_HOST}:443`,
    KUBERNETES_PORT_443_TCP: `tcp://${API_SERVICE_HOST}:443`,
    KUBERNETES_PORT_443_TCP_PROTO: 'tcp',
    KUBERNETES_PORT_443_TCP_PORT: '443',
    KUBERNETES_PORT_443_TCP_ADDR: API_SERVICE_HOST,
  };
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    if (!ref) continue;
    const kind = from.configMapRef ? 'ConfigMap' : 'Secret';
    const data = kind === 'ConfigMap' ? sources.configMap(namespace, ref.name ?? '') : sources.secret(namespace, ref.name ?? '');
    if (!data) {
      if (ref.optional) continue;
      return { error: `${kind.toLowerCase()} "${ref.name}" not found` };
    }
    for (const [key, value] of Object.entries(data)) {
      env[`${from.prefix ?? ''}${key}`] = kind === 'Secret' ? Buffer.from(value, 'base64').toString('utf8') : value;
    }
  }
  for (const variable of container.env ?? []) {
    const from = variable.valueFrom;
    if (!from) {
      env[variable.name] = expandVariables(variable.value ?? '', env);
      continue;
    }
    let found: Lookup;
    if (from.fieldRef) {
      const value = fieldPathValue(pod, from.fieldRef.fieldPath, facts);
      found = value === undefined ? { error: `env ${variable.name}: unsupported fieldPath "${from.fieldRef.fieldPath}"` } : { value };
    } else if (from.configMapKeyRef) found = keyRef('ConfigMap', from.configMapKeyRef, namespace, sources);
    else if (from.secretKeyRef) found = keyRef('Secret', from.secretKeyRef, namespace, sources);
    else if (from.resourceFieldRef) found = { value: from.resourceFieldRef.resource.startsWith('limits.memory') ? String(1 << 30) : '1' };
    else found = { error: `env ${variable.name}: valueFrom names no source` };
    if ('error' in found) return found;
    if ('value' in found) env[variable.name] = found.value;
  }
  return { env };
}
