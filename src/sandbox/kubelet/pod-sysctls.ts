/**
 * Pod `spec.securityContext.sysctls`, as the kubelet's admission decides them (pure). The
 * sandbox applies them inside the pod's network namespace before any container starts; a pod
 * asking for one it cannot have is rejected the way the kubelet rejects it: phase Failed,
 * reason SysctlForbidden, a message naming the sysctl.
 *
 * What is allowed: Kubernetes' safe sysctls that live in the network namespace
 * (net.ipv4.ip_unprivileged_port_start — the ingress gateway's — ip_local_port_range, ...) and
 * a few more per-network-namespace ones (net.core.somaxconn, net.ipv4.conf.*, ...). Not allowed:
 * anything outside `net.*` (sandbox pods share the host's IPC and UTS namespaces, so
 * kernel.shm_rmid_forced and friends would change the host), `net.*` sysctls that are global
 * rather than per namespace (net.core.rmem_max, net.ipv4.tcp_mem, ...; writing one from a pod
 * would change the host), and any sysctl in a hostNetwork pod (Kubernetes forbids that too).
 */
import type { Pod } from './pod-types.js';

export interface Sysctl {
  name: string;
  value: string;
}

export const SYSCTL_FORBIDDEN = 'SysctlForbidden';

/** Kubernetes' safe sysctls (pkg/kubelet/sysctl/safe_sysctls.go) that the network namespace holds. */
const SAFE_NET_SYSCTLS = new Set([
  'net.ipv4.ip_local_port_range',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
  'net.ipv4.tcp_rmem',
  'net.ipv4.tcp_wmem',
]);
/** Further sysctls the kernel keeps per network namespace. */
const NAMESPACED_NET_SYSCTLS = new Set(['net.core.somaxconn', 'net.ipv4.ip_forward', 'net.ipv4.tcp_tw_reuse', 'net.ipv4.tcp_max_syn_backlog']);
const NAMESPACED_NET_PREFIXES = ['net.ipv4.conf.', 'net.ipv6.conf.', 'net.ipv4.neigh.', 'net.ipv6.neigh.'];
/** Kubernetes' sysctl name syntax (dots or slashes as separators). */
const SYSCTL_NAME = /^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$/;

/** `net/ipv4/ip_forward` → `net.ipv4.ip_forward`. */
function canonical(name: string): string {
  return name.includes('.') ? name : name.replace(/\//g, '.');
}

function allowed(name: string): boolean {
  return SAFE_NET_SYSCTLS.has(name) || NAMESPACED_NET_SYSCTLS.has(name) || NAMESPACED_NET_PREFIXES.some((prefix) => name.startsWith(prefix) && name.length > prefix.length);
}

/** The sysctls to set in the pod's network namespace, or why the pod is rejected. */
export function podSysctls(pod: Pick<Pod, 'spec'>): { sysctls: Sysctl[] } | { reason: string; message: string } {
  const requested = pod.spec.securityContext?.sysctls ?? [];
  const sysctls: Sysctl[] = [];
  const seen = new Set<string>();
  const forbid = (message: string): { reason: string; message: string } => ({ reason: SYSCTL_FORBIDDEN, message: `Pod forbidden sysctl: ${message}` });
  for (const entry of requested) {
    const raw = typeof entry?.name === 'string' ? entry.name : '';
    if (!SYSCTL_NAME.test(raw)) return forbid(`${JSON.stringify(raw)} is not a valid sysctl name`);
    const name = canonical(raw);
    if (seen.has(name)) return forbid(`"${name}" is listed twice`);
    seen.add(name);
    const value = typeof entry.value === 'string' ? entry.value : '';
    if (/[\n\r=]/.test(value)) return forbid(`"${name}" has an invalid value ${JSON.stringify(value)}`);
    if (pod.spec.hostNetwork) return forbid(`"${name}" cannot be set in a hostNetwork pod (it would change the node's network namespace)`);
    if (!name.startsWith('net.')) return forbid(`"${name}" not allowlisted: sandbox pods share the host's IPC and UTS namespaces, so only network-namespace (net.*) sysctls can be set`);
    if (!allowed(name)) return forbid(`"${name}" not allowlisted: the sandbox sets only sysctls the kernel keeps per network namespace (Kubernetes' safe set, net.core.somaxconn, net.ipv4.conf.*, ...)`);
    sysctls.push({ name, value });
  }
  return { sysctls };
}
