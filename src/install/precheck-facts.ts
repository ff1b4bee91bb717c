/**
 * Gathers what `amesh precheck` decides on (precheck.ts): facts about this node (kernel, its
 * config, a real eBPF load/pin/attach in a throw-away network namespace, mounts, nft, listening
 * ports) and about the cluster (version, the installer's rights, Istio, Cilium's config).
 * A source that cannot be read becomes a failed fact with the reason, never an exception: the
 * checks turn it into a WARN that says what could not be seen.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, readlink, rm } from 'node:fs/promises';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { AppsV1Api, AuthorizationV1Api, CoreV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import { statusCodeOf } from '../controller/kube/informer.js';
import { bpfObjectPath } from '../node-agent/capture/bpf-contract.js';
import { AGENT_PORTS, INSTALL_ACCESS, parseKernelConfig, type BpfProbeStep, type ClusterFacts, type Fact, type HostFacts, type PortFact } from './precheck.js';

const ok = <T>(value: T): Fact<T> => ({ ok: true, value });
const failed = <T>(error: unknown): Fact<T> => ({ ok: false, error: error instanceof Error ? error.message : String(error) });

function run(command: string, args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: err && code === -1 ? `${err.message} ${String(stderr)}`.trim() : String(stderr) });
    });
  });
}

const isRoot = (): boolean => process.getuid?.() === 0;

// ---------------------------------------------------------------- host

export async function readKernelConfig(path: string | undefined, kernelRelease: string): Promise<HostFacts['kernelConfig']> {
  const candidates = path ? [path] : ['/proc/config.gz', `/boot/config-${kernelRelease}`, `/lib/modules/${kernelRelease}/config`];
  const errors: string[] = [];
  for (const file of candidates) {
    try {
      const raw = await readFile(file);
      const text = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
      const options = parseKernelConfig(text);
      if (!Object.keys(options).length) throw new Error('no CONFIG_ lines');
      return ok({ source: file, options });
    } catch (err) {
      errors.push(`${file}: ${(err as Error).message}`);
    }
  }
  return { ok: false, error: errors.join('; ') };
}

/** The compiled probe program next to this module (dist/src/install/ after `npm run build`). */
export const BPF_PROBE_SCRIPT = fileURLToPath(new URL('./precheck-bpf-probe.js', import.meta.url));

export async function probeBpfInNewNetns(objectPath = bpfObjectPath()): Promise<HostFacts['bpfProbe']> {
  if (!isRoot()) return { ok: false, error: 'not running as root (loading and attaching BPF programs needs CAP_BPF, CAP_NET_ADMIN)' };
  if (!existsSync(objectPath)) return { ok: false, error: `the capture program ${objectPath} is not built (npm run build:bpf)` };
  if (!existsSync(BPF_PROBE_SCRIPT)) return { ok: false, error: `the probe ${BPF_PROBE_SCRIPT} is not built (npm run build)` };
  const pinRoot = `/sys/fs/bpf/amesh-precheck-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    const r = await run('unshare', ['--net', '--', process.execPath, BPF_PROBE_SCRIPT, objectPath, pinRoot]);
    if (r.code !== 0) return { ok: false, error: `unshare --net node precheck-bpf-probe.js exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}` };
    return ok(JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '[]') as BpfProbeStep[]);
  } catch (err) {
    return failed(err);
  } finally {
    await rm(pinRoot, { recursive: true, force: true }).catch(() => {});
  }
}

/** /proc/self/mountinfo: field 5 is the mount point; after " - " the filesystem type. */
export function parseMounts(mountinfo: string): HostFacts['mounts'] {
  let bpffs = false;
  let cgroup2: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const point = left.split(' ')[4];
    const fstype = right.split(' ')[0];
    if (fstype === 'bpf' && point === '/sys/fs/bpf') bpffs = true;
    if (fstype === 'cgroup2' && cgroup2 === undefined) cgroup2 = point;
  }
  return { bpffs, cgroup2 };
}

export async function readNft(): Promise<HostFacts['nft']> {
  const v = await run('nft', ['--version'], 10_000);
  if (v.code !== 0) return { ok: false, error: v.code === -1 && /ENOENT/.test(v.stderr) ? 'nft is not installed' : `nft --version: ${v.stderr.trim()}` };
  const version = v.stdout.trim();
  if (!isRoot()) return ok(`${version}; kernel side not checked (not root)`);
  // The kernel side: nf_tables answers over netlink.
  const l = await run('nft', ['list', 'tables'], 10_000);
  return l.code === 0 ? ok(version) : { ok: false, error: `nft list tables: ${l.stderr.trim()}` };
}

/** LISTEN sockets (state 0A) of /proc/net/tcp{,6} on the given ports: port → [address, inode]. */
export function parseProcNetTcp(text: string, ports: ReadonlySet<number>): Array<{ port: number; address: string; inode: string }> {
  const out: Array<{ port: number; address: string; inode: string }> = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== '0A') continue;
    const [hexAddress, hexPort] = (f[1] ?? '').split(':');
    const port = Number.parseInt(hexPort ?? '', 16);
    if (!ports.has(port)) continue;
    out.push({ port, address: decodeAddress(hexAddress ?? ''), inode: f[9] ?? '' });
  }
  return out;
}

function decodeAddress(hex: string): string {
  // /proc/net/tcp prints each 32-bit word in host (little-endian) order.
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]`;
}

async function socketOwners(inodes: ReadonlySet<string>): Promise<Map<string, { pid: number; command: string }>> {
  const owners = new Map<string, { pid: number; command: string }>();
  if (!inodes.size) return owners;
  for (const pid of (await readdir('/proc')).filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode) && !owners.has(inode)) {
        const command = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean).join(' ');
        owners.set(inode, { pid: Number(pid), command });
      }
    }
  }
  return owners;
}

export async function readPorts(ports: readonly number[] = AGENT_PORTS.map((p) => p.port)): Promise<HostFacts['ports']> {
  try {
    const wanted = new Set(ports);
    const texts = await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map((f) => readFile(f, 'utf8').catch(() => '')));
    const listening = texts.flatMap((t) => parseProcNetTcp(t, wanted));
    const owners = await socketOwners(new Set(listening.map((l) => l.inode)));
    return ok(
      ports.map((port): PortFact => ({
        port,
        listeners: listening
          .filter((l) => l.port === port)
          .map((l) => {
            const owner = owners.get(l.inode);
            return { address: l.address, ...(owner ? { pid: owner.pid, command: owner.command } : {}) };
          }),
      })),
    );
  } catch (err) {
    return failed(err);
  }
}

export async function gatherHostFacts(o: { kernelConfig?: string; probeBpf?: boolean }): Promise<HostFacts> {
  const kernelRelease = release();
  const [kernelConfig, bpfProbe, mountinfo, nft, ports] = await Promise.all([
    readKernelConfig(o.kernelConfig, kernelRelease),
    o.probeBpf === false ? Promise.resolve<HostFacts['bpfProbe']>({ ok: false, error: 'skipped' }) : probeBpfInNewNetns(),
    readFile('/proc/self/mountinfo', 'utf8').catch(() => ''),
    readNft(),
    readPorts(),
  ]);
  return { kernelRelease, kernelConfig, bpfProbe, mounts: parseMounts(mountinfo), nft, ports };
}

// ---------------------------------------------------------------- cluster

const API_TIMEOUT_MS = 10_000;

function withTimeout<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${API_TIMEOUT_MS / 1000} s`)), API_TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function apiError(err: unknown): string {
  const code = statusCodeOf(err);
  const body = (err as { body?: unknown }).body;
  const message = typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string' ? (body as { message: string }).message : err instanceof Error ? err.message : String(err);
  return code ? `HTTP ${code}: ${message}` : message;
}

async function readAccess(kc: KubeConfig): Promise<ClusterFacts['access']> {
  const authz = kc.makeApiClient(AuthorizationV1Api);
  try {
    const results = await Promise.all(
      INSTALL_ACCESS.map(async (a) => {
        const review = await withTimeout('SelfSubjectAccessReview', authz.createSelfSubjectAccessReview({ body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { verb: a.verb, group: a.group, resource: a.resource, ...(a.namespace ? { namespace: a.namespace } : {}) } } } }));
        return { ...a, allowed: review.status?.allowed === true, ...(review.status?.reason ? { reason: review.status.reason } : {}) };
      }),
    );
    return ok(results);
  } catch (err) {
    const code = statusCodeOf(err);
    if (code === 404 || code === 405) return { ok: false, error: `the API server does not serve authorization.k8s.io/v1 SelfSubjectAccessReview (HTTP ${code})` };
    return { ok: false, error: `SelfSubjectAccessReview: ${apiError(err)}` };
  }
}

async function readIstio(kc: KubeConfig): Promise<ClusterFacts['istio']> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  try {
    const [daemonSets, deployments, istioSystem] = await Promise.all([
      withTimeout('list DaemonSets', apps.listDaemonSetForAllNamespaces()),
      withTimeout('list Deployments', apps.listDeploymentForAllNamespaces()),
      withTimeout('read namespace istio-system', core.readNamespace({ name: 'istio-system' })).then(
        () => true,
        (err: unknown) => {
          if (statusCodeOf(err) === 404) return false;
          throw err;
        },
      ),
    ]);
    const ref = (o: { metadata?: { namespace?: string; name?: string } }): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    const named = (o: { metadata?: { name?: string; labels?: Record<string, string> } }, name: string): boolean => o.metadata?.name === name || o.metadata?.labels?.app === name;
    return ok({ ztunnel: daemonSets.items.filter((d) => named(d, 'ztunnel')).map(ref), istiod: deployments.items.filter((d) => named(d, 'istiod')).map(ref), istioSystem });
  } catch (err) {
    return { ok: false, error: apiError(err) };
  }
}

async function readCilium(kc: KubeConfig): Promise<ClusterFacts['cilium']> {
  try {
    const cm = await withTimeout('read kube-system/cilium-config', kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'cilium-config', namespace: 'kube-system' }));
    return ok(cm.data ?? {});
  } catch (err) {
    return statusCodeOf(err) === 404 ? ok(undefined) : { ok: false, error: apiError(err) };
  }
}

/** The cluster's facts; throws (with the reason) only when the API server does not answer at all. */
export async function gatherClusterFacts(kc: KubeConfig): Promise<ClusterFacts> {
  const server = kc.getCurrentCluster()?.server ?? '(unknown server)';
  let version: ClusterFacts['version'];
  try {
    const v = await withTimeout(`GET ${server}/version`, kc.makeApiClient(VersionApi).getCode());
    version = ok({ gitVersion: v.gitVersion, major: v.major, minor: v.minor });
  } catch (err) {
    if (statusCodeOf(err) === undefined) throw new Error(`cannot reach the API server ${server}: ${apiError(err)}`, { cause: err });
    version = { ok: false, error: apiError(err) };
  }
  const [access, istio, cilium] = await Promise.all([readAccess(kc), readIstio(kc), readCilium(kc)]);
  return { server, version, access, istio, cilium };
}
