/**
 * `amesh precheck`: can amesh run here? Pure checks over gathered facts (precheck-facts.ts gathers
 * them on the node and through the API server). Every check says PASS, WARN or FAIL with what it
 * saw and, unless it passed, the fix. The command exits 1 when any check FAILs.
 *
 * What the node agent needs (DESIGN §2, src/node-agent/capture/):
 * - eBPF capture (the default): a SCHED_CLS program on tc clsact ingress (cls_bpf in
 *   direct-action mode: NET_CLS_BPF, NET_SCH_INGRESS, NET_CLS_ACT), calling bpf_skc_lookup_tcp /
 *   bpf_sk_lookup_tcp and bpf_sk_assign (tc since 5.7), with BTF-defined maps pinned on bpffs.
 * - Always (the post-DNAT chain next to eBPF, and the whole capture in nftables mode): nftables
 *   with the inet family, `socket transparent`, `tproxy` and conntrack matches; fwmark policy
 *   routing (`ip rule`).
 * - Its listeners 15001/15006/15008 and 15000/15020/15021 free in the node's network namespace.
 * - In the cluster: Kubernetes ≥ 1.25 (DaemonSet maxSurge, the zero-drop upgrade), the rights to
 *   apply the manifests, no second ambient data plane (Istio's ztunnel), and no CNI that rewrites
 *   service addresses at connect() time inside pods (Cilium's socket LB), which would hide the
 *   Service the waypoint needs and bypass capture — the same rule Istio ambient documents.
 */

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';
export type CaptureMode = 'ebpf' | 'nftables';

export interface CheckResult {
  /** Stable id, e.g. `kernel-config`; `-o json` consumers key on it. */
  id: string;
  status: CheckStatus;
  /** What was seen, one line. */
  message: string;
  /** What to do; set for WARN and FAIL. */
  fix?: string;
}

/** The oldest kernel the agent supports: bpf_sk_assign at tc (5.7), CAP_BPF (5.8); 5.10 is the LTS that has both. */
export const MIN_KERNEL: readonly [number, number] = [5, 10];
/** DaemonSet `maxSurge` (the side-by-side agent upgrade) is GA in 1.25. */
export const MIN_KUBERNETES: readonly [number, number] = [1, 25];
/** Oldest Kubernetes release this amesh version is tested against. */
export const TESTED_KUBERNETES: readonly [number, number] = [1, 28];

export const AGENT_PORTS: ReadonlyArray<{ port: number; role: string }> = [
  { port: 15000, role: 'admin' },
  { port: 15001, role: 'outbound capture' },
  { port: 15006, role: 'inbound plaintext capture' },
  { port: 15008, role: 'inbound HBONE' },
  { port: 15020, role: 'metrics' },
  { port: 15021, role: 'readiness' },
];

export interface KernelOption {
  name: string;
  /** FAIL when missing in this mode, else WARN. */
  requiredIn: readonly CaptureMode[];
  why: string;
}

export const KERNEL_OPTIONS: readonly KernelOption[] = [
  { name: 'CONFIG_BPF_SYSCALL', requiredIn: ['ebpf'], why: 'the bpf() syscall: loading the capture program and its maps' },
  { name: 'CONFIG_NET_CLS_BPF', requiredIn: ['ebpf'], why: 'the tc BPF classifier the capture program attaches as' },
  { name: 'CONFIG_NET_SCH_INGRESS', requiredIn: ['ebpf'], why: 'the clsact qdisc on each pod veth' },
  { name: 'CONFIG_NET_CLS_ACT', requiredIn: ['ebpf'], why: "tc actions (the classifier's direct-action mode)" },
  { name: 'CONFIG_BPF_JIT', requiredIn: [], why: 'JIT-compiled capture program (interpreted is much slower)' },
  { name: 'CONFIG_NF_TABLES', requiredIn: ['ebpf', 'nftables'], why: 'nftables: the post-DNAT capture chain and the fallback capture' },
  { name: 'CONFIG_NF_TABLES_INET', requiredIn: ['ebpf', 'nftables'], why: 'the `inet` table family amesh uses' },
  { name: 'CONFIG_NFT_TPROXY', requiredIn: ['ebpf', 'nftables'], why: 'nft `tproxy` to the agent listeners' },
  { name: 'CONFIG_NFT_SOCKET', requiredIn: ['ebpf', 'nftables'], why: 'nft `socket transparent` (flows of the agent sockets)' },
  { name: 'CONFIG_NFT_CT', requiredIn: ['ebpf', 'nftables'], why: 'nft `ct status dnat` (Service traffic to local pods)' },
  { name: 'CONFIG_IP_MULTIPLE_TABLES', requiredIn: ['ebpf', 'nftables'], why: 'the fwmark `ip rule` that delivers captured packets locally' },
  { name: 'CONFIG_IPV6_MULTIPLE_TABLES', requiredIn: [], why: 'the same rule for IPv6 pods' },
];

// ---------------------------------------------------------------- facts

export type Fact<T> = { ok: true; value: T } | { ok: false; error: string };

/** One step of the real eBPF probe (precheck-bpf-probe.ts), in order. */
export interface BpfProbeStep {
  step: 'load' | 'pin' | 'attach';
  ok: boolean;
  detail: string;
}

export interface PortFact {
  port: number;
  /** Listening sockets on the port in this network namespace, with their owner when known. */
  listeners: Array<{ address: string; pid?: number; command?: string }>;
}

export interface HostFacts {
  kernelRelease: string;
  /** The kernel build config: options set (`y`/`m`) by name, and where it was read. */
  kernelConfig: Fact<{ source: string; options: Record<string, string> }>;
  /** Not run (`ok: false`) when it could not be (not root, no addon); else the steps it ran. */
  bpfProbe: Fact<BpfProbeStep[]>;
  /** Filesystem type at /sys/fs/bpf, and the first cgroup2 mount point. */
  mounts: { bpffs: boolean; cgroup2: string | undefined };
  nft: Fact<string>;
  ports: Fact<PortFact[]>;
}

export interface AccessCheck {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
}

export interface ClusterFacts {
  server: string;
  version: Fact<{ gitVersion: string; major: string; minor: string }>;
  /** Per access check: allowed, or why not; `ok: false` when the review API itself is missing. */
  access: Fact<Array<AccessCheck & { allowed: boolean; reason?: string }>>;
  istio: Fact<{ ztunnel: string[]; istiod: string[]; istioSystem: boolean }>;
  /** kube-system/cilium-config's data; undefined when there is no such ConfigMap. */
  cilium: Fact<Record<string, string> | undefined>;
}

// ---------------------------------------------------------------- host checks

/** `6.1.0-18-amd64` → [6, 1]; undefined when it does not start with two numbers. */
export function parseKernelRelease(release: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

const atLeast = (have: readonly [number, number], want: readonly [number, number]): boolean => have[0] > want[0] || (have[0] === want[0] && have[1] >= want[1]);

export function checkKernelVersion(release: string): CheckResult {
  const v = parseKernelRelease(release);
  const min = MIN_KERNEL.join('.');
  if (!v) return { id: 'kernel-version', status: 'WARN', message: `cannot read the kernel version from "${release}"`, fix: `make sure the node runs Linux ≥ ${min}` };
  if (!atLeast(v, MIN_KERNEL)) {
    return { id: 'kernel-version', status: 'FAIL', message: `kernel ${release} is older than ${min} (tc programs need bpf_sk_assign, 5.7+, and CAP_BPF, 5.8+)`, fix: `upgrade the node to a ${min}+ kernel (e.g. Debian 12, Ubuntu 22.04, RHEL 9)` };
  }
  return { id: 'kernel-version', status: 'PASS', message: `kernel ${release} (≥ ${min})` };
}

/** Parses a kernel .config: `CONFIG_X=y|m|"str"|n`; `# CONFIG_X is not set` lines are left out. */
export function parseKernelConfig(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export function checkKernelConfig(config: HostFacts['kernelConfig'], mode: CaptureMode): CheckResult {
  if (!config.ok) {
    return { id: 'kernel-config', status: 'WARN', message: `kernel config not readable: ${config.error}`, fix: 'pass --kernel-config <file> (e.g. /boot/config-$(uname -r)); the eBPF probe below still tests the kernel for real' };
  }
  const { source, options } = config.value;
  const missing = KERNEL_OPTIONS.filter((o) => options[o.name] !== 'y' && options[o.name] !== 'm');
  const failing = missing.filter((o) => o.requiredIn.includes(mode));
  const warning = missing.filter((o) => !o.requiredIn.includes(mode));
  const list = (opts: readonly KernelOption[]): string => opts.map((o) => `${o.name} (${o.why})`).join('; ');
  const enable = (opts: readonly KernelOption[]): string => opts.map((o) => `${o.name}=y`).join(', ');
  if (failing.length) {
    const bpfOnly = failing.every((o) => o.requiredIn.length === 1 && o.requiredIn[0] === 'ebpf');
    return {
      id: 'kernel-config',
      status: 'FAIL',
      message: `${source} lacks ${list(failing)}${warning.length ? `; also ${list(warning)}` : ''}`,
      fix: `use a kernel built with ${enable(failing)} (or =m, with the module available)${bpfOnly ? ', or install with --set captureMode=nftables (slower nftables TPROXY capture)' : ''}`,
    };
  }
  if (warning.length) return { id: 'kernel-config', status: 'WARN', message: `${source} lacks ${list(warning)}`, fix: `build the kernel with ${enable(warning)} for full support` };
  return { id: 'kernel-config', status: 'PASS', message: `${source} has the ${KERNEL_OPTIONS.length} options amesh uses` };
}

const PROBE_FIX: Record<BpfProbeStep['step'], string> = {
  load: 'the kernel rejected the capture program (SCHED_CLS with bpf_sk_assign / bpf_skc_lookup_tcp): use a 5.10+ kernel with CONFIG_BPF_SYSCALL and CONFIG_NET_CLS_BPF, run as root (CAP_BPF + CAP_NET_ADMIN)',
  pin: 'mount bpffs: `mount -t bpf bpf /sys/fs/bpf` (and add it to /etc/fstab); the DaemonSet mounts the host /sys/fs/bpf',
  attach: 'tc clsact / cls_bpf is unavailable: enable CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF (or load sch_ingress and cls_bpf)',
};

export function checkBpfFeatures(probe: HostFacts['bpfProbe'], mode: CaptureMode): CheckResult {
  if (mode === 'nftables') return { id: 'bpf-features', status: 'PASS', message: 'not needed: capture mode nftables' };
  if (!probe.ok) return { id: 'bpf-features', status: 'WARN', message: `eBPF not probed: ${probe.error}`, fix: 'run `amesh precheck` as root on a node to load and attach the capture program for real' };
  const failed = probe.value.find((s) => !s.ok);
  if (failed) {
    return { id: 'bpf-features', status: 'FAIL', message: `eBPF ${failed.step} failed: ${failed.detail}`, fix: `${PROBE_FIX[failed.step]}; or install with --set captureMode=nftables` };
  }
  return { id: 'bpf-features', status: 'PASS', message: probe.value.map((s) => s.detail).join('; ') };
}

export function checkMounts(mounts: HostFacts['mounts'], mode: CaptureMode): CheckResult[] {
  const out: CheckResult[] = [];
  if (mounts.bpffs) out.push({ id: 'bpffs', status: 'PASS', message: 'bpffs mounted at /sys/fs/bpf' });
  else {
    out.push({
      id: 'bpffs',
      status: mode === 'ebpf' ? 'FAIL' : 'WARN',
      message: '/sys/fs/bpf is not a bpf filesystem: pinned maps would not survive an agent restart',
      fix: 'mount -t bpf bpf /sys/fs/bpf (persist it in /etc/fstab or a systemd mount unit)',
    });
  }
  if (mounts.cgroup2) out.push({ id: 'cgroup2', status: 'PASS', message: `cgroup2 mounted at ${mounts.cgroup2}` });
  else out.push({ id: 'cgroup2', status: 'WARN', message: 'no cgroup2 mount found', fix: 'boot with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1); kubelet and containerd expect it' });
  return out;
}

export function checkNft(nft: HostFacts['nft']): CheckResult {
  if (nft.ok) return { id: 'nft', status: 'PASS', message: `nft available (${nft.value})` };
  return { id: 'nft', status: 'FAIL', message: `nft is not usable: ${nft.error}`, fix: 'install nftables on the node (apt-get install nftables; dnf install nftables); the agent image ships its own, this checks the kernel side too' };
}

const isAmeshAgent = (command: string | undefined): boolean => !!command && /\bamesh(\.js)?\b/.test(command) && /\bnode-agent\b/.test(command);

export function checkPorts(ports: HostFacts['ports']): CheckResult {
  if (!ports.ok) return { id: 'ports', status: 'WARN', message: `could not list listening sockets: ${ports.error}`, fix: 'check by hand: ss -ltnp | grep -E ":150(00|01|06|08|20|21) "' };
  const conflicts: string[] = [];
  const ours: string[] = [];
  for (const p of ports.value) {
    for (const l of p.listeners) {
      const who = l.pid !== undefined ? `pid ${l.pid}${l.command ? ` (${l.command.length > 60 ? `${l.command.slice(0, 57)}...` : l.command})` : ''}` : 'an unknown process';
      if (isAmeshAgent(l.command)) ours.push(`${p.port}`);
      else conflicts.push(`${p.port} on ${l.address} by ${who}`);
    }
  }
  const role = (port: number): string => AGENT_PORTS.find((a) => a.port === port)?.role ?? '';
  if (conflicts.length) {
    return {
      id: 'ports',
      status: 'FAIL',
      message: `ports the node agent binds are taken: ${conflicts.join('; ')}`,
      fix: `stop or move those listeners (the agent needs ${AGENT_PORTS.map((a) => `${a.port} ${a.role}`).join(', ')}); another mesh's node proxy (ztunnel) uses the same ports`,
    };
  }
  const free = AGENT_PORTS.map((a) => a.port);
  return { id: 'ports', status: 'PASS', message: ours.length ? `${[...new Set(ours)].join(', ')} held by the amesh node agent; the rest free` : `${free.join(', ')} free (${free.map(role).join(', ')})` };
}

export function hostChecks(facts: HostFacts, mode: CaptureMode): CheckResult[] {
  return [
    checkKernelVersion(facts.kernelRelease),
    checkKernelConfig(facts.kernelConfig, mode),
    checkBpfFeatures(facts.bpfProbe, mode),
    ...checkMounts(facts.mounts, mode),
    checkNft(facts.nft),
    checkPorts(facts.ports),
  ];
}

// ---------------------------------------------------------------- cluster checks

export function checkKubernetesVersion(version: ClusterFacts['version']): CheckResult {
  if (!version.ok) return { id: 'kubernetes-version', status: 'WARN', message: `could not read the server version: ${version.error}`, fix: `make sure the cluster runs Kubernetes ≥ ${TESTED_KUBERNETES.join('.')}` };
  const { gitVersion, major, minor } = version.value;
  const v: [number, number] = [Number(major), Number.parseInt(minor, 10)];
  if (!Number.isFinite(v[0]) || !Number.isFinite(v[1])) return { id: 'kubernetes-version', status: 'WARN', message: `unrecognised server version ${gitVersion}`, fix: `make sure the cluster runs Kubernetes ≥ ${TESTED_KUBERNETES.join('.')}` };
  if (!atLeast(v, MIN_KUBERNETES)) {
    return { id: 'kubernetes-version', status: 'FAIL', message: `Kubernetes ${gitVersion} is older than ${MIN_KUBERNETES.join('.')} (DaemonSet maxSurge, which the node agent's zero-drop upgrade uses)`, fix: `upgrade the cluster to ≥ ${TESTED_KUBERNETES.join('.')}` };
  }
  if (!atLeast(v, TESTED_KUBERNETES)) return { id: 'kubernetes-version', status: 'WARN', message: `Kubernetes ${gitVersion} is older than ${TESTED_KUBERNETES.join('.')}, the oldest tested`, fix: `upgrade to ≥ ${TESTED_KUBERNETES.join('.')} if anything misbehaves` };
  return { id: 'kubernetes-version', status: 'PASS', message: `Kubernetes ${gitVersion}` };
}

/** What `amesh install` applies (server-side apply = patch; create for new objects). */
export const INSTALL_ACCESS: readonly AccessCheck[] = [
  ...['create', 'patch'].flatMap((verb): AccessCheck[] => [
    { verb, group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions' },
    { verb, group: '', resource: 'namespaces' },
    { verb, group: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
    { verb, group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' },
    { verb, group: '', resource: 'serviceaccounts', namespace: 'amesh-system' },
    { verb, group: '', resource: 'configmaps', namespace: 'amesh-system' },
    { verb, group: '', resource: 'services', namespace: 'amesh-system' },
    { verb, group: 'apps', resource: 'daemonsets', namespace: 'amesh-system' },
    { verb, group: 'apps', resource: 'deployments', namespace: 'amesh-system' },
  ]),
];

const describeAccess = (a: AccessCheck): string => `${a.verb} ${a.resource}${a.group ? `.${a.group}` : ''}${a.namespace ? ` in ${a.namespace}` : ''}`;

export function checkRbac(access: ClusterFacts['access']): CheckResult {
  if (!access.ok) {
    return { id: 'rbac', status: 'WARN', message: `could not check permissions: ${access.error}`, fix: 'make sure your user may create and patch CRDs, namespaces, cluster RBAC and workloads in amesh-system (e.g. cluster-admin)' };
  }
  const denied = access.value.filter((a) => !a.allowed);
  if (denied.length) {
    return {
      id: 'rbac',
      status: 'FAIL',
      message: `not allowed to ${denied.map(describeAccess).join(', ')}`,
      fix: 'run install as a cluster admin, or bind your user to a ClusterRole with those verbs (kubectl create clusterrolebinding amesh-installer --clusterrole=cluster-admin --user=<you>)',
    };
  }
  return { id: 'rbac', status: 'PASS', message: `allowed to apply everything install needs (${access.value.length} checks)` };
}

export function checkIstio(istio: ClusterFacts['istio']): CheckResult {
  if (!istio.ok) return { id: 'istio', status: 'WARN', message: `could not look for Istio: ${istio.error}`, fix: 'make sure no Istio ztunnel DaemonSet runs: kubectl get ds -A | grep ztunnel' };
  const { ztunnel, istiod, istioSystem } = istio.value;
  if (ztunnel.length) {
    return {
      id: 'istio',
      status: 'FAIL',
      message: `Istio ambient is installed (ztunnel DaemonSet ${ztunnel.join(', ')}): two node proxies would capture the same pods and bind the same ports`,
      fix: 'uninstall Istio ambient first (istioctl uninstall --purge, or helm uninstall ztunnel istio-cni istiod -n istio-system), or use another cluster',
    };
  }
  if (istiod.length || istioSystem) {
    return {
      id: 'istio',
      status: 'WARN',
      message: `Istio is present (${istiod.length ? `istiod ${istiod.join(', ')}` : 'namespace istio-system'}): sidecar-injected pods and amesh must not share namespaces`,
      fix: 'enroll only namespaces without istio-injection / sidecars; amesh reads the same Istio CRDs, so policies apply to both',
    };
  }
  return { id: 'istio', status: 'PASS', message: 'no Istio control plane or ztunnel' };
}

/** Whether Cilium's socket-level load balancing runs inside pods (what conflicts with capture). */
export function ciliumSocketLb(config: Record<string, string>): { enabled: boolean; hostNamespaceOnly: boolean; why: string } {
  const kpr = config['kube-proxy-replacement'];
  const sock = config['bpf-lb-sock'];
  const hostReachable = config['enable-host-reachable-services'];
  const hostNamespaceOnly = config['bpf-lb-sock-hostns-only'] === 'true';
  let why = '';
  if (sock === 'true') why = 'bpf-lb-sock: "true"';
  else if (sock !== 'false' && (kpr === 'true' || kpr === 'strict')) why = `kube-proxy-replacement: "${kpr}" (socket LB on by default)`;
  else if (hostReachable === 'true') why = 'enable-host-reachable-services: "true"';
  return { enabled: why !== '', hostNamespaceOnly, why };
}

export function checkCilium(cilium: ClusterFacts['cilium']): CheckResult {
  if (!cilium.ok) return { id: 'cni-cilium', status: 'WARN', message: `could not read kube-system/cilium-config: ${cilium.error}`, fix: 'if the cluster runs Cilium, make sure bpf-lb-sock-hostns-only is "true"' };
  if (!cilium.value) return { id: 'cni-cilium', status: 'PASS', message: 'no Cilium (kube-system/cilium-config absent)' };
  const lb = ciliumSocketLb(cilium.value);
  if (lb.enabled && !lb.hostNamespaceOnly) {
    return {
      id: 'cni-cilium',
      status: 'FAIL',
      message: `Cilium's socket LB rewrites Service addresses inside pods (${lb.why}, bpf-lb-sock-hostns-only not "true"): captured traffic would reach backends directly, bypassing waypoints and Service policy`,
      fix: 'limit socket LB to the host namespace: helm upgrade cilium cilium/cilium --reuse-values --set socketLB.hostNamespaceOnly=true (or set bpf-lb-sock-hostns-only: "true" in kube-system/cilium-config) and restart the cilium DaemonSet',
    };
  }
  return { id: 'cni-cilium', status: 'PASS', message: lb.enabled ? `Cilium socket LB limited to the host namespace (${lb.why}, bpf-lb-sock-hostns-only: "true")` : 'Cilium without socket LB' };
}

export function clusterChecks(facts: ClusterFacts): CheckResult[] {
  return [checkKubernetesVersion(facts.version), checkRbac(facts.access), checkIstio(facts.istio), checkCilium(facts.cilium)];
}

// ---------------------------------------------------------------- report

export interface PrecheckReport {
  checks: CheckResult[];
  /** PASS when nothing failed (warnings allowed). */
  result: 'PASS' | 'FAIL';
}

export function report(checks: CheckResult[]): PrecheckReport {
  return { checks, result: checks.some((c) => c.status === 'FAIL') ? 'FAIL' : 'PASS' };
}

export function formatReport(r: PrecheckReport): string {
  const width = Math.max(...r.checks.map((c) => c.id.length), 10);
  const lines = r.checks.flatMap((c) => [`${c.status.padEnd(4)}  ${c.id.padEnd(width)}  ${c.message}`, ...(c.fix && c.status !== 'PASS' ? [`${' '.repeat(width + 8)}fix: ${c.fix}`] : [])]);
  const counts = (['PASS', 'WARN', 'FAIL'] as const).map((s) => `${r.checks.filter((c) => c.status === s).length} ${s.toLowerCase()}`).join(', ');
  lines.push('', r.result === 'PASS' ? `precheck passed (${counts})` : `precheck FAILED (${counts}): fix the FAIL lines before \`amesh install\``);
  return `${lines.join('\n')}\n`;
}
