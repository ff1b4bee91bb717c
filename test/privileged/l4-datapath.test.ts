/**
 * The L4 data path end to end, through real `amesh node-agent` processes (one per node
 * namespace, entered with nsenter as on a node) on the sandbox topology
 * (src/sandbox/network/topology.ts):
 *
 *   node1: a (enrolled, sa-a), c (enrolled, sa-c), u1 (not enrolled)
 *   node2: b (enrolled, sa-b, backs service b 10.96.0.20:80 → 8080), u2 (not enrolled)
 *   PeerAuthentication STRICT (a DENY without principal) for namespace demo.
 *
 * The suite runs once per capture mode (eBPF, then the nftables TPROXY fallback).
 * Tests run in file order and share the agents; the ones that change shared state (policy,
 * agent restart, uninstall) restore it or come last. On a failure every agent's log tail is
 * printed and the work directory (configs, certificates, logs, captures) is kept and named.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTopology, type SpawnedProcess, type Topology } from '../../src/sandbox/network/topology.js';
import { TRUST_DOMAIN, TWO_NODES, createAgentWorkDir, destroyAgentTestbed, localConfig, pinRootFor } from '../helpers/agent-testbed.js';
import {
  AgentProcess,
  amesh,
  runPodClient,
  startCapture,
  startPodServer,
  uninstallAgent,
  writeFileAtomic,
  type AgentOptions,
  type ClientResult,
  type Pcap,
  type PodServer,
} from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('l4 datapath', { tools: ['ip', 'nsenter', 'sysctl', 'tc', 'nft', 'tcpdump', 'openssl'] });

const HBONE_PORT = 15008;
const CAPTURE_MARK = '0x111';
const VIP = '10.96.0.20';
const IP = { a: '10.244.1.2', c: '10.244.1.3', u1: '10.244.1.4', b: '10.244.2.2', u2: '10.244.2.3' } as const;
/** Pod server ports: whoami on 8080 is service b's target port. */
const PORT = { whoami: 8080, sink: 9000, echo: 9001, plain: 7000 } as const;
const NODES = ['node1', 'node2'] as const;
type NodeName = (typeof NODES)[number];

const workload = (name: string, node: NodeName, ip: string, enrolled: boolean, extra: Record<string, unknown> = {}) => ({
  uid: `${enrolled ? 'demo' : 'legacy'}/${name}`,
  name,
  namespace: enrolled ? 'demo' : 'legacy',
  serviceAccount: enrolled ? `sa-${name}` : 'default',
  node,
  addresses: [ip],
  tunnelProtocol: enrolled ? 'HBONE' : 'NONE',
  ...extra,
});

const WORKLOADS = [
  workload('a', 'node1', IP.a, true),
  workload('c', 'node1', IP.c, true),
  workload('u1', 'node1', IP.u1, false),
  workload('b', 'node2', IP.b, true, { services: { 'demo/b.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: PORT.whoami }] } } }),
  workload('u2', 'node2', IP.u2, false),
];
const SERVICES = [{ name: 'b', namespace: 'demo', hostname: 'b.demo.svc.cluster.local', addresses: [VIP], ports: [{ servicePort: 80, targetPort: PORT.whoami }] }];
const STRICT = { name: 'strict', namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [{ matches: [{ notPrincipals: [{ presence: {} }] }] }] }] };

/**
 * The same properties must hold whichever way traffic is captured: eBPF (the default) and the
 * nftables TPROXY fallback the agent uses where eBPF cannot load.
 */
const CAPTURE_MODES = ['ebpf', 'nftables'] as const;

// Root only: requireRoot() fails this file when not root; it skips (printing why) only with
// AMESH_ALLOW_UNPRIVILEGED_SKIP=1, and scripts/test.sh fails if the privileged tier ran nothing.
for (const captureMode of CAPTURE_MODES) describe.skipIf(!guard.run)(`L4 datapath through real node agents (${captureMode} capture)`, () => {
  const prefix = `am-${randomBytes(2).toString('hex')}`;
  let dir: string;
  let topology: Topology | undefined;
  let failed = false;
  /** False once a test stops the agents on purpose (the last one). */
  let agentsShouldRun = true;
  const agents = new Map<NodeName, AgentProcess>();
  const agentOptions = new Map<NodeName, AgentOptions>();
  const servers: Record<string, PodServer> = {};
  const progress: string[] = [];

  const topo = (): Topology => {
    if (!topology) throw new Error('topology was not created (see beforeAll)');
    return topology;
  };
  const agent = (node: NodeName): AgentProcess => {
    const a = agents.get(node);
    if (!a) throw new Error(`agent ${node} not started`);
    return a;
  };
  const logTails = (): string => [...agents.values()].map((a) => a.logTail(30)).join('\n');
  /** Failure message: what, the observed value, and the agents' recent logs. */
  const explain = (what: string, observed: unknown): string => `${what}\nobserved: ${JSON.stringify(observed, null, 1)}\n${logTails()}`;

  const meshConfig = (node: NodeName, policies: unknown[]) => localConfig(dir, topo(), node, { workloads: WORKLOADS, services: SERVICES, policies });
  const writeConfigs = async (policies: unknown[]): Promise<void> => {
    for (const node of NODES) await writeFileAtomic(join(dir, `${node}.json`), JSON.stringify(meshConfig(node, policies), null, 2));
  };
  /** Waits until every agent serves a config with `count` policies. */
  const waitPolicies = async (count: number): Promise<void> => {
    for (const node of NODES) {
      await eventually(
        async () => {
          const dump = await agent(node).configDump();
          const policies = dump.policies as unknown[] | undefined;
          if (dump.lastConfigError) throw new Error(`lastConfigError: ${String(dump.lastConfigError)}`);
          if (policies?.length !== count) throw new Error(`${node} serves ${policies?.length} policies, want ${count}`);
        },
        { timeoutMs: 15_000, intervalMs: 250, description: `${node} to apply a config with ${count} policies` },
      );
    }
  };

  const startAgent = async (node: NodeName): Promise<Record<string, unknown>> => {
    const options = agentOptions.get(node);
    if (!options) throw new Error(`no options for ${node}`);
    const started = AgentProcess.start(topo(), options);
    agents.set(node, started);
    return started.waitReady(30_000);
  };

  const client = (pod: string, args: string[], timeoutMs = 30_000): Promise<ClientResult> => runPodClient(topo(), pod, 'client', args, timeoutMs);

  /** The agent logs one access line per connection when it ends, which may be just after the client saw the close. */
  const expectAccessLog = async (node: NodeName, destination: string): Promise<void> => {
    const found = await eventually(
      () => {
        if (!agent(node).accessLogs().some((l) => JSON.stringify(l).includes(destination))) throw new Error('not yet');
        return true;
      },
      { timeoutMs: 5_000, intervalMs: 100, description: `an access log line for ${destination} on ${node}` },
    ).catch(() => false);
    expect(found, explain(`${node} access log has a line for ${destination} (captured, not bypassed)`, agent(node).accessLogs().slice(-3))).toBe(true);
  };

  beforeAll(async () => {
    try {
      await setUp();
    } catch (err) {
      failed = true;
      console.log(`set-up failed; topology progress:\n  ${progress.join('\n  ')}\n${logTails()}`);
      throw err;
    }
  });

  const setUp = async (): Promise<void> => {
    dir = await createAgentWorkDir(prefix, 'l4');
    topology = await createTopology({
      prefix,
      nodes: [...TWO_NODES],
      pods: [
        { name: 'a', node: 'node1', ip: IP.a },
        { name: 'c', node: 'node1', ip: IP.c },
        { name: 'u1', node: 'node1', ip: IP.u1 },
        { name: 'b', node: 'node2', ip: IP.b },
        { name: 'u2', node: 'node2', ip: IP.u2 },
      ],
      log: (m) => progress.push(m),
    });
    servers.bWhoami = await startPodServer(topo(), 'b', 'whoami-server', [PORT.whoami], dir);
    servers.bSink = await startPodServer(topo(), 'b', 'sink-server', [PORT.sink], dir);
    servers.bEcho = await startPodServer(topo(), 'b', 'echo-server', [PORT.echo], dir);
    servers.cWhoami = await startPodServer(topo(), 'c', 'whoami-server', [PORT.whoami], dir);
    servers.cEcho = await startPodServer(topo(), 'c', 'echo-server', [PORT.echo], dir);
    servers.u2Echo = await startPodServer(topo(), 'u2', 'echo-server', [PORT.plain], dir);

    await writeConfigs([STRICT]);
    for (const node of NODES) {
      agentOptions.set(node, {
        node,
        configFile: join(dir, `${node}.json`),
        pinRoot: pinRootFor(prefix, node),
        logDir: dir,
        captureMode,
        drainTimeoutMs: 5_000,
      });
    }
    const ready = await Promise.all(NODES.map((node) => startAgent(node)));
    for (const [i, node] of NODES.entries()) {
      expect(ready[i], explain(`readiness of ${node}`, ready[i])).toMatchObject({ ready: true, node, captureMode });
    }
  };

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      failed = true;
      console.log(`agent logs at the failure:\n${logTails()}`);
    });
    // An agent that crashed in an earlier test (that test failed for it) is restarted, so
    // this test fails, if it does, for its own reason.
    for (const node of NODES) {
      const exit = agents.get(node)?.process.exitStatus();
      if (agentsShouldRun && exit) {
        console.log(`agent ${node} had exited (${JSON.stringify(exit)}); restarting it for the next test`);
        await startAgent(node);
      }
    }
  });

  afterEach(() => {
    if (!agentsShouldRun) return;
    const dead = NODES.filter((node) => agents.get(node)?.process.exitStatus());
    if (dead.length) throw new Error(explain(`agent(s) ${dead.join(', ')} died during this test`, dead.map((n) => agents.get(n)?.process.exitStatus())));
  });

  afterAll(async () => {
    // Processes first (by pid, via the topology), then namespaces (with their veths, tc
    // filters, ip rules and nft tables), then the pinned maps, which outlive namespaces.
    await destroyAgentTestbed({ topology, pinRoots: [...agentOptions.values()].map((o) => o.pinRoot), dir, keepDir: failed, label: 'l4 datapath' });
  });

  it('1. carries 16 MiB intact from a to b across nodes, and 200 short connections', async () => {
    const big = await client('a', ['--host', IP.b, '--port', String(PORT.sink), '--send-bytes', String(16 << 20), '--seed', prefix, '--timeout-ms', '60000'], 90_000);
    expect(big.ok, explain('16 MiB a → b:9000 with sha256 verified by the sink', big)).toBe(true);
    expect(big.sentBytes).toBe(16 << 20);
    // Captured, not passed through: node1's agent logged the connection.
    await expectAccessLog('node1', `${IP.b}:${PORT.sink}`);

    const many = await runPodClient(topo(), 'a', 'many-clients', ['--host', IP.b, '--port', String(PORT.echo), '--count', '200', '--timeout-ms', '5000', '--max-failures', '5'], 110_000);
    expect(many, explain('200 sequential echo connections a → b:9001', many)).toMatchObject({ ok: true, successes: 200, failures: 0 });
  });

  it('2. preserves the original destination, for pod IPs and for service VIPs', async () => {
    const direct = await client('a', ['--host', IP.b, '--port', String(PORT.whoami), '--expect-whoami']);
    expect(direct.ok, explain('whoami a → b:8080', direct)).toBe(true);
    expect((direct.reply as { local?: string }).local, explain('b was dialled at its own IP:port', direct)).toBe(`${IP.b}:${PORT.whoami}`);
    // Source IP preservation (AMESH_PRESERVE_SOURCE_IP, on by default): b sees pod a, not node2.
    expect((direct.reply as { remote?: string }).remote, explain('b sees the client pod a as the source', direct)).toMatch(new RegExp(`^${IP.a.replace(/\./g, '\\.')}:\\d+$`));

    const viaVip = await client('a', ['--host', VIP, '--port', '80', '--expect-whoami']);
    expect(viaVip.ok, explain(`whoami a → ${VIP}:80 (service b)`, viaVip)).toBe(true);
    expect((viaVip.reply as { local?: string }).local, explain('the VIP connection lands on b:8080', viaVip)).toBe(`${IP.b}:${PORT.whoami}`);
  });

  it('3. puts only TLS to port 15008 on the wire between the nodes', async () => {
    const capture = await startCapture(topo(), 'node1', topo().uplinkName, join(dir, 'hbone-only.pcap'), ['tcp']);
    const marker = `AMESH-PLAINTEXT-MARKER-${randomBytes(6).toString('hex')}`;
    let pcap: Pcap;
    let fromA: ClientResult;
    let fromC: ClientResult;
    try {
      fromA = await client('a', ['--host', IP.b, '--port', String(PORT.sink), '--send', marker, '--repeat', '200']);
      // c has never dialled b: its HBONE connection (pool key: source and destination
      // identity) is new, so its TLS handshake happens during the capture.
      fromC = await client('c', ['--host', IP.b, '--port', String(PORT.sink), '--send', marker, '--repeat', '200']);
    } finally {
      pcap = await capture.stop();
    }
    expect(fromA.ok, explain('marker a → b:9000', fromA)).toBe(true);
    expect(fromC.ok, explain('marker c → b:9000', fromC)).toBe(true);
    const show = (p: Pcap['tcp'][number]): string => `${p.src}:${p.sport} > ${p.dst}:${p.dport} flags 0x${p.flags.toString(16)} len ${p.payload.length}`;
    expect(pcap.tcp.length, 'the capture saw the inter-node TCP packets').toBeGreaterThan(0);
    expect(pcap.raw.includes(marker), `the plaintext marker appears in ${capture.file}`).toBe(false);
    const notHbone = pcap.tcp.filter((p) => p.sport !== HBONE_PORT && p.dport !== HBONE_PORT).map(show);
    expect(notHbone.slice(0, 10), explain(`inter-node TCP packets not to/from ${HBONE_PORT}`, notHbone.length)).toEqual([]);
    const handshakes = pcap.tcp.filter((p) => p.dport === HBONE_PORT && p.payload[0] === 0x16 && p.payload[1] === 0x03);
    expect(handshakes.length, explain('TLS handshake records (0x16 0x03) towards 15008', pcap.tcp.slice(0, 12).map(show))).toBeGreaterThan(0);
  });

  it('4. connects a to c on the same node', async () => {
    const echo = await client('a', ['--host', IP.c, '--port', String(PORT.echo)]);
    expect(echo.ok, explain('echo a → c:9001 (same node)', echo)).toBe(true);
    const whoami = await client('a', ['--host', IP.c, '--port', String(PORT.whoami), '--expect-whoami']);
    expect(whoami.ok, explain('whoami a → c:8080', whoami)).toBe(true);
    expect((whoami.reply as { local?: string }).local).toBe(`${IP.c}:${PORT.whoami}`);
    expect((whoami.reply as { remote?: string }).remote, explain('c sees the client pod a as the source', whoami)).toMatch(new RegExp(`^${IP.a.replace(/\./g, '\\.')}:\\d+$`));
    await expectAccessLog('node1', `${IP.c}:${PORT.echo}`);
  });

  it('5. leaves traffic between unenrolled pods untouched', async () => {
    const capture = await startCapture(topo(), 'node1', topo().uplinkName, join(dir, 'unenrolled.pcap'), ['tcp']);
    const marker = `UNENROLLED-${randomBytes(6).toString('hex')}`;
    let result: ClientResult;
    let pcap: Pcap;
    try {
      result = await client('u1', ['--host', IP.u2, '--port', String(PORT.plain), '--send', marker, '--expect', 'echo']);
      await capture.waitFor(marker);
    } finally {
      pcap = await capture.stop();
    }
    expect(result.ok, explain('echo u1 → u2:7000', result)).toBe(true);
    expect(servers.u2Echo?.connections().at(-1)?.remote, 'u2 sees u1 itself as the peer (no proxy in between)').toBe(result.local);
    const ports = [...new Set(pcap.tcp.map((p) => `${p.sport}>${p.dport}`))];
    expect(pcap.tcp.some((p) => p.src === IP.u1 && p.dport === PORT.plain), explain('plaintext u1 → u2:7000 on the uplink', ports)).toBe(true);
    expect(pcap.tcp.filter((p) => p.sport === HBONE_PORT || p.dport === HBONE_PORT).length, explain('no HBONE for unenrolled pods', ports)).toBe(0);
    expect(pcap.raw.includes(marker), 'the plaintext marker crossed the wire as is').toBe(true);
  });

  it('6. refuses plaintext from an unenrolled pod under STRICT and allows it under PERMISSIVE', async () => {
    const echo = servers.bEcho as PodServer;
    const before = echo.connections().length;
    const strict = await client('u1', ['--host', IP.b, '--port', String(PORT.echo), '--timeout-ms', '5000']);
    expect(strict.ok, explain('u1 → b:9001 under STRICT must get no data', strict)).toBe(false);
    expect(echo.connections().length, explain('b saw no connection under STRICT', echo.connections().slice(before))).toBe(before);

    await writeConfigs([]);
    await waitPolicies(0);
    const permissive = await client('u1', ['--host', IP.b, '--port', String(PORT.echo)]);
    expect(permissive.ok, explain('u1 → b:9001 under PERMISSIVE', permissive)).toBe(true);

    await writeConfigs([STRICT]);
    await waitPolicies(1);
    const again = await client('u1', ['--host', IP.b, '--port', String(PORT.echo), '--timeout-ms', '5000']);
    expect(again.ok, explain('u1 → b:9001 refused again after restoring STRICT', again)).toBe(false);
  });

  it('6b. applies the same to plaintext sent to a Service address that the node DNATs to an enrolled pod, from its node and the other', async () => {
    // kube-proxy's part, as in the sandbox: DNAT in each node's netns, after the tc hook has seen the Service address.
    const dnatVip = '10.96.0.21';
    const table = `${prefix}-kube-proxy`;
    for (const node of NODES) {
      await topo().exec(node, ['nft', '-f', '-'], { input: `table ip ${table} {\n chain pre {\n  type nat hook prerouting priority dstnat; policy accept;\n  ip daddr ${dnatVip} tcp dport 80 dnat to ${IP.b}:${PORT.echo}\n }\n}\n` });
    }
    try {
      const echo = servers.bEcho as PodServer;
      const before = echo.connections().length;
      for (const pod of ['u2', 'u1']) {
        const strict = await client(pod, ['--host', dnatVip, '--port', '80', '--timeout-ms', '5000']);
        expect(strict.ok, explain(`${pod} → ${dnatVip}:80 (→ b:${PORT.echo}) under STRICT must get no data`, strict)).toBe(false);
      }
      expect(echo.connections().length, explain('b saw no connection under STRICT', echo.connections().slice(before))).toBe(before);

      await writeConfigs([]);
      await waitPolicies(0);
      for (const pod of ['u2', 'u1'] as const) {
        const permissive = await client(pod, ['--host', dnatVip, '--port', '80']);
        expect(permissive.ok, explain(`${pod} → ${dnatVip}:80 under PERMISSIVE`, permissive)).toBe(true);
        expect(echo.connections().at(-1)?.remote, explain(`b sees ${pod} as the source`, echo.connections().slice(-1))).toMatch(new RegExp(`^${IP[pod].replace(/\./g, '\\.')}:\\d+$`));
      }
      // Through node2's inbound plaintext path, which saw b's own IP:port as the destination.
      await eventually(
        () => {
          const lines = agent('node2').accessLogs().map((l) => JSON.stringify(l));
          if (!lines.some((l) => l.includes(`"src.addr":"${IP.u2}:`) && l.includes(`"dst.addr":"${IP.b}:${PORT.echo}"`))) throw new Error('not yet');
        },
        { timeoutMs: 5_000, intervalMs: 100, description: `node2 logs u2 → ${IP.b}:${PORT.echo}` },
      );
    } finally {
      await writeConfigs([STRICT]);
      await waitPolicies(1);
      for (const node of NODES) await topo().exec(node, ['nft', 'delete', 'table', 'ip', table], { allowFailure: true });
    }
  });

  it('7. accepts on 15008 only client certificates of this mesh and trust domain', async () => {
    const certs = join(dir, 'certs');
    await amesh(['ca', 'create', '--dir', join(certs, 'other-ca'), '--trust-domain', TRUST_DOMAIN]);
    const issue = async (name: string, caDir: string, spiffeId: string): Promise<string> => {
      await amesh(['ca', 'issue', '--ca-dir', caDir, '--spiffe-id', spiffeId, '--out', join(certs, name)]);
      return join(certs, name);
    };
    const good = await issue('good', join(dir, 'ca'), `spiffe://${TRUST_DOMAIN}/ns/demo/sa/sa-a`);
    const otherCa = await issue('other-ca-leaf', join(certs, 'other-ca'), `spiffe://${TRUST_DOMAIN}/ns/demo/sa/sa-a`);
    const otherDomain = await issue('other-domain', join(dir, 'ca'), 'spiffe://other.example/ns/demo/sa/sa-a');

    const outcomes: Record<string, HandshakeOutcome> = {};
    const crashes: string[] = [];
    for (const [name, certDir] of Object.entries({ good, otherCa, otherDomain })) {
      outcomes[name] = await sClient(topo(), 'u1', IP.b, certDir);
      const exit = agent('node2').process.exitStatus();
      if (exit) {
        // Record, restart, and go on: the remaining cases still tell something.
        crashes.push(`agent node2 died (${JSON.stringify(exit)}) during the s_client with the "${name}" certificate\n${agent('node2').logTail(8)}`);
        await startAgent('node2');
      }
    }
    expect(crashes, 'the HBONE server survives every client certificate').toEqual([]);
    expect(outcomes.good?.verdict, explain('CONTROL: right CA and trust domain: the server speaks HTTP/2 after the handshake', outcomes)).toBe('accepted');
    expect(outcomes.otherCa?.verdict, explain('a certificate from another CA is refused', outcomes)).toBe('refused');
    expect(outcomes.otherDomain?.verdict, explain('a certificate of another trust domain is refused', outcomes)).toBe('refused');

    // The accepted identity can also open a real HBONE stream to b (what a peer agent does).
    const probe = await runPodClient(topo(), 'u1', 'hbone-probe', [
      '--host', IP.b, '--port', String(HBONE_PORT), '--authority', `${IP.b}:${PORT.whoami}`,
      '--cert', join(good, 'cert.pem'), '--key', join(good, 'key.pem'), '--ca', join(good, 'root.pem'),
    ]);
    expect(probe, explain('HBONE CONNECT to b:8080 with the good certificate', probe)).toMatchObject({ ok: true, status: 200 });
    expect((probe.reply as { local?: string }).local).toBe(`${IP.b}:${PORT.whoami}`);
    const refused = await runPodClient(topo(), 'u1', 'hbone-probe', [
      '--host', IP.b, '--port', String(HBONE_PORT), '--authority', `${IP.b}:${PORT.whoami}`,
      '--cert', join(otherDomain, 'cert.pem'), '--key', join(otherDomain, 'key.pem'), '--ca', join(otherDomain, 'root.pem'),
    ]);
    expect(refused.ok, explain('HBONE CONNECT with a certificate of another trust domain', refused)).toBe(false);
  });

  it('8. fails closed while the agent is down and recovers on restart without re-enrolling', async () => {
    const node1 = agent('node1');
    const exit = await node1.kill();
    expect(exit.signal).toBe('SIGKILL');
    const watched = [servers.bEcho, servers.bWhoami, servers.bSink] as PodServer[];
    const before = watched.map((s) => s.connections().length);

    const capture = await startCapture(topo(), 'node1', topo().uplinkName, join(dir, 'agent-down.pcap'), ['tcp']);
    let down: ClientResult;
    let downVip: ClientResult;
    let pcap: Pcap;
    try {
      down = await client('a', ['--host', IP.b, '--port', String(PORT.echo), '--timeout-ms', '3000']);
      downVip = await client('a', ['--host', VIP, '--port', '80', '--expect-whoami', '--timeout-ms', '3000']);
    } finally {
      pcap = await capture.stop();
    }
    expect(down.ok, explain('a → b:9001 with node1 agent down must fail', down)).toBe(false);
    expect(downVip.ok, explain(`a → ${VIP}:80 with node1 agent down must fail`, downVip)).toBe(false);
    expect(watched.map((s) => s.connections().length), 'b saw no connection while node1 agent was down').toEqual(before);
    const leaked = pcap.tcp.filter((p) => p.src === IP.a || p.dst === IP.a).map((p) => `${p.src}:${p.sport} > ${p.dst}:${p.dport}`);
    expect(leaked, 'no packet of a left node1 in plaintext').toEqual([]);

    const ready = await startAgent('node1');
    expect(ready).toMatchObject({ ready: true, captureMode });
    // Right after readiness, with no retry: enrolment survived in the pinned maps.
    const up = await client('a', ['--host', IP.b, '--port', String(PORT.echo)]);
    expect(up.ok, explain('a → b:9001 right after the restart', up)).toBe(true);
    const upVip = await client('a', ['--host', VIP, '--port', '80', '--expect-whoami']);
    expect(upVip.ok, explain(`a → ${VIP}:80 right after the restart`, upVip)).toBe(true);
  });

  it('9. drains on SIGTERM, and --uninstall removes every trace of capture', async () => {
    agentsShouldRun = false;
    for (const node of NODES) {
      const exit = await agent(node).stop(30_000);
      expect(exit, explain(`agent ${node} exit after SIGTERM`, exit)).toEqual({ code: 0, signal: null });
    }
    for (const node of NODES) {
      const options = agentOptions.get(node) as AgentOptions;
      const result = await uninstallAgent(topo(), options);
      expect(result.code, `uninstall on ${node}: ${result.stderr}`).toBe(0);

      const devices = [topo().uplinkName, ...topo().pods.filter((p) => p.node === node).map((p) => topo().hostVeth(p.name))];
      for (const dev of devices) {
        const filters = await topo().exec(node, ['tc', 'filter', 'show', 'dev', dev, 'ingress']);
        expect(filters.stdout.trim(), `tc filters left on ${node}/${dev}`).toBe('');
      }
      const rules = await topo().exec(node, ['ip', 'rule', 'show']);
      expect(rules.stdout, `ip rules on ${node}`).not.toContain(`fwmark ${CAPTURE_MARK}`);
      const rules6 = await topo().exec(node, ['ip', '-6', 'rule', 'show']);
      expect(rules6.stdout, `ip -6 rules on ${node}`).not.toContain(`fwmark ${CAPTURE_MARK}`);
      const tables = await topo().exec(node, ['nft', 'list', 'tables']);
      expect(tables.stdout, `nft tables on ${node}`).not.toMatch(/\bamesh\b/);
      expect(existsSync(options.pinRoot), `pinned dir ${options.pinRoot}`).toBe(false);
    }
    // With capture gone, pods still reach each other, now in plaintext and directly.
    const plain = await client('a', ['--host', IP.b, '--port', String(PORT.whoami), '--expect-whoami']);
    expect(plain.ok, explain('a → b:8080 after uninstall', plain)).toBe(true);
    expect((plain.reply as { remote?: string }).remote).toBe(plain.local);
  });
});

// ---------------------------------------------------------------------------- openssl s_client

interface HandshakeOutcome {
  /** accepted: the server sent HTTP/2 (its SETTINGS) after the handshake; refused: it closed first. */
  verdict: 'accepted' | 'refused' | 'undecided';
  exit?: unknown;
  summary: string;
}

/** An HTTP/2 SETTINGS frame header on stream 0: length (multiple of 6), type 4, flags 0. */
function hasHttp2Settings(out: Buffer): boolean {
  for (let i = 0; i + 9 <= out.length; i++) {
    if (out[i + 3] !== 0x04 || out[i + 4] !== 0x00 || out[i] !== 0x00) continue;
    const length = (out[i + 1] ?? 0) * 256 + (out[i + 2] ?? 0);
    if (length % 6 === 0 && out.readUInt32BE(i + 5) === 0) return true;
  }
  return false;
}

/** The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113 §3.4). */
const HTTP2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/**
 * `openssl s_client` to host:15008 from `pod` with the certificate in `certDir`. With TLS 1.3
 * the client finishes its handshake before the server has judged the client certificate, so
 * the verdict comes after: an accepting server answers our HTTP/2 preface with its SETTINGS
 * (s_client prints received data raw), a refusing one closes the connection. stdin stays
 * open, so s_client only ends when the server closes.
 */
async function sClient(topology: Topology, pod: string, host: string, certDir: string): Promise<HandshakeOutcome> {
  const proc: SpawnedProcess = topology.spawn(
    pod,
    ['openssl', 's_client', '-connect', `${host}:${HBONE_PORT}`, '-tls1_3', '-alpn', 'h2', '-noservername',
      '-cert', join(certDir, 'cert.pem'), '-key', join(certDir, 'key.pem'), '-CAfile', join(certDir, 'root.pem')],
    { stdin: true },
  );
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  proc.stdout?.on('data', (c: Buffer) => out.push(c));
  proc.stderr?.on('data', (c: Buffer) => err.push(c));
  proc.stdin?.write(HTTP2_PREFACE);
  const summary = (): string => {
    const text = Buffer.concat(out).toString('latin1');
    const keep = text.split('\n').filter((l) => /Protocol|ALPN|Verif|Cipher|alert|error|errno|closed|SSL handshake/i.test(l));
    return [...keep, ...Buffer.concat(err).toString('utf8').trim().split('\n').slice(-4)].join('\n');
  };
  try {
    const verdict = await eventually(
      () => {
        if (hasHttp2Settings(Buffer.concat(out))) return 'accepted' as const;
        if (proc.exitStatus()) return 'refused' as const;
        throw new Error('no verdict yet');
      },
      { timeoutMs: 15_000, intervalMs: 50, description: `s_client verdict for ${certDir}` },
    ).catch(() => 'undecided' as const);
    return { verdict, exit: proc.exitStatus(), summary: summary() };
  } finally {
    proc.stdin?.end();
    await proc.stop(2_000);
  }
}
