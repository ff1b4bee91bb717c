/**
 * Issue #12, fault tests part 1 — network and state faults in a private two-node sandbox, under
 * steady traffic in the ambient namespace `demo` (client and nc-client on the first node, backend
 * and the stream server on the second, so every request crosses node agent → HBONE → node agent):
 * 1. certificate expiry: the controller issues 60 s workload certificates; the second node's
 *    agent is cut from the CA (nft reject of port 15012 in its node netns, established
 *    connections killed with `ss -K`) until the backend's certificate has expired. New HBONE
 *    handshakes are then refused — nothing is presented (openssl s_client from the other node),
 *    requests fail within curl's bound, the agent logs "no valid certificate for <identity>" —,
 *    no plaintext crosses the uplinks, and once the CA is reachable again the agent renews by
 *    itself and every request is served. (Requests on an HBONE connection pooled before the
 *    expiry are still served: printed as a known gap, the pool does not check lifetimes.)
 *    (Run first: the short lifetime must be in force before the workloads' certificates are
 *    issued; it is put back to the default afterwards.)
 * 2. link cut: everything between the two nodes dropped for 30 s (nft in the first node's
 *    netns). Requests fail within their bound, no plaintext crosses the uplinks, service resumes
 *    without action (time printed), a long stream either survives (TCP retransmits) or ends
 *    without hanging — what arrived is in order, with no gap.
 * 3. xDS stream dropped mid-push: 150 Services applied at once while every agent↔controller
 *    connection is killed again and again; the agents keep serving their last state (no request
 *    fails), reconnect, and converge: their Services equal the API server's, the name → version
 *    of every resource they hold equals what the controller serves (/debug/xds `resources` vs
 *    /config_dump `xdsVersions`), and /debug/syncz says SYNCED with the counts they hold.
 * 4. 410 Gone: the API server keeps 300 writes (sandbox eventLogSize); the controller's API
 *    connections are cut while 400 ConfigMaps and a DENY policy are written, so every resumed
 *    watch is answered 410: the controller logs the expiry and re-lists, the agents converge and
 *    the DENY is enforced.
 * Figures are printed with console.log (README "Reliability").
 */
import { spawn, spawnSync, execFileSync, type SpawnSyncReturns } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { parsePcap } from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';
import { failedProbes, probeLoop } from '../helpers/sandbox-probes.js';
import { openStreamReportingEnd, STREAM_SCRIPT } from '../helpers/sandbox-stream.js';

const guard = requireRoot('sandbox network and state faults', { tools: ['ip', 'nsenter', 'nft', 'ss', 'kubectl', 'curl', 'busybox', 'tcpdump', 'openssl', 'unshare'] });
const BACKEND = 'http://backend.demo/';
const BACKEND_IDENTITY = 'spiffe://cluster.local/ns/demo/sa/backend-sa';
const CLIENT_PRINCIPAL = 'cluster.local/ns/demo/sa/client-sa';
/** The controller's CA and xDS port (one gRPC server, as istiod's 15012). */
const CONTROLLER_PORT = 15012;
const SHORT_TTL_SECONDS = 60;
const EVENT_LOG_SIZE = 300;
const CUT_MS = 30_000;
const BULK_SERVICES = 150;
/** Application ports on the wire in plaintext (Service 80, hello-app 8080, the stream 9000). */
const PLAIN_FILTER = ['tcp', 'and', '(port', '80', 'or', 'port', '8080', 'or', 'port', '9000)'];

interface LogRecord {
  pod: string;
  time?: number;
  msg?: string;
  [key: string]: unknown;
}

interface CertificateDump {
  identity: string;
  state: string;
  notAfter?: string;
  failures?: number;
  lastError?: string;
}

interface ConfigDump {
  services: Array<{ name: string; namespace: string }>;
  policies: Array<{ name: string; namespace: string }>;
  certificates: CertificateDump[];
  xds?: { connected?: boolean; resources?: Record<string, number>; types?: Record<string, { resources: number }> };
  /** typeUrl → name → version of the Address and Authorization resources held. */
  xdsVersions?: Record<string, Record<string, string>>;
}

interface SyncEntry {
  node: string;
  role: string;
  status: string;
  types: Record<string, { resources: number; sent?: string; acked?: string; status: string }>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!guard.run)('network and state faults (privileged sandbox, issue #12)', () => {
  const name = `fn${Math.random().toString(16).slice(2, 5)}`;
  const nodes = [`${name}-worker`, `${name}-worker2`] as const;
  let dir = '';
  const cli = sandboxCli(() => dir);
  const { env, kubectlOk, apply, amesh, exec } = cli;
  const uplinks = new Map<string, string>();
  const uplinkIps = new Map<string, string>();
  const podCidrs = new Map<string, string>();
  let streamIp = '';
  let backendIp = '';

  const nsenterNode = (node: string, ...cmd: string[]): SpawnSyncReturns<string> => spawnSync('nsenter', [`--net=/run/netns/${node}`, ...cmd], { encoding: 'utf8', timeout: 20_000 });
  const nft = (netns: string, script: string): void => {
    const r = spawnSync('nsenter', [`--net=${netns}`, 'nft', '-f', '-'], { input: script, encoding: 'utf8' });
    expect(r.status, `nft in ${netns}: ${r.stderr}\n${script}`).toBe(0);
  };
  /** Deletes table `table` in `netns` if it is there (finally blocks: never throws). */
  const nftDelete = (netns: string, table: string): void => {
    spawnSync('nsenter', [`--net=${netns}`, 'nft', 'delete', 'table', 'inet', table], { encoding: 'utf8' });
  };
  /** Kills established TCP connections in `netns` matching an `ss` filter; returns how many. */
  const ssKill = (netns: string, ...filter: string[]): number => {
    const r = spawnSync('nsenter', [`--net=${netns}`, 'ss', '-K', '-tnH', 'state', 'established', ...filter], { encoding: 'utf8' });
    return r.stdout.split('\n').filter((l) => l.trim()).length;
  };
  const agentGet = (node: string, port: number, path: string): string => {
    try {
      return execFileSync('nsenter', [`--net=/run/netns/${node}`, 'curl', '-s', '--max-time', '2', `http://127.0.0.1:${port}${path}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
    } catch {
      return '';
    }
  };
  const configDump = (node: string): ConfigDump | undefined => {
    const text = agentGet(node, 15000, '/config_dump');
    try {
      return text ? (JSON.parse(text) as ConfigDump) : undefined;
    } catch {
      return undefined;
    }
  };
  const controllerPod = (): { name: string; ip: string; node: string } => {
    const [podName = '', ip = '', node = ''] = kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'app=amesh-controller', '--field-selector=status.phase=Running', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{"\\n"}{end}')
      .trim()
      .split('\n')
      .at(-1)
      ?.split(' ') ?? [];
    return { name: podName, ip, node };
  };
  /** GET on the controller's monitoring port (15014; 15021 for /debug/xds) from a node netns. */
  const controllerGet = (path: string, port = 15014): string => {
    const { ip } = controllerPod();
    for (const node of nodes) {
      try {
        return execFileSync('nsenter', [`--net=/run/netns/${node}`, 'curl', '-s', '--max-time', '2', `http://${ip}:${port}${path}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
      } catch {
        // the other node may see it
      }
    }
    return '';
  };
  const agentPods = (): Array<{ name: string; node: string }> =>
    kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'app=amesh-node', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{"\\n"}{end}')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [podName = '', node = ''] = l.split(' ');
        return { name: podName, node };
      });
  const podRecords = (ref: string): LogRecord[] =>
    (amesh('sandbox', 'logs', '--dir', dir, ref).stdout ?? '').split('\n').flatMap((line) => {
      const start = line.indexOf('{');
      if (start < 0) return [];
      try {
        return [{ ...(JSON.parse(line.slice(start)) as Omit<LogRecord, 'pod'>), pod: ref }];
      } catch {
        return [];
      }
    });
  const agentRecords = (): LogRecord[] => agentPods().flatMap((p) => podRecords(`amesh-system/${p.name}`));
  const curlOk = (): boolean => exec('demo/client', 'curl', '-s', '-S', '--max-time', '3', BACKEND).stdout.includes('Hello, world!');

  /**
   * tcpdump of the plaintext application ports on both uplinks; stop() gives packet counts per
   * node, and prints the first packets when there are any (what crossed, and when).
   */
  const startPlainCaptures = async (tag: string): Promise<{ stop: () => Promise<Record<string, number>> }> => {
    const captures = [...uplinks].map(([node, iface]) => {
      const file = join(dir, `${tag}-${node}.pcap`);
      const child = spawn('nsenter', [`--net=/run/netns/${node}`, 'tcpdump', '-i', iface, '-w', file, '-U', '--immediate-mode', '-n', '-s', '96', '-Z', 'root', ...PLAIN_FILTER], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      return { node, file, child, stderr: () => stderr };
    });
    await eventually(() => expect(captures.every((c) => c.stderr().includes('listening on'))).toBe(true), { timeoutMs: 15_000, intervalMs: 100, description: 'tcpdump listening on both uplinks' });
    return {
      stop: async () => {
        const counts: Record<string, number> = {};
        for (const c of captures) {
          c.child.kill('SIGINT');
          if (c.child.exitCode === null) await new Promise((r) => c.child.once('exit', r));
          const packets = existsSync(c.file) ? parsePcap(readFileSync(c.file)).tcp : undefined;
          counts[c.node] = packets?.length ?? -1;
          if (packets?.length) {
            const shown = packets.slice(0, 10).map((p) => `${p.src}:${p.sport} > ${p.dst}:${p.dport} flags 0x${p.flags.toString(16)} ${JSON.stringify(p.payload.toString('latin1').slice(0, 60))}`);
            console.log(`plaintext on ${c.node}'s uplink (${tag}, ${packets.length} packets, ${c.file}):\n  ${shown.join('\n  ')}`);
          }
        }
        return counts;
      },
    };
  };

  /** The agents' Services and resource counts against the API server's and the controller's view. */
  const convergence = (): { ok: boolean; detail: string } => {
    const apiServices = kubectlOk('get', 'svc', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}')
      .trim()
      .split('\n')
      .filter(Boolean)
      .sort();
    const syncz = JSON.parse(controllerGet('/debug/syncz') || '[]') as SyncEntry[];
    // What the controller serves node agents, name → version per type: each agent must hold exactly that.
    const served = (JSON.parse(controllerGet('/debug/xds', 15021) || '{}') as { resources?: Record<string, Record<string, string>> }).resources ?? {};
    const servedText = JSON.stringify(served);
    const problems: string[] = [];
    for (const node of nodes) {
      const dump = configDump(node);
      if (!dump) {
        problems.push(`${node}: no /config_dump`);
        continue;
      }
      const services = dump.services.map((s) => `${s.namespace}/${s.name}`).sort();
      if (services.join(',') !== apiServices.join(',')) problems.push(`${node}: ${services.length} Services, the API server has ${apiServices.length}`);
      const held = dump.xdsVersions ?? {};
      if (JSON.stringify(held) !== servedText) {
        const diff = Object.entries(served).map(([typeUrl, names]) => {
          const mine = held[typeUrl] ?? {};
          const differing = Object.keys({ ...names, ...mine }).filter((n) => names[n] !== mine[n]);
          return `${typeUrl.split('.').at(-1)}: ${differing.length} names differ (${differing.slice(0, 3).join(', ')})`;
        });
        problems.push(`${node}: versions differ from the controller's: ${diff.join('; ')}`);
      }
      // The newest stream of the node's agent (syncz sorts a node's streams by connection time).
      const streams = syncz.filter((s) => s.node === node && s.role === 'node-agent');
      if (streams.length > 1) problems.push(`${node}: ${streams.length} streams in the controller's /debug/syncz`);
      const entry = streams.at(-1);
      if (!entry) {
        problems.push(`${node}: not in the controller's /debug/syncz`);
        continue;
      }
      if (entry.status !== 'SYNCED') problems.push(`${node}: controller says ${entry.status}`);
      for (const [typeUrl, t] of Object.entries(entry.types)) {
        const held = dump.xds?.types?.[typeUrl]?.resources;
        if (held !== t.resources) problems.push(`${node}: ${typeUrl.split('.').at(-1)} agent holds ${held}, controller counts ${t.resources}`);
      }
    }
    const versions = Object.values(served).reduce((n, names) => n + Object.keys(names).length, 0);
    if (versions === 0) problems.push("no resources in the controller's /debug/xds");
    return { ok: problems.length === 0, detail: problems.join('; ') || `${apiServices.length} Services on both agents, ${versions} resource versions equal to the controller's, SYNCED` };
  };

  /** For a failure message: each agent's xDS status and its last xDS log lines. */
  const xdsDiagnosis = (): string =>
    agentPods()
      .map((p) => {
        const lines = podRecords(`amesh-system/${p.name}`)
          .filter((r) => /xds|ADS|mesh state/i.test(String(r.msg)))
          .slice(-8)
          .map((r) => JSON.stringify(r).slice(0, 300));
        return `${p.node}: ${JSON.stringify(configDump(p.node)?.xds ?? {}).slice(0, 800)}\n${lines.join('\n')}`;
      })
      .join('\n') + `\ncontroller syncz: ${controllerGet('/debug/syncz').slice(0, 3000)}`;
  const converged = async (description: string, timeoutMs: number): Promise<string> => {
    try {
      return await eventually(
        () => {
          const c = convergence();
          expect(c.ok, c.detail).toBe(true);
          return c.detail;
        },
        { timeoutMs, intervalMs: 250, description },
      );
    } catch (err) {
      console.log(`not converged (${description}):\n${xdsDiagnosis()}`);
      throw err;
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-faults-net-test-'));
    await sandboxUp({ dir, name, nodes: 2, eventLogSize: EVENT_LOG_SIZE });
    // 60 s workload certificates from the start (case 1); agents renew at half of the lifetime.
    kubectlOk('set', 'env', 'deploy/amesh-controller', '-n', 'amesh-system', `AMESH_CERT_MAX_TTL_SECONDS=${SHORT_TTL_SECONDS}`, `AMESH_CERT_DEFAULT_TTL_SECONDS=${SHORT_TTL_SECONDS}`);
    kubectlOk('rollout', 'status', 'deploy/amesh-controller', '-n', 'amesh-system', '--timeout=90s');
    const script = join(dir, 'stream.sh');
    await writeFile(script, STREAM_SCRIPT);
    await chmod(script, 0o755);
    apply(
      [
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: demo, labels: {istio.io/dataplane-mode: ambient}}',
        'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: backend-sa, namespace: demo}',
        'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: client-sa, namespace: demo}',
        `apiVersion: v1\nkind: Pod\nmetadata: {name: backend, namespace: demo, labels: {app: backend}}\nspec: {nodeName: ${nodes[1]}, serviceAccountName: backend-sa, containers: [{name: b, image: "gcr.io/google-samples/hello-app:1.0", ports: [{containerPort: 8080}]}]}`,
        'apiVersion: v1\nkind: Service\nmetadata: {name: backend, namespace: demo}\nspec: {selector: {app: backend}, ports: [{port: 80, targetPort: 8080}]}',
        `apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: demo}\nspec: {nodeName: ${nodes[0]}, serviceAccountName: client-sa, containers: [{name: c, image: "curlimages/curl:8.10.1", command: [sleep, "3600"]}]}`,
        `apiVersion: v1\nkind: Pod\nmetadata: {name: stream, namespace: demo, labels: {app: stream}}\nspec: {nodeName: ${nodes[1]}, serviceAccountName: backend-sa, containers: [{name: s, image: busybox, command: [busybox, nc, -ll, -p, "9000", -e, ${script}], ports: [{containerPort: 9000}]}]}`,
        'apiVersion: v1\nkind: Service\nmetadata: {name: stream, namespace: demo}\nspec: {selector: {app: stream}, ports: [{port: 9000}]}',
        `apiVersion: v1\nkind: Pod\nmetadata: {name: nc-client, namespace: demo}\nspec: {nodeName: ${nodes[0]}, serviceAccountName: client-sa, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}`,
      ].join('\n---\n'),
    );
    await eventually(
      () => {
        const phases = kubectlOk('get', 'pods', '-n', 'demo', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}');
        expect(phases.trim().split(' ').sort()).toEqual(['backend=Running', 'client=Running', 'nc-client=Running', 'stream=Running']);
        expect(curlOk()).toBe(true);
      },
      { timeoutMs: 120_000, intervalMs: 1000, description: 'demo pods running and the backend answering through the mesh' },
    );
    streamIp = kubectlOk('get', 'svc', '-n', 'demo', 'stream', '-o', 'jsonpath={.spec.clusterIP}').trim();
    backendIp = kubectlOk('get', 'pod', '-n', 'demo', 'backend', '-o', 'jsonpath={.status.podIP}').trim();
    for (const node of nodes) {
      const ip = kubectlOk('get', 'node', node, '-o', 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}').trim();
      const links = JSON.parse(nsenterNode(node, 'ip', '-j', '-4', 'addr', 'show').stdout) as Array<{ ifname: string; addr_info?: Array<{ local: string }> }>;
      const iface = links.find((l) => l.addr_info?.some((a) => a.local === ip))?.ifname;
      expect(iface, `uplink of ${node} (${ip})`).toBeDefined();
      uplinks.set(node, iface ?? '');
      uplinkIps.set(node, ip);
      podCidrs.set(node, kubectlOk('get', 'node', node, '-o', 'jsonpath={.spec.podCIDR}').trim());
    }
  }, 300_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
  }, 120_000);

  it('certificate expiry: with the CA unreachable the expired certificate is never presented, requests fail cleanly, no plaintext; renewal resumes by itself', async () => {
    const serverNode = nodes[1];
    const netns = `/run/netns/${serverNode}`;
    const backendCert = (): CertificateDump | undefined => configDump(serverNode)?.certificates.find((c) => c.identity === BACKEND_IDENTITY);
    await eventually(
      () => expect(backendCert()?.state).toBe('Available'),
      { timeoutMs: 30_000, intervalMs: 500, description: `the backend's certificate on ${serverNode}` },
    );
    const captures = await startPlainCaptures('cert');
    const stop = join(dir, 'stop-cert');
    const loop = probeLoop(dir, env(), 'demo/client', BACKEND, { seconds: 180, stopFile: stop, gapS: 0.25 });
    await loop.started;
    let cutAt = 0;
    let expiredAt = 0;
    let notAfter = 0;
    let restoredAt = 0;
    let presented = '';
    try {
      nft(netns, `table inet amfault-ca {\n chain ca_out { type filter hook output priority 0; policy accept; tcp dport ${CONTROLLER_PORT} reject with tcp reset; }\n}\n`);
      cutAt = Date.now();
      const killed = ssKill(netns, 'dport', '=', String(CONTROLLER_PORT));
      // Until the certificate the agent held when the CA went away has expired (60 s at most).
      const expired = await eventually(
        () => {
          const cert = backendCert();
          expect(cert?.state, JSON.stringify(cert)).not.toBe('Available');
          return cert as CertificateDump;
        },
        { timeoutMs: (SHORT_TTL_SECONDS + 20) * 1000, intervalMs: 250, description: `the backend's certificate on ${serverNode} to expire` },
      );
      expiredAt = Date.now();
      notAfter = Date.parse(expired.notAfter ?? '');
      console.log(`CA cut from ${serverNode} (${killed} connections killed); the backend's certificate (notAfter ${expired.notAfter}) expired ${expiredAt - cutAt} ms later; state now: ${expired.state}, ${expired.failures} failed renewals, last error: ${expired.lastError}`);
      // What the backend's HBONE port presents now, from the client's node.
      const sclient = spawnSync('nsenter', [`--net=/run/netns/${nodes[0]}`, 'openssl', 's_client', '-connect', `${backendIp}:15008`, '-alpn', 'h2', '-showcerts'], { input: '', encoding: 'utf8', timeout: 15_000 });
      presented = `${sclient.stdout}\n${sclient.stderr}`;
      await sleep(8_000);
    } finally {
      nftDelete(netns, 'amfault-ca');
      restoredAt = Date.now();
    }
    const renewed = await eventually(
      () => {
        const cert = backendCert();
        expect(cert?.state).toBe('Available');
        expect(Date.parse(cert?.notAfter ?? '')).toBeGreaterThan(notAfter);
        return cert as CertificateDump;
      },
      { timeoutMs: 180_000, intervalMs: 250, description: 'the backend certificate renewed after the CA came back (backoff up to 150 s)' },
    );
    const renewedAt = Date.now();
    const servedAgain = await eventually(
      () => {
        expect(curlOk()).toBe(true);
        return Date.now();
      },
      { timeoutMs: 30_000, intervalMs: 250, description: 'the backend served again' },
    );
    await sleep(3_000);
    await writeFile(stop, '');
    const { probes } = await loop.done;
    const counts = await captures.stop();
    const expiredWindow = probes.filter((p) => p.at >= notAfter + 1000 && p.at + p.ms < restoredAt);
    const servedWhileExpired = expiredWindow.filter((p) => p.code === '200');
    const firstServed = probes.find((p) => p.at >= restoredAt && p.code === '200');
    // Once the certificate is renewed every request must be served again.
    const afterRenewal = probes.filter((p) => p.at >= renewedAt + 1000);
    const failedUntilRenewal = probes.filter((p) => p.at >= notAfter && p.at < renewedAt && p.code !== '200').length;
    const records = agentRecords().filter((r) => (r.time ?? 0) >= notAfter);
    const reasons = records.filter((r) => JSON.stringify(r).includes(`no valid certificate for ${BACKEND_IDENTITY}`));
    const peerCerts = [...presented.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
    console.log(
      `certificate expiry: ${expiredWindow.length} requests while expired, ${servedWhileExpired.length} served, slowest ${Math.max(0, ...expiredWindow.map((p) => p.ms))} ms (curl exits ${[...new Set(expiredWindow.map((p) => p.exit))].join('/')}); ` +
        `openssl s_client to the backend's 15008 while expired: ${peerCerts.length ? `presented ${peerCerts.map((c) => `${c.subjectAltName} until ${c.validTo}`).join(', ')}` : 'no certificate presented'}; ` +
        `CA back after ${restoredAt - cutAt} ms; renewed (notAfter ${renewed.notAfter}) ${renewedAt - restoredAt} ms after, first request served after the CA came back: ${firstServed ? firstServed.at + firstServed.ms - restoredAt : servedAgain - restoredAt} ms; ` +
        `${failedUntilRenewal} requests failed from notAfter until the renewal; ${afterRenewal.length} requests from 1 s after the renewal, ${failedProbes(afterRenewal, renewedAt).length} failed; plaintext packets on the uplinks ${JSON.stringify(counts)}; ` +
        `agent log lines naming the missing certificate: ${reasons.length} (e.g. ${JSON.stringify(reasons[0] ?? {}).slice(0, 300)})`,
    );
    expect(expiredWindow.length, 'requests while the certificate was expired').toBeGreaterThanOrEqual(5);
    // No new handshake succeeds (s_client below), and a connection pooled before the expiry is not reused either:
    // the client's pool retires it (src/hbone/pool.ts) and the backend's agent refuses CONNECTs on it (src/hbone/server.ts).
    expect(servedWhileExpired.map((p) => `${new Date(p.at).toISOString()} ${p.code}`), 'requests served after the backend certificate expired').toEqual([]);
    expect(failedUntilRenewal, 'requests refused while the backend had no valid certificate').toBeGreaterThan(0);
    expect(Math.max(...expiredWindow.map((p) => p.ms)), 'each failed request ends within its bound').toBeLessThan(4_000);
    expect(peerCerts.map((c) => `${c.subjectAltName} until ${c.validTo}`), 'certificates the backend presented to a new handshake while its own was expired').toEqual([]);
    expect(presented, 'openssl reached the backend HBONE port').toMatch(/CONNECTED|no peer certificate|handshake failure|alert/i);
    expect(reasons.length, 'an agent log line naming the missing certificate').toBeGreaterThan(0);
    for (const node of nodes) expect(counts[node], `plaintext packets on ${node}'s uplink`).toBe(0);
    expect(failedProbes(afterRenewal, renewedAt), 'requests after the renewal').toEqual([]);
    expect(afterRenewal.length).toBeGreaterThanOrEqual(3);

    // Back to 24 h certificates for the other cases (the next renewal, ≤ 22.5 s away, gets one).
    kubectlOk('set', 'env', 'deploy/amesh-controller', '-n', 'amesh-system', 'AMESH_CERT_MAX_TTL_SECONDS-', 'AMESH_CERT_DEFAULT_TTL_SECONDS-');
    kubectlOk('rollout', 'status', 'deploy/amesh-controller', '-n', 'amesh-system', '--timeout=90s');
    await eventually(
      () => {
        for (const node of nodes) {
          const certs = configDump(node)?.certificates.filter((c) => c.identity.includes('/ns/demo/')) ?? [];
          expect(certs.length, node).toBeGreaterThan(0);
          for (const c of certs) expect(Date.parse(c.notAfter ?? '') - Date.now(), `${node} ${c.identity} ${c.state}`).toBeGreaterThan(3_600_000);
        }
      },
      { timeoutMs: 90_000, intervalMs: 1000, description: 'long certificates again on both agents' },
    );
  }, 420_000);

  it('link cut for 30 s: requests fail within their bound, no plaintext; service resumes by itself; the long stream survives or is reset', async () => {
    const netns = `/run/netns/${nodes[0]}`;
    const peers = [uplinkIps.get(nodes[1]), podCidrs.get(nodes[1])].filter(Boolean).join(', ');
    const captures = await startPlainCaptures('link');
    const lines = 450; // 45 s of stream, across the cut
    const streamStart = Date.now();
    const stream = openStreamReportingEnd(dir, 'demo/nc-client', streamIp, 9000, lines);
    const stop = join(dir, 'stop-link');
    const loop = probeLoop(dir, env(), 'demo/client', BACKEND, { seconds: 150, stopFile: stop, gapS: 0.15 });
    await loop.started;
    await sleep(3_000);
    let cutAt = 0;
    let restoredAt = 0;
    try {
      nft(
        netns,
        `table inet amfault-link {\n set peer { type ipv4_addr; flags interval; elements = { ${peers} } }\n` +
          ` chain cut_in { type filter hook input priority 0; policy accept; ip saddr @peer drop; ip daddr @peer drop; }\n` +
          ` chain cut_forward { type filter hook forward priority 0; policy accept; ip saddr @peer drop; ip daddr @peer drop; }\n` +
          ` chain cut_out { type filter hook output priority 0; policy accept; ip saddr @peer drop; ip daddr @peer drop; }\n}\n`,
      );
      cutAt = Date.now();
      await sleep(CUT_MS);
    } finally {
      nftDelete(netns, 'amfault-link');
      restoredAt = Date.now();
    }
    const served = await eventually(
      () => {
        expect(curlOk()).toBe(true);
        return Date.now();
      },
      { timeoutMs: 90_000, intervalMs: 250, description: 'requests served again after the link came back' },
    );
    await sleep(5_000);
    await writeFile(stop, '');
    const { probes } = await loop.done;
    const { out, ending } = await Promise.race([stream, sleep(120_000).then(() => ({ out: 'TIMEOUT', ending: undefined }))]);
    const counts = await captures.stop();
    const during = probes.filter((p) => p.at >= cutAt + 500 && p.at + p.ms < restoredAt);
    const servedDuring = during.filter((p) => p.code === '200');
    const firstServed = probes.find((p) => p.at >= restoredAt && p.code === '200');
    const recoveryMs = (firstServed ? firstServed.at + firstServed.ms : served) - restoredAt;
    const settled = firstServed ? probes.filter((p) => p.at >= firstServed.at + 2000) : [];
    const got = out.trim() ? out.trim().split('\n') : [];
    const inOrder = got.every((l, i) => l === `line ${i + 1}`);
    console.log(
      `link cut ${restoredAt - cutAt} ms: ${during.length} requests during it, ${servedDuring.length} served, slowest ${Math.max(0, ...during.map((p) => p.ms))} ms (curl exits ${[...new Set(during.map((p) => p.exit))].join('/')}); ` +
        `first request served ${recoveryMs} ms after the link came back; ${settled.length} requests from 2 s after that, ${failedProbes(settled, restoredAt).length} failed; ` +
        `long stream: ${got.length}/${lines} lines in order=${inOrder}, ended by ${ending ?? 'nothing seen'}, ${Date.now() - streamStart} ms after it started (${got.length === lines ? 'survived the cut' : 'ended early'}); plaintext packets on the uplinks ${JSON.stringify(counts)}`,
    );
    expect(during.length, 'requests during the cut (each waits out curl’s 3 s bound)').toBeGreaterThanOrEqual(5);
    expect(servedDuring.map((p) => p.at - cutAt), 'requests served across a cut link').toEqual([]);
    expect(Math.max(...during.map((p) => p.ms)), 'each failed request ends within its bound').toBeLessThan(4_000);
    for (const node of nodes) expect(counts[node], `plaintext packets on ${node}'s uplink`).toBe(0);
    expect(recoveryMs, 'service back after the link returned (ms)').toBeLessThan(60_000);
    expect(failedProbes(settled, restoredAt), 'requests once service was back').toEqual([]);
    expect(settled.length).toBeGreaterThanOrEqual(10);
    expect(out, 'the stream finished or ended (no hang)').not.toBe('TIMEOUT');
    expect(inOrder, `stream lines in order, none lost before the end: ${got.slice(-3).join(' | ')}`).toBe(true);
    // A stream cut short must not look complete to an app without framing: reset, never a clean FIN.
    if (got.length < lines) expect(ending, `how the cut-short stream ended (${got.length}/${lines} lines)`).not.toBe('fin');
    else expect(ending, 'how the whole stream ended').toBe('fin');
  }, 300_000);

  it('xDS stream dropped mid-push: agents keep serving their last state, reconnect, and converge to the controller and the API server', async () => {
    await converged('converged before the fault', 30_000);
    const stop = join(dir, 'stop-xds');
    const loop = probeLoop(dir, env(), 'demo/client', BACKEND, { seconds: 120, stopFile: stop, gapS: 0.2 });
    await loop.started;
    const bulk = ['apiVersion: v1\nkind: Namespace\nmetadata: {name: bulk}'];
    for (let i = 0; i < BULK_SERVICES; i++) bulk.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${i}, namespace: bulk}\nspec: {selector: {app: none-${i}}, ports: [{port: ${1000 + i}}]}`);
    const applyStart = Date.now();
    const applying = new Promise<number | null>((resolve) => {
      const child = spawn('kubectl', ['create', '-f', '-'], { env: env(), stdio: ['pipe', 'ignore', 'pipe'] });
      child.stdin.end(bulk.join('\n---\n'));
      child.once('exit', resolve);
    });
    // Kill every agent↔controller connection while the Services arrive (and so while their pushes are in flight).
    let kills = 0;
    let applied = false;
    void applying.then(() => (applied = true));
    let lastKill = Date.now();
    while (!applied || Date.now() - applyStart < 3_000) {
      for (const node of nodes) kills += ssKill(`/run/netns/${node}`, 'dport', '=', String(CONTROLLER_PORT));
      lastKill = Date.now();
      if (Date.now() - applyStart > 60_000) break;
      await sleep(400);
    }
    expect(await applying, 'kubectl create of the bulk Services').toBe(0);
    const applyMs = Date.now() - applyStart;
    const detail = await converged('agents converged to the controller after the xDS drops', 60_000);
    const convergedMs = Date.now() - lastKill;
    await writeFile(stop, '');
    const { probes } = await loop.done;
    const failed = failedProbes(probes, applyStart);
    const reconnects = nodes.map((n) => `${n}: ${JSON.stringify(configDump(n)?.xds?.resources ?? {})}`);
    console.log(
      `xDS dropped mid-push: ${BULK_SERVICES} Services created in ${applyMs} ms while ${kills} agent↔controller connections were killed (every 400 ms); converged ${convergedMs} ms after the last kill (${detail}); ` +
        `${probes.length} requests meanwhile, ${failed.length} failed${failed.length ? ` (${failed.join('; ')})` : ''}; agent resources ${reconnects.join(', ')}`,
    );
    expect(kills, 'connections killed').toBeGreaterThanOrEqual(2);
    expect(failed, 'requests while the agents were cut from the controller (they keep their last state)').toEqual([]);
    kubectlOk('delete', 'svc', '-n', 'bulk', '--all', '--wait=false');
    await converged('converged after removing the bulk Services', 60_000);
  }, 240_000);

  it('410 Gone: the controller re-lists after its watches expire, the agents converge, and a DENY written meanwhile is enforced', async () => {
    const controller = controllerPod();
    const pidRecords = await Promise.all((await readdir(join(dir, 'kubelet'))).filter((f) => /^pids-.*\.json$/.test(f)).map((f) => readFile(join(dir, 'kubelet', f), 'utf8')));
    const pid = pidRecords
      .flatMap((text) => [...text.matchAll(/\{[^{}]*"pod":\s*"amesh-system\/([^"]+)"[^{}]*\}/g)])
      .map((m) => JSON.parse(m[0]) as { pid: number; pod: string; container: string })
      .filter((r) => r.pod === `amesh-system/${controller.name}` && r.container === 'amesh-controller')
      .at(-1)?.pid;
    expect(pid, `the controller container ${controller.name} in the kubelet records`).toBeDefined();
    const netns = `/proc/${pid}/ns/net`;
    const apiServer = kubectlOk('get', 'svc', '-n', 'default', 'kubernetes', '-o', 'jsonpath={.spec.clusterIP}').trim();
    const before = Date.now();
    kubectlOk('create', 'namespace', 'churn');
    let cutAt = 0;
    let restoredAt = 0;
    let killed = 0;
    let written = 0;
    try {
      nft(netns, `table inet amfault-api {\n chain api_out { type filter hook output priority 0; policy accept; ip daddr ${apiServer} tcp dport 443 reject with tcp reset; }\n}\n`);
      cutAt = Date.now();
      killed = ssKill(netns, 'dst', apiServer, 'dport', '=', '443');
      apply(
        `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-client, namespace: demo}\nspec: {action: DENY, selector: {matchLabels: {app: backend}}, rules: [{from: [{source: {principals: [${CLIENT_PRINCIPAL}]}}]}]}`,
      );
      // More writes than the API server remembers: every watch the controller resumes is now too old.
      const maps: string[] = [];
      for (let i = 0; i < EVENT_LOG_SIZE + 100; i++) maps.push(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-${i}, namespace: churn}\ndata: {i: "${i}"}`);
      const r = spawnSync('kubectl', ['create', '-f', '-'], { input: maps.join('\n---\n'), encoding: 'utf8', env: env(), timeout: 120_000, maxBuffer: 16 << 20 });
      expect(r.status, r.stderr).toBe(0);
      written = maps.length;
    } finally {
      nftDelete(netns, 'amfault-api');
      restoredAt = Date.now();
    }
    let relistedAt = 0;
    const expiredLines = await eventually(
      () => {
        const lines = podRecords(`amesh-system/${controller.name}`).filter((r) => (r.time ?? 0) >= cutAt && String(r.msg).startsWith('watch expired (410 Gone'));
        expect(lines.map((l) => l.resource)).toContain('authorizationpolicies.security.istio.io/v1');
        relistedAt = Math.max(...lines.map((l) => l.time ?? 0));
        return lines;
      },
      { timeoutMs: 60_000, intervalMs: 500, description: "the controller's watches answered 410 and re-listed" },
    );
    let policyAt = 0;
    await eventually(
      () => {
        for (const node of nodes) expect(configDump(node)?.policies.map((p) => `${p.namespace}/${p.name}`), node).toContain('demo/deny-client');
        policyAt = Date.now();
      },
      { timeoutMs: 60_000, intervalMs: 250, description: 'the DENY in both agents' },
    );
    await converged('agents converged after the re-list', 30_000);
    await eventually(() => expect(curlOk()).toBe(false), { timeoutMs: 20_000, intervalMs: 250, description: 'the DENY enforced' });
    const enforcedAt = Date.now();
    const failures = podRecords(`amesh-system/${controller.name}`).filter((r) => (r.time ?? 0) >= cutAt && r.msg === 'informer failed; restarting').length;
    console.log(
      `410 Gone: controller cut from the API server for ${restoredAt - cutAt} ms (${killed} connections killed) while ${written} ConfigMaps and a DENY were written (event log ${EVENT_LOG_SIZE}); ` +
        `${expiredLines.length} watches answered 410 and re-listed (${[...new Set(expiredLines.map((l) => String(l.resource)))].length} resources), ${failures} restart attempts logged; ` +
        `last re-list ${relistedAt - restoredAt} ms after the API came back; the DENY in both agents ${policyAt - restoredAt} ms after, enforced by ${enforcedAt - restoredAt} ms (setup took ${cutAt - before} ms)`,
    );
    kubectlOk('delete', 'authorizationpolicy', '-n', 'demo', 'deny-client');
    await eventually(() => expect(curlOk()).toBe(true), { timeoutMs: 20_000, intervalMs: 300, description: 'allowed again' });
  }, 240_000);
});
