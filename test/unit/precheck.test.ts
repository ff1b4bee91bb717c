import { describe, expect, it } from 'vitest';
import { createFakeNativeBinding } from '../../src/native/fake.js';
import { probeBpf } from '../../src/install/precheck-bpf-probe.js';
import { parseMounts, parseProcNetTcp } from '../../src/install/precheck-facts.js';
import {
  AGENT_PORTS,
  KERNEL_OPTIONS,
  checkBpfFeatures,
  checkCilium,
  checkIstio,
  checkKernelConfig,
  checkKernelVersion,
  checkKubernetesVersion,
  checkMounts,
  checkNft,
  checkPorts,
  checkRbac,
  ciliumSocketLb,
  clusterChecks,
  formatReport,
  hostChecks,
  INSTALL_ACCESS,
  parseKernelConfig,
  report,
  type ClusterFacts,
  type HostFacts,
} from '../../src/install/precheck.js';

const FULL_CONFIG = Object.fromEntries(KERNEL_OPTIONS.map((o) => [o.name, 'y']));
const config = (options: Record<string, string>): HostFacts['kernelConfig'] => ({ ok: true, value: { source: '/proc/config.gz', options } });
const without = (...names: string[]): Record<string, string> => Object.fromEntries(Object.entries(FULL_CONFIG).filter(([k]) => !names.includes(k)));

const GOOD_PROBE: HostFacts['bpfProbe'] = {
  ok: true,
  value: [
    { step: 'load', ok: true, detail: 'SCHED_CLS program amesh_capture verified' },
    { step: 'pin', ok: true, detail: '3 maps pinned on bpffs' },
    { step: 'attach', ok: true, detail: 'attached on tc clsact ingress' },
  ],
};
const freePorts = (): HostFacts['ports'] => ({ ok: true, value: AGENT_PORTS.map(({ port }) => ({ port, listeners: [] })) });
const GOOD_HOST: HostFacts = {
  kernelRelease: '6.1.0-18-amd64',
  kernelConfig: config(FULL_CONFIG),
  bpfProbe: GOOD_PROBE,
  mounts: { bpffs: true, cgroup2: '/sys/fs/cgroup' },
  nft: { ok: true, value: 'nftables v1.0.6' },
  ports: freePorts(),
};
const GOOD_CLUSTER: ClusterFacts = {
  server: 'https://127.0.0.1:6443',
  version: { ok: true, value: { gitVersion: 'v1.31.2', major: '1', minor: '31' } },
  access: { ok: true, value: INSTALL_ACCESS.map((a) => ({ ...a, allowed: true })) },
  istio: { ok: true, value: { ztunnel: [], istiod: [], istioSystem: false } },
  cilium: { ok: true, value: undefined },
};

describe('host checks', () => {
  it('pass on a healthy node', () => {
    const checks = hostChecks(GOOD_HOST, 'ebpf');
    expect(checks.map((c) => [c.id, c.status])).toEqual([
      ['kernel-version', 'PASS'],
      ['kernel-config', 'PASS'],
      ['bpf-features', 'PASS'],
      ['bpffs', 'PASS'],
      ['cgroup2', 'PASS'],
      ['nft', 'PASS'],
      ['ports', 'PASS'],
    ]);
    expect(report(checks).result).toBe('PASS');
  });

  it.each([
    ['5.4.0-150-generic', 'FAIL'],
    ['5.9.16', 'FAIL'],
    ['5.10.0-28-amd64', 'PASS'],
    ['6.18.44-fc-v1098', 'PASS'],
    ['garbage', 'WARN'],
  ])('kernel %s → %s', (release, status) => {
    const c = checkKernelVersion(release);
    expect(c.status).toBe(status);
    if (status !== 'PASS') expect(c.fix).toBeTruthy();
  });

  it('parses a kernel .config, leaving out unset options', () => {
    expect(parseKernelConfig('# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_D="x"\n')).toEqual({ CONFIG_A: 'y', CONFIG_C: 'm', CONFIG_D: '"x"' });
  });

  it('a config missing CONFIG_NET_CLS_BPF fails in eBPF mode, naming it and the fix', () => {
    const c = checkKernelConfig(config(without('CONFIG_NET_CLS_BPF')), 'ebpf');
    expect(c.status).toBe('FAIL');
    expect(c.message).toContain('CONFIG_NET_CLS_BPF');
    expect(c.fix).toContain('CONFIG_NET_CLS_BPF=y');
    expect(c.fix).toContain('captureMode=nftables');
  });

  it('the same config only warns in nftables mode; an nftables option fails in both', () => {
    expect(checkKernelConfig(config(without('CONFIG_NET_CLS_BPF')), 'nftables').status).toBe('WARN');
    const nft = checkKernelConfig(config(without('CONFIG_NFT_TPROXY')), 'nftables');
    expect(nft.status).toBe('FAIL');
    expect(nft.fix).not.toContain('captureMode=nftables');
    expect(checkKernelConfig(config(without('CONFIG_NFT_TPROXY')), 'ebpf').status).toBe('FAIL');
  });

  it('modules (=m) count as present; a missing optional option warns', () => {
    expect(checkKernelConfig(config({ ...FULL_CONFIG, CONFIG_NET_CLS_BPF: 'm', CONFIG_NET_SCH_INGRESS: 'm' }), 'ebpf').status).toBe('PASS');
    const jit = checkKernelConfig(config(without('CONFIG_BPF_JIT')), 'ebpf');
    expect(jit.status).toBe('WARN');
    expect(jit.message).toContain('CONFIG_BPF_JIT');
  });

  it('an unreadable config warns and says how to point at one', () => {
    const c = checkKernelConfig({ ok: false, error: '/proc/config.gz: ENOENT' }, 'ebpf');
    expect(c.status).toBe('WARN');
    expect(c.fix).toContain('--kernel-config');
  });

  it.each([
    ['load', 'unknown func bpf_sk_assign#124', /kernel rejected the capture program/],
    ['pin', 'maps not pinned under /sys/fs/bpf/x: amesh_pods', /mount -t bpf bpf \/sys\/fs\/bpf/],
    ['attach', 'bpf_tc_hook_create: Operation not supported', /CONFIG_NET_SCH_INGRESS/],
  ] as const)('a failed eBPF %s step fails with its fix', (step, detail, fix) => {
    const c = checkBpfFeatures({ ok: true, value: [{ step, ok: false, detail }] }, 'ebpf');
    expect(c.status).toBe('FAIL');
    expect(c.message).toContain(detail);
    expect(c.fix).toMatch(fix);
  });

  it('eBPF not probed warns; not needed in nftables mode', () => {
    expect(checkBpfFeatures({ ok: false, error: 'not running as root' }, 'ebpf').status).toBe('WARN');
    expect(checkBpfFeatures({ ok: false, error: 'not running as root' }, 'nftables').status).toBe('PASS');
  });

  it('bpffs missing fails in eBPF mode; cgroup2 missing warns', () => {
    const [bpffs, cgroup2] = checkMounts({ bpffs: false, cgroup2: undefined }, 'ebpf');
    expect(bpffs?.status).toBe('FAIL');
    expect(bpffs?.fix).toContain('mount -t bpf bpf /sys/fs/bpf');
    expect(cgroup2?.status).toBe('WARN');
    expect(checkMounts({ bpffs: false, cgroup2: '/sys/fs/cgroup' }, 'nftables')[0]?.status).toBe('WARN');
  });

  it('reads bpffs and cgroup2 from mountinfo', () => {
    const mountinfo = [
      '25 30 0:22 / /sys/fs/bpf rw,relatime shared:7 - bpf bpf rw',
      '26 30 0:23 / /sys/fs/cgroup rw,nosuid shared:8 - cgroup2 cgroup2 rw',
      '27 30 0:24 / /tmp/bpf rw - bpf bpf rw',
    ].join('\n');
    expect(parseMounts(mountinfo)).toEqual({ bpffs: true, cgroup2: '/sys/fs/cgroup' });
    expect(parseMounts('27 30 0:24 / /tmp/bpf rw - bpf bpf rw')).toEqual({ bpffs: false, cgroup2: undefined });
  });

  it('nft missing fails', () => {
    const c = checkNft({ ok: false, error: 'nft is not installed' });
    expect(c.status).toBe('FAIL');
    expect(c.fix).toContain('nftables');
  });

  it('a foreign listener on an agent port fails, naming the process; the amesh agent itself passes', () => {
    const taken: HostFacts['ports'] = { ok: true, value: [{ port: 15008, listeners: [{ address: '0.0.0.0', pid: 42, command: '/usr/local/bin/ztunnel proxy ztunnel' }] }] };
    const c = checkPorts(taken);
    expect(c.status).toBe('FAIL');
    expect(c.message).toContain('15008 on 0.0.0.0 by pid 42 (/usr/local/bin/ztunnel proxy ztunnel)');
    const ours: HostFacts['ports'] = { ok: true, value: [{ port: 15008, listeners: [{ address: '127.0.0.1', pid: 7, command: 'node /app/bin/amesh.js node-agent' }] }] };
    expect(checkPorts(ours)).toMatchObject({ status: 'PASS', message: expect.stringContaining('held by the amesh node agent') });
    expect(checkPorts({ ok: false, error: 'EACCES' }).status).toBe('WARN');
  });

  it('parses LISTEN sockets of /proc/net/tcp and tcp6 on the wanted ports', () => {
    const tcp = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:3A9C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0',
      '   1: 00000000:3A98 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0',
      '   2: 0100007F:3A9C 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0',
      '   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0 100 0 0 10 0',
    ].join('\n');
    expect(parseProcNetTcp(tcp, new Set([15000, 15004]))).toEqual([
      { port: 15004, address: '127.0.0.1', inode: '111' },
      { port: 15000, address: '0.0.0.0', inode: '222' },
    ]);
    const tcp6 = ['header', '   0: 00000000000000000000000001000000:3A98 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1'].join('\n');
    expect(parseProcNetTcp(tcp6, new Set([15000]))).toEqual([{ port: 15000, address: '[::1]', inode: '555' }]);
  });
});

describe('the eBPF probe steps (fake native binding)', () => {
  it('loads, finds the pinned maps and attaches, then detaches and closes', () => {
    const native = createFakeNativeBinding();
    const steps = probeBpf(native, '/x/capture.bpf.o', '/sys/fs/bpf/p', () => ['amesh_pods', 'amesh_exempt', 'amesh_reasons', 'amesh_flows']);
    expect(steps.map((s) => [s.step, s.ok])).toEqual([
      ['load', true],
      ['pin', true],
      ['attach', true],
    ]);
    expect(native.state.objects.size).toBe(0);
  });

  it('reports a map that was not pinned', () => {
    const steps = probeBpf(createFakeNativeBinding(), '/x/capture.bpf.o', '/sys/fs/bpf/p', () => ['amesh_pods']);
    expect(steps.at(-1)).toMatchObject({ step: 'pin', ok: false, detail: expect.stringContaining('amesh_exempt, amesh_reasons, amesh_flows') });
  });

  it('reports a verifier rejection as the load step', () => {
    const native = { ...createFakeNativeBinding(), loadObject: () => { throw Object.assign(new Error('bpf_object__load: Invalid argument (unknown func bpf_sk_assign#124)'), { syscall: 'bpf_object__load' }); } };
    expect(probeBpf(native, '/x', '/sys/fs/bpf/p', () => [])).toEqual([{ step: 'load', ok: false, detail: 'bpf_object__load: Invalid argument (unknown func bpf_sk_assign#124)' }]);
  });

  it('reports a tc attach failure as the attach step', () => {
    const fake = createFakeNativeBinding();
    const native = { ...fake, tcAttachIngress: () => { throw new Error('bpf_tc_hook_create: Operation not supported'); } };
    const steps = probeBpf(native, '/x', '/sys/fs/bpf/p', () => ['amesh_pods', 'amesh_exempt', 'amesh_reasons', 'amesh_flows']);
    expect(steps.at(-1)).toEqual({ step: 'attach', ok: false, detail: 'bpf_tc_hook_create: Operation not supported' });
  });
});

describe('cluster checks', () => {
  it('pass on a healthy cluster', () => {
    expect(clusterChecks(GOOD_CLUSTER).map((c) => c.status)).toEqual(['PASS', 'PASS', 'PASS', 'PASS']);
  });

  it.each([
    [{ gitVersion: 'v1.24.17', major: '1', minor: '24' }, 'FAIL'],
    [{ gitVersion: 'v1.26.3', major: '1', minor: '26' }, 'WARN'],
    [{ gitVersion: 'v1.30.0-eks-1', major: '1', minor: '30+' }, 'PASS'],
  ])('Kubernetes %o → %s', (value, status) => {
    expect(checkKubernetesVersion({ ok: true, value }).status).toBe(status);
  });

  it('RBAC: a denied verb fails naming it; a missing review API warns naming it', () => {
    const denied = checkRbac({ ok: true, value: INSTALL_ACCESS.map((a) => ({ ...a, allowed: !(a.resource === 'clusterroles' && a.verb === 'create') })) });
    expect(denied.status).toBe('FAIL');
    expect(denied.message).toBe('not allowed to create clusterroles.rbac.authorization.k8s.io');
    expect(denied.fix).toContain('cluster-admin');
    const missing = checkRbac({ ok: false, error: 'the API server does not serve authorization.k8s.io/v1 SelfSubjectAccessReview (HTTP 404)' });
    expect(missing.status).toBe('WARN');
    expect(missing.message).toContain('SelfSubjectAccessReview');
  });

  it('Istio: a ztunnel DaemonSet fails with the uninstall fix; istiod alone warns', () => {
    const ambient = checkIstio({ ok: true, value: { ztunnel: ['istio-system/ztunnel'], istiod: ['istio-system/istiod'], istioSystem: true } });
    expect(ambient.status).toBe('FAIL');
    expect(ambient.message).toContain('istio-system/ztunnel');
    expect(ambient.fix).toContain('istioctl uninstall --purge');
    expect(checkIstio({ ok: true, value: { ztunnel: [], istiod: ['istio-system/istiod'], istioSystem: true } }).status).toBe('WARN');
  });

  it.each([
    [{ 'bpf-lb-sock': 'true' }, true],
    [{ 'kube-proxy-replacement': 'true' }, true],
    [{ 'kube-proxy-replacement': 'strict' }, true],
    [{ 'kube-proxy-replacement': 'true', 'bpf-lb-sock': 'false' }, false],
    [{ 'kube-proxy-replacement': 'false' }, false],
    [{ 'kube-proxy-replacement': 'partial', 'enable-host-reachable-services': 'true' }, true],
    [{}, false],
  ])('Cilium socket LB of %o: %s', (data, enabled) => {
    expect(ciliumSocketLb(data).enabled).toBe(enabled);
  });

  it('Cilium with socket LB in pods fails with the hostNamespaceOnly fix; limited to the host namespace passes', () => {
    const conflict = checkCilium({ ok: true, value: { 'kube-proxy-replacement': 'true', 'bpf-lb-sock': 'true' } });
    expect(conflict.status).toBe('FAIL');
    expect(conflict.message).toContain('bpf-lb-sock: "true"');
    expect(conflict.fix).toContain('--set socketLB.hostNamespaceOnly=true');
    expect(conflict.fix).toContain('bpf-lb-sock-hostns-only: "true"');
    expect(checkCilium({ ok: true, value: { 'bpf-lb-sock': 'true', 'bpf-lb-sock-hostns-only': 'true' } }).status).toBe('PASS');
    expect(checkCilium({ ok: true, value: { 'kube-proxy-replacement': 'false' } }).status).toBe('PASS');
    expect(checkCilium({ ok: false, error: 'HTTP 403: forbidden' }).status).toBe('WARN');
  });
});

describe('report', () => {
  it('fails when any check fails and prints each fix under its line', () => {
    const r = report([...hostChecks({ ...GOOD_HOST, kernelConfig: config(without('CONFIG_NET_CLS_BPF')) }, 'ebpf'), ...clusterChecks(GOOD_CLUSTER)]);
    expect(r.result).toBe('FAIL');
    const text = formatReport(r);
    expect(text).toMatch(/^FAIL {2}kernel-config +\/proc\/config\.gz lacks CONFIG_NET_CLS_BPF/m);
    expect(text).toMatch(/^ +fix: use a kernel built with CONFIG_NET_CLS_BPF=y/m);
    expect(text).toContain('precheck FAILED (10 pass, 0 warn, 1 fail)');
  });

  it('passes with warnings', () => {
    const r = report([...hostChecks({ ...GOOD_HOST, mounts: { bpffs: true, cgroup2: undefined } }, 'ebpf')]);
    expect(r.result).toBe('PASS');
    expect(formatReport(r)).toContain('precheck passed (6 pass, 1 warn, 0 fail)');
  });
});
