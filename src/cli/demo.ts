/**
 * `amesh demo`: the main job until the sandbox cluster lands. Builds two simulated nodes and
 * four pods as network namespaces, runs one real node agent per node, and shows — with
 * evidence — that traffic between enrolled pods is captured without touching the pods and
 * crosses the wire only as mutual TLS on 15008.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { AmeshError } from '../errors/amesh-error.js';
import { generateCa } from '../identity/pki.js';
import { createTopology, type Topology } from '../sandbox/network/topology.js';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..').replace(/\/dist$/, '');
const AMESH = join(REPO, 'bin', 'amesh.js');

function say(step: number, total: number, text: string): void {
  console.log(`\n[${step}/${total}] ${text}`);
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new AmeshError('AMESH_COMMAND_FAILED', `timed out waiting for ${what}`, { cause: last });
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('two-node mesh in network namespaces: capture, HBONE mTLS, policy (needs root)')
    .option('--keep', 'leave the demo running until Ctrl-C')
    .action(async (o: { keep?: boolean }) => {
      if (process.getuid?.() !== 0) throw new AmeshError('AMESH_COMMAND_FAILED', 'the demo creates network namespaces and loads eBPF: run it as root (sudo)');
      const prefix = `am-${Math.random().toString(16).slice(2, 6)}`;
      const dir = await mkdtemp(join(tmpdir(), 'amesh-demo-'));
      const total = 7;
      let topo: Topology | undefined;
      const configs: string[] = [];
      const cleanup = async (): Promise<void> => {
        if (!topo) return;
        const t = topo;
        topo = undefined;
        console.log('\ncleaning up: stopping agents, removing capture, deleting namespaces');
        await t.stopAll?.();
        for (const [i, cfg] of configs.entries()) {
          await t.exec(`node${i + 1}`, [process.execPath, AMESH, 'node-agent', '--local-config', cfg, '--uninstall'], { timeoutMs: 30_000, env: { AMESH_BPF_PIN_ROOT: `/sys/fs/bpf/amesh/v1/${prefix}-node${i + 1}` } }).catch(() => undefined);
        }
        await t.destroy();
        await rm(dir, { recursive: true, force: true });
      };
      const onSignal = (): void => void cleanup().then(() => process.exit(130));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        say(1, total, 'creating a mesh CA (ECDSA P-256)');
        const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
        await writeFile(join(dir, 'ca.pem'), ca.certPem);
        await writeFile(join(dir, 'ca-key.pem'), ca.keyPem, { mode: 0o600 });

        say(2, total, 'creating nodes node1, node2 and pods as network namespaces (routed veths, no bridge)');
        const n1 = 'node1';
        const n2 = 'node2';
        topo = await createTopology({
          prefix,
          nodes: [
            { name: n1, uplinkIp: '10.250.0.1', podCidr: '10.244.1.0/24' },
            { name: n2, uplinkIp: '10.250.0.2', podCidr: '10.244.2.0/24' },
          ],
          pods: [
            { name: 'client', node: n1, ip: '10.244.1.2' },
            { name: 'other', node: n1, ip: '10.244.1.9' },
            { name: 'backend', node: n2, ip: '10.244.2.2' },
          ],
          log: (line: string) => console.log(`  ${line}`),
        });
        const t = topo;
        const workloads = [
          { uid: 'demo/client', name: 'client', namespace: 'demo', serviceAccount: 'client', node: n1, addresses: ['10.244.1.2'], tunnelProtocol: 'HBONE' },
          { uid: 'demo/other', name: 'other', namespace: 'other', serviceAccount: 'default', node: n1, addresses: ['10.244.1.9'], tunnelProtocol: 'NONE' },
          { uid: 'demo/backend', name: 'backend', namespace: 'demo', serviceAccount: 'backend', node: n2, addresses: ['10.244.2.2'], tunnelProtocol: 'HBONE', services: { 'demo/backend.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } } },
        ];
        const mesh = (node: string) => ({
          node,
          trustDomain: 'cluster.local',
          ca: { certFile: join(dir, 'ca.pem'), keyFile: join(dir, 'ca-key.pem') },
          uplinks: ['up0'],
          workloads,
          services: [{ name: 'backend', namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', addresses: ['10.96.0.20'], ports: [{ servicePort: 80, targetPort: 8080 }] }],
          policies: [{ name: 'strict', namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [{ matches: [{ notPrincipals: [{ presence: {} }] }] }] }] }],
        });

        say(3, total, 'starting the backend (built-in hello-app image) in pod demo/backend on node2');
        t.spawn('backend', [process.execPath, AMESH, 'image', 'hello-app', '--port', '8080', '--hostname', 'backend'], { env: {} });
        await until('the backend to listen', 10_000, async () => {
          const r = await t.exec('backend', ['curl', '-s', '--max-time', '1', 'http://127.0.0.1:8080/'], { timeoutMs: 3000, allowFailure: true });
          return r.stdout.includes('Hello') ? true : undefined;
        });

        say(4, total, 'starting one amesh node agent per node (the pods are not restarted)');
        for (const [i, node] of [n1, n2].entries()) {
          const cfg = join(dir, `node${i + 1}.yaml`);
          await writeFile(cfg, stringify(mesh(node)));
          configs.push(cfg);
          t.spawn(node, [process.execPath, AMESH, 'node-agent', '--local-config', cfg], {
            env: { AMESH_BPF_PIN_ROOT: `/sys/fs/bpf/amesh/v1/${prefix}-${node}` },
            stderrFile: join(dir, `agent-${i + 1}.log`),
          });
        }
        for (const node of [n1, n2]) {
          const ready = await until(`the agent on ${node} to be ready`, 30_000, async () => {
            const r = await t.exec(node, ['curl', '-s', '--max-time', '1', 'http://127.0.0.1:15021/healthz/ready'], { timeoutMs: 3000, allowFailure: true });
            const j = JSON.parse(r.stdout) as { ready: boolean; captureMode: string };
            return j.ready ? j : undefined;
          });
          console.log(`  ${node}: ready, capture mode ${ready.captureMode}`);
        }

        say(5, total, 'client (enrolled, node1) → http://10.96.0.20/ (service VIP), while tcpdump watches the wire between the nodes');
        const pcap = join(dir, 'uplink.pcap');
        const dump = t.spawn(n1, ['tcpdump', '-i', 'up0', '--immediate-mode', '-U', '-w', pcap, 'tcp'], { env: {} });
        let dumpErr = '';
        dump.stderr?.on('data', (d: Buffer) => (dumpErr += d.toString()));
        await until('tcpdump to start listening', 10_000, async () => (dumpErr.includes('listening on') ? true : undefined));
        const reply = await t.exec('client', ['curl', '-s', '--max-time', '5', 'http://10.96.0.20/'], { timeoutMs: 10_000, allowFailure: true });
        await new Promise((r) => setTimeout(r, 500));
        dump.kill('SIGINT');
        await dump.exited;
        console.log(reply.stdout.split('\n').filter(Boolean).map((l) => `  | ${l}`).join('\n'));
        if (!reply.stdout.includes('Hello, world!')) throw new AmeshError('AMESH_COMMAND_FAILED', `the request through the mesh failed: ${reply.stderr}`);

        say(6, total, 'what crossed the wire between node1 and node2');
        const bytes = await readFile(pcap);
        const ports = await t.exec(n1, ['tcpdump', '-nn', '-r', pcap], { timeoutMs: 10_000 });
        const lines = ports.stdout.split('\n').filter(Boolean);
        const on15008 = lines.filter((l) => /\.15008[ :]/.test(l)).length;
        console.log(`  ${lines.length} TCP packets captured on up0, ${on15008} of them to/from port 15008`);
        if (lines.length === 0) {
          console.log('  the capture saw no packets, so it proves nothing about encryption (see the privileged tests for the real check)');
        } else {
          console.log(`  plaintext "Hello, world!" in the capture: ${bytes.includes('Hello, world!') ? 'YES (not encrypted!)' : 'no — the payload crossed the wire encrypted (TLS 1.3)'}`);
        }

        say(7, total, 'policy: an unenrolled pod (no identity) → backend under PeerAuthentication STRICT');
        const denied = await t.exec('other', ['curl', '-s', '--max-time', '3', 'http://10.244.2.2:8080/'], { timeoutMs: 10_000, allowFailure: true });
        console.log(denied.code === 0 ? `  unexpected: allowed (${denied.stdout.trim()})` : `  refused, as STRICT requires (curl exit ${denied.code})`);
        const log = (await readFile(join(dir, 'agent-2.log'), 'utf8')).split('\n').filter((l) => l.includes('policy: connection denied')).slice(-1)[0];
        if (log) console.log(`  agent on node2 explains: ${JSON.parse(log).reason}`);

        console.log(`
Try next (as root):
  sudo npx amesh demo --keep                      # leave it running, then explore:
  nsenter --net=/run/netns/<node> curl -s 127.0.0.1:15000/config_dump   # workloads, policies, certificates, capture
  nsenter --net=/run/netns/<node> tc filter show dev up0 ingress          # the eBPF program on the uplink
Docs: README.md (local config format, ports, configuration).`);
        if (o.keep) {
          console.log(`\nrunning; network namespaces ${['node1', 'node2', 'client', 'backend', 'other'].map((n) => t.netnsName(n)).join(', ')}. Ctrl-C to clean up.`);
          await new Promise(() => undefined);
        }
      } catch (err) {
        for (const i of [1, 2]) {
          const text = await readFile(join(dir, `agent-${i}.log`), 'utf8').catch(() => '');
          if (text) console.error(`\n--- last lines of the node${i} agent log ---\n${text.trim().split('\n').slice(-15).join('\n')}`);
        }
        throw err;
      } finally {
        await cleanup();
      }
    });
}
