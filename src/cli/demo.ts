/**
 * `amesh demo`: the README's main job. Brings the sandbox cluster up (amesh installed through
 * its DaemonSet manifest), deploys the sample app from samples/demo/, shows plaintext traffic,
 * enrols the namespace with Istio's label — no pod restarts — and shows the same request now
 * crossing the mesh as HBONE mutual TLS, with the evidence: the node agent's access log names the
 * client's SPIFFE identity, and a packet capture between the nodes sees only port 15008. Then
 * an ingress Gateway (samples/gateway/) opens the frontend to a client outside the cluster. Last,
 * what the mesh saw without instrumenting the app: a node agent's L4 metrics, and — behind a
 * waypoint with the 90/10 canary of samples/waypoint/ — the waypoint's request count per version.
 * Every wait is bounded; a metric that is not there is reported, not waited for.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, type KubeConfig, type V1Pod, setHeaderOptions } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { applyObjects, readManifests, REPO_ROOT } from '../sandbox/install.js';
import { applyWaypoint } from './waypoint.js';
import { kubeConfigFor, sandboxUp } from '../sandbox/lifecycle.js';
import { podExecTarget, containerLogPath } from '../sandbox/pod-access.js';
import { planClusterNetwork } from '../sandbox/network/cluster-network.js';
import { sandboxDir, sandboxPaths } from '../sandbox/state.js';

const DEMO_MANIFEST = join(REPO_ROOT, 'samples', 'demo', 'demo.yaml');
const GATEWAY_MANIFEST = join(REPO_ROOT, 'samples', 'gateway', 'demo-gateway.yaml');
const CANARY_MANIFESTS = ['destination-rule.yaml', 'canary-virtual-service.yaml'].map((f) => join(REPO_ROOT, 'samples', 'waypoint', f));
const CANARY_REQUESTS = 200;
const TOTAL = 8;

function step(n: number, text: string): void {
  console.log(`\n[${n}/${TOTAL}] ${text}`);
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
    await delay(250);
  }
  throw new AmeshError('AMESH_SANDBOX_FAILED', `timed out waiting for ${what}`, { cause: last });
}

function run(argv: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [cmd, ...args] = argv;
  return new Promise((resolve) => {
    const child = spawn(cmd ?? 'false', args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: err.message });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

async function podsOf(core: CoreV1Api, namespace: string, app: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` })).items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
}

async function execIn(dir: string, pod: V1Pod, command: string[], timeoutMs = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const target = await podExecTarget({ stateDir: sandboxPaths(dir).kubelet, pod });
  return run([...target.prefix, ...command], target.env, timeoutMs);
}

/** The Gateway's first address once it is Programmed (the controller deploys it, the sandbox gives its Service an address). */
async function gatewayAddress(kc: KubeConfig, namespace: string, name: string): Promise<string> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  let shown = '';
  return until(`Gateway ${namespace}/${name} to be Programmed`, 120_000, async () => {
    const gw = (await custom.getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', namespace, plural: 'gateways', name })) as {
      status?: { addresses?: Array<{ value?: string }>; conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }> };
    };
    const programmed = gw.status?.conditions?.find((c) => c.type === 'Programmed');
    const line = programmed ? `Programmed=${programmed.status} (${programmed.reason ?? ''}) ${programmed.message ?? ''}`.trim() : 'waiting for status';
    if (line !== shown) console.log(`  ${(shown = line)}`);
    const address = gw.status?.addresses?.[0]?.value;
    return programmed?.status === 'True' && address ? address : undefined;
  });
}

async function waitDeployments(kc: KubeConfig, namespace: string): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  let shown = '';
  await until(`the deployments in ${namespace} to be available`, 120_000, async () => {
    const list = (await apps.listNamespacedDeployment({ namespace })).items;
    const line = list.map((d) => `${d.metadata?.name} ${d.status?.availableReplicas ?? 0}/${d.spec?.replicas ?? 1}`).join(', ');
    if (line !== shown) console.log(`  ${(shown = line)}`);
    return list.length > 0 && list.every((d) => (d.status?.availableReplicas ?? 0) >= (d.spec?.replicas ?? 1)) ? true : undefined;
  });
}

interface MetricLine {
  labels: Record<string, string>;
  value: number;
}

/** The samples of one metric in a Prometheus text page (labels without escapes: ours have none that matter here). */
function metricLines(text: string, name: string): MetricLine[] {
  const out: MetricLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const labels: Record<string, string> = {};
    for (const m of line.slice(name.length + 1, close).matchAll(/(\w+)="([^"]*)"/g)) labels[m[1] ?? ''] = m[2] ?? '';
    out.push({ labels, value: Number(line.slice(close + 1).trim()) });
  }
  return out;
}

/** `/metrics` on :15020 inside a network namespace (a node's for agents, a pod's for a waypoint); '' when it cannot be read. */
async function scrape(prefix: string[]): Promise<string> {
  const r = await run([...prefix, 'curl', '-s', '--max-time', '3', 'http://127.0.0.1:15020/metrics'], {}, 8_000);
  return r.code === 0 ? r.stdout : '';
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('sandbox cluster + sample app: enrol a namespace and watch its traffic move to HBONE mutual TLS (needs root)')
    .option('--dir <dir>', 'sandbox state directory (default $AMESH_SANDBOX_DIR or /var/lib/amesh/sandbox)')
    .option('--nodes <n>', 'worker nodes', '2')
    .action(async (o: { dir?: string; nodes: string }) => {
      const dir = sandboxDir(o.dir);
      const nodes = Number(o.nodes);
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) throw new AmeshError('AMESH_CONFIG_INVALID', `--nodes ${o.nodes}: expected 1..16`);

      step(1, 'bringing the sandbox cluster up (API server, kubelets, DNS, kube-proxy) and installing amesh');
      const started = Date.now();
      const up = await sandboxUp({ dir, nodes, progress: (m) => console.log(`  ${m}`) });
      console.log(`  ready in ${((Date.now() - started) / 1000).toFixed(1)} s; kubeconfig ${up.kubeconfig}`);
      const kc = kubeConfigFor(dir);
      const core = kc.makeApiClient(CoreV1Api);

      step(2, `deploying the sample app: kubectl apply -f ${DEMO_MANIFEST}`);
      for (const r of await applyObjects(kc, await readManifests(DEMO_MANIFEST))) console.log(`  ${r.object.kind?.toLowerCase()}/${r.object.metadata?.name} ${r.outcome}`);
      await waitDeployments(kc, 'demo');
      const [client] = await podsOf(core, 'demo', 'client');
      if (!client) throw new AmeshError('AMESH_SANDBOX_FAILED', 'the demo client pod is not running');
      const backends = [...(await podsOf(core, 'demo', 'backend'))];
      for (const p of [client, ...backends]) console.log(`  pod ${p.metadata?.name} on ${p.spec?.nodeName} at ${p.status?.podIP}`);

      step(3, 'before enrolment: client → http://backend.demo travels in plaintext');
      const before = await execIn(dir, client, ['curl', '-s', '--max-time', '5', 'http://backend.demo']);
      console.log(before.stdout.trim().split('\n').map((l) => `  | ${l}`).join('\n') || `  curl failed: ${before.stderr.trim()}`);
      if (!before.stdout.includes('Hello, world!')) throw new AmeshError('AMESH_SANDBOX_FAILED', `client → backend.demo failed before enrolment: ${before.stderr.trim() || before.stdout.trim()}`);

      step(4, 'kubectl label namespace demo istio.io/dataplane-mode=ambient   (no pod restarts)');
      const restartsBefore = (await core.listNamespacedPod({ namespace: 'demo' })).items.map((p) => `${p.metadata?.uid}`).sort().join(',');
      await core.patchNamespace({ name: 'demo', body: { metadata: { labels: { 'istio.io/dataplane-mode': 'ambient' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      const enrolledAt = Date.now();
      const plan = planClusterNetwork({ prefix: up.state.name, nodes: up.state.nodes });
      // Enrolled means every node agent serves the new state (its /config_dump), not that a file was written.
      const demoPods = (await core.listNamespacedPod({ namespace: 'demo' })).items.map((p) => p.metadata?.name ?? '');
      await until('every node agent to enrol the demo pods', 15_000, async () => {
        for (const node of plan.nodes) {
          const dump = await run(['nsenter', `--net=${node.netnsPath}`, '--', 'curl', '-s', '--max-time', '2', 'http://127.0.0.1:15000/config_dump'], {}, 5_000);
          const workloads = (JSON.parse(dump.stdout || '{}') as { workloads?: Array<{ name?: string; namespace?: string; protocol?: string }> }).workloads ?? [];
          const enrolled = new Set(workloads.filter((w) => w.namespace === 'demo' && w.protocol === 'HBONE').map((w) => w.name));
          if (!demoPods.every((name) => enrolled.has(name))) return undefined;
        }
        return true;
      });
      console.log(`  enrolled in ${Date.now() - enrolledAt} ms; pods unchanged: ${restartsBefore === (await core.listNamespacedPod({ namespace: 'demo' })).items.map((p) => `${p.metadata?.uid}`).sort().join(',') ? 'yes' : 'no'}`);

      step(5, 'after enrolment: the same request, now through the node agents over HBONE (mTLS on 15008)');
      const backendNode = backends.find((b) => b.spec?.nodeName !== client.spec?.nodeName)?.spec?.nodeName;
      const uplinkNode = plan.nodes.find((n) => n.name === client.spec?.nodeName);
      const pcap = join(tmpdir(), `amesh-demo-${process.pid}.pcap`);
      let dump: ReturnType<typeof spawn> | undefined;
      if (backendNode && uplinkNode) {
        dump = spawn('nsenter', [`--net=${uplinkNode.netnsPath}`, '--', 'tcpdump', '-i', 'up0', '--immediate-mode', '-U', '-w', pcap, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        dump.stderr?.on('data', (d: Buffer) => (err += d.toString()));
        await until('tcpdump to start', 10_000, async () => (err.includes('listening on') ? true : undefined)).catch(() => undefined);
      }
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const r = await execIn(dir, client, ['curl', '-s', '--max-time', '5', 'http://backend.demo']);
        if (!r.stdout.includes('Hello, world!')) throw new AmeshError('AMESH_SANDBOX_FAILED', `client → backend.demo failed through the mesh: ${r.stderr.trim() || r.stdout.trim() || `curl exit ${r.code}`}`);
        seen.add(r.stdout.split('\n').find((l) => l.startsWith('Version'))?.trim() ?? '');
      }
      console.log(`  6 requests answered; versions seen: ${[...seen].join(', ')}`);
      if (dump) {
        await delay(300);
        dump.kill('SIGINT');
        await new Promise((r) => dump?.once('exit', r));
        const text = await run(['tcpdump', '-nn', '-r', pcap], {}, 10_000);
        const lines = text.stdout.split('\n').filter(Boolean);
        const hbone = lines.filter((l) => /\.15008[ :]/.test(l)).length;
        const ca = lines.filter((l) => /\.15012[ :]/.test(l)).length;
        const bytes = await readFile(pcap).catch(() => Buffer.alloc(0));
        console.log(`  between ${client.spec?.nodeName} and the other node: ${lines.length} TCP packets, ${hbone} of them on port 15008 (HBONE)${ca ? `, ${ca} on 15012 (an agent fetching certificates from the controller)` : ''}; plaintext "Hello, world!" on the wire: ${bytes.includes('Hello, world!') ? 'YES' : 'no'}`);
        await rm(pcap, { force: true });
      }
      const agents = (await core.listNamespacedPod({ namespace: 'amesh-system', labelSelector: 'app=amesh-node' })).items;
      for (const agent of agents) {
        const path = await containerLogPath({ stateDir: sandboxPaths(dir).kubelet, pod: agent, container: 'amesh-node' });
        const lines = path ? (await readFile(path, 'utf8').catch(() => '')).split('\n') : [];
        const entry = lines
          .filter((l) => l.includes('"connection complete"') && l.includes('"direction":"inbound"'))
          .slice(-1)
          .map((l) => JSON.parse(l) as Record<string, unknown>)[0];
        if (entry) console.log(`  ${agent.spec?.nodeName} agent access log: ${entry['src.identity']} → ${entry['dst.identity'] ?? entry['dst.addr']} (${entry.direction}, mutual TLS)`);
      }

      const remoteBackend = backends.find((b) => b.spec?.nodeName !== client.spec?.nodeName);
      if (remoteBackend?.status?.podIP && uplinkNode) {
        // What a peer sees on the backend's HBONE port: its workload certificate, from the controller's CA.
        const hello = await run(['nsenter', `--net=${uplinkNode.netnsPath}`, '--', 'openssl', 's_client', '-connect', `${remoteBackend.status.podIP}:15008`, '-alpn', 'h2'], {}, 10_000);
        const pem = PEM_BLOCK.exec(hello.stdout)?.[0];
        if (pem) {
          const leaf = new X509Certificate(pem);
          const bundle = (await core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'demo' })).data?.['root-cert.pem'] ?? '';
          const trusted = [...bundle.matchAll(new RegExp(PEM_BLOCK.source, 'g'))].some((m) => {
            const root = new X509Certificate(m[0]);
            return leaf.checkIssued(root) && leaf.verify(root.publicKey);
          });
          console.log(`  ${remoteBackend.metadata?.name}:15008 presents ${leaf.subjectAltName}, valid until ${leaf.validTo}, ${trusted ? 'issued under the amesh-controller root (ConfigMap istio-ca-root-cert)' : 'NOT issued under istio-ca-root-cert'}`);
        }
      }

      step(6, `the edge: kubectl apply -f ${GATEWAY_MANIFEST}   (a Gateway of class istio + an HTTPRoute to the frontend)`);
      for (const r of await applyObjects(kc, await readManifests(GATEWAY_MANIFEST))) console.log(`  ${r.object.kind?.toLowerCase()}/${r.object.metadata?.name} ${r.outcome}`);
      const gatewayAt = Date.now();
      const address = await gatewayAddress(kc, 'demo', 'demo-gateway');
      console.log(`  demo-gateway Programmed in ${((Date.now() - gatewayAt) / 1000).toFixed(1)} s (Deployment demo-gateway-istio, LoadBalancer ${address})`);
      const outsideNetns = plan.outsideNetnsPath;
      const edge = await until('the frontend to answer through demo-gateway from outside the cluster', 60_000, async () => {
        const r = await run(['nsenter', `--net=${outsideNetns}`, '--', 'curl', '-s', '--max-time', '5', `http://${address}/`], {}, 10_000);
        return r.code === 0 && r.stdout.includes('frontend') ? r : undefined;
      });
      console.log(`  outside the cluster: curl http://${address}/ → ${edge.stdout.trim()}   (gateway → frontend pod over HBONE)`);

      step(7, 'observability: what the mesh measured, without touching the app');
      const l4 = (await Promise.all(plan.nodes.map(async (n) => ({ node: n.name, text: await scrape(['nsenter', `--net=${n.netnsPath}`, '--']) })))).flatMap(({ node, text }) =>
        metricLines(text, 'istio_tcp_connections_opened_total')
          .filter((m) => m.labels.reporter === 'destination' && m.labels.source_workload === 'client')
          .map((m) => ({ node, ...m })),
      );
      if (l4.length === 0) console.log('  (no istio_tcp_connections_opened_total from the client on the agents\' :15020/metrics)');
      for (const m of l4.slice(0, 3)) {
        console.log(`  ${m.node} agent: istio_tcp_connections_opened_total{source_workload="client", source_principal="${m.labels.source_principal}", destination_workload="${m.labels.destination_workload}", destination_principal="${m.labels.destination_principal}"} ${m.value}`);
      }
      console.log('  amesh waypoint apply -n demo --enroll-namespace --wait; kubectl apply -f samples/waypoint/destination-rule.yaml -f samples/waypoint/canary-virtual-service.yaml   (90 % v1, 10 % v2)');
      await applyWaypoint(kc, { namespace: 'demo', enrollNamespace: true, overwrite: true, wait: true, timeoutMs: 120_000 }, (line) => console.log(`  ${line}`));
      for (const file of CANARY_MANIFESTS) for (const r of await applyObjects(kc, await readManifests(file))) console.log(`  ${r.object.kind?.toLowerCase()}/${r.object.metadata?.name} ${r.outcome}`);
      const [waypoint] = (await core.listNamespacedPod({ namespace: 'demo', labelSelector: 'gateway.networking.k8s.io/gateway-name=waypoint' })).items.filter((p) => p.status?.phase === 'Running');
      if (!waypoint) throw new AmeshError('AMESH_SANDBOX_FAILED', 'the demo waypoint pod is not running', { hint: 'kubectl get pods -n demo -l gateway.networking.k8s.io/gateway-name=waypoint' });
      const waypointTarget = await podExecTarget({ stateDir: sandboxPaths(dir).kubelet, pod: waypoint });
      // In force when the waypoint's own config has the VirtualService's route (its admin /config_dump).
      await until('the canary route at the waypoint', 30_000, async () => {
        const dump = await run([...waypointTarget.prefix, 'curl', '-s', '--max-time', '3', 'http://127.0.0.1:15000/config_dump'], {}, 8_000);
        return dump.stdout.includes('VirtualService/demo/backend') ? true : undefined;
      });
      const perVersion = (text: string): Record<string, number> => {
        const out: Record<string, number> = {};
        for (const m of metricLines(text, 'istio_requests_total').filter((x) => x.labels.response_code === '200' && x.labels.destination_service_name === 'backend')) {
          const version = m.labels.destination_version ?? 'unknown';
          out[version] = (out[version] ?? 0) + m.value;
        }
        return out;
      };
      const countedBefore = perVersion(await scrape(waypointTarget.prefix));
      const canary = await execIn(dir, client, ['curl', '-s', '--max-time', '60', `http://backend.demo/?[1-${CANARY_REQUESTS}]`], 70_000);
      const answered = { v1: (canary.stdout.match(/Version: 1\./g) ?? []).length, v2: (canary.stdout.match(/Version: 2\./g) ?? []).length };
      const countedAfter = perVersion(await scrape(waypointTarget.prefix));
      const counted = Object.fromEntries(Object.entries(countedAfter).map(([v, n]) => [v, n - (countedBefore[v] ?? 0)]));
      console.log(`  ${CANARY_REQUESTS} requests client → backend.demo: the client got v1 ${answered.v1}, v2 ${answered.v2}`);
      console.log(
        `  waypoint ${waypoint.metadata?.name}: istio_requests_total{response_code="200", destination_service_name="backend"} grew by ${Object.entries(counted)
          .sort()
          .map(([v, n]) => `${n} for destination_version="${v}"`)
          .join(', ') || 'nothing (no metrics on :15020?)'}`,
      );

      step(8, 'try it yourself');
      console.log(`  export KUBECONFIG=${up.kubeconfig}
  kubectl get pods -A -o wide
  amesh sandbox exec demo/${client.metadata?.name} -- curl -s http://backend.demo
  amesh sandbox logs amesh-system/${agents[0]?.metadata?.name ?? 'amesh-node-xxxxx'}     # access log: identities of both ends
  amesh sandbox exec --outside -- curl -s http://${address}/                # through the ingress gateway (host: see \`amesh sandbox status\`)
  less docs/ingress.md                                                       # HTTPS, the Istio Gateway API, the nginx example
  amesh proxy-status; amesh dashboard                                        # who is in sync; the live service graph (docs/observability.md)
  kubectl label namespace demo istio.io/dataplane-mode-                     # back to plaintext, again without restarts
  amesh sandbox down                                                         # removes everything`);
    });
}
