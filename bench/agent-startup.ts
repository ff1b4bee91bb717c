/**
 * `npm run bench:agent-startup` (= node dist/bench/agent-startup.js): how fast a node agent with
 * many local workloads is serving again after a restart, in the sandbox with the controller CA.
 *
 * One worker node gets `--pods` enrolled pods (busybox `sleep`), each with its own service
 * account, so the agent needs one certificate per pod from the controller. Then the agent's pod
 * is deleted; the DaemonSet makes a new one and we time, from the delete:
 *   - ready: the new agent pod reports Ready (listeners, capture and state in place);
 *   - certified: its /config_dump lists every workload identity as Available.
 * Repeated `--runs` times on the same sandbox; the sandbox is removed at the end.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { Command, InvalidArgumentError } from 'commander';
import { REPO_ROOT } from '../src/sandbox/install.js';
import { kubeConfigFor, sandboxDown, sandboxUp } from '../src/sandbox/lifecycle.js';
import { Progress } from './progress.js';
import { summarize, type Summary } from './stats.js';

const NAMESPACE = 'bench-startup';
const TARGET_SECONDS = 5;

function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

function objects(node: string, pods: number): KubernetesObject[] {
  const list: KubernetesObject[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE, labels: { 'istio.io/dataplane-mode': 'ambient' } } }];
  for (let i = 0; i < pods; i++) {
    const name = `w${String(i).padStart(3, '0')}`;
    list.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: NAMESPACE } });
    list.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: NAMESPACE },
      spec: { nodeName: node, serviceAccountName: name, containers: [{ name: 'c', image: 'busybox', command: ['sleep', '36000'] }] },
    } as KubernetesObject);
  }
  return list;
}

/** Available certificates of `namespace` in the agent's /config_dump, read inside the node namespace. */
function availableCertificates(node: string): number {
  try {
    const out = execFileSync('nsenter', [`--net=/run/netns/${node}`, 'curl', '-s', '--max-time', '2', 'http://127.0.0.1:15000/config_dump'], { encoding: 'utf8' });
    const dump = JSON.parse(out) as { certificates?: Array<{ identity: string; state?: string }> };
    return (dump.certificates ?? []).filter((c) => c.identity.includes(`/ns/${NAMESPACE}/`) && c.state === 'Available').length;
  } catch {
    return -1;
  }
}

async function main(): Promise<void> {
  const program = new Command('bench-agent-startup')
    .description('time a node agent restart with many local workloads (sandbox, controller CA)')
    .option('--pods <n>', 'enrolled pods (each its own service account) on the node', wholeNumber(1, 200), 100)
    .option('--runs <n>', 'agent restarts to time', wholeNumber(1, 10), 3)
    .option('--out-dir <dir>', 'where the JSON and Markdown results go', join(REPO_ROOT, 'bench', 'results'))
    .parse();
  const o = program.opts<{ pods: number; runs: number; outDir: string }>();
  if (process.getuid?.() !== 0) throw new Error('the agent start-up benchmark runs a sandbox: run it as root');
  const progress = new Progress(o.runs + 2);
  const dir = await mkdtemp(join(tmpdir(), 'amesh-bench-startup-'));
  const name = `bu${Math.random().toString(16).slice(2, 5)}`;
  const node = `${name}-worker`;
  const ready: number[] = [];
  const certified: number[] = [];
  try {
    progress.step(`sandbox ${name} with 1 node and ${o.pods} enrolled pods`);
    await sandboxUp({ dir, name, nodes: 1 });
    const kc = kubeConfigFor(dir);
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const client = KubernetesObjectApi.makeApiClient(kc);
    for (const object of objects(node, o.pods)) await client.create(object);
    const deadline = Date.now() + 300_000;
    for (;;) {
      const pods = await core.listNamespacedPod({ namespace: NAMESPACE });
      const running = pods.items.filter((p) => p.status?.phase === 'Running').length;
      const certs = availableCertificates(node);
      if (running === o.pods && certs === o.pods) break;
      if (Date.now() > deadline) throw new Error(`after 300 s: ${running}/${o.pods} pods running, ${certs} certificates available`);
      progress.info(`${running}/${o.pods} pods running, ${Math.max(certs, 0)} certificates available`);
      await delay(2000);
    }
    for (let run = 1; run <= o.runs; run++) {
      progress.step(`restart the node agent, run ${run}/${o.runs}`);
      const agents = await core.listNamespacedPod({ namespace: 'amesh-system', labelSelector: 'app=amesh-node' });
      const old = agents.items[0]?.metadata?.name;
      if (!old) throw new Error('no amesh-node pod to restart');
      const started = performance.now();
      await core.deleteNamespacedPod({ name: old, namespace: 'amesh-system' });
      let readyAt: number | undefined;
      let certifiedAt: number | undefined;
      const limit = Date.now() + 120_000;
      while ((readyAt === undefined || certifiedAt === undefined) && Date.now() < limit) {
        if (readyAt === undefined) {
          const ds = await apps.readNamespacedDaemonSet({ name: 'amesh-node', namespace: 'amesh-system' });
          const current = await core.listNamespacedPod({ namespace: 'amesh-system', labelSelector: 'app=amesh-node' });
          const fresh = current.items.find((p) => p.metadata?.name !== old && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
          if (fresh && (ds.status?.numberReady ?? 0) >= 1) readyAt = performance.now();
        }
        if (certifiedAt === undefined && readyAt !== undefined && availableCertificates(node) === o.pods) certifiedAt = performance.now();
        await delay(50);
      }
      if (readyAt === undefined || certifiedAt === undefined) throw new Error(`run ${run}: the agent was not ready and certified within 120 s`);
      ready.push((readyAt - started) / 1000);
      certified.push((certifiedAt - started) / 1000);
      progress.info(`ready after ${ready.at(-1)?.toFixed(2)} s, all ${o.pods} certificates after ${certified.at(-1)?.toFixed(2)} s`);
    }
  } finally {
    progress.step('removing the sandbox');
    await sandboxDown({ dir }).catch((err: unknown) => progress.info(`cleanup failed: ${String(err)}`));
    await rm(dir, { recursive: true, force: true });
  }
  const when = new Date().toISOString();
  const cell = (s: Summary | undefined): string => (s ? `${s.median.toFixed(2)} [${s.min.toFixed(2)}–${s.max.toFixed(2)}]` : '—');
  const markdown = [
    `## Node agent restart with ${o.pods} local workloads — ${when}`,
    '',
    `Node ${process.version}, kernel ${release()}, ${cpus().length} CPUs; sandbox, 1 node, controller CA; median of ${o.runs} [min–max], seconds from deleting the agent pod.`,
    '',
    '| measure | seconds | target |',
    '|---|---:|---:|',
    `| new agent pod Ready | ${cell(summarize(ready))} | |`,
    `| every workload certificate Available | ${cell(summarize(certified))} | < ${TARGET_SECONDS} |`,
    '',
  ].join('\n');
  await mkdir(o.outDir, { recursive: true });
  const stem = join(o.outDir, `agent-startup-${when.replace(/[:.]/g, '-')}`);
  await writeFile(`${stem}.json`, `${JSON.stringify({ when, pods: o.pods, ready, certified }, null, 2)}\n`);
  await writeFile(`${stem}.md`, markdown);
  process.stdout.write(markdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-agent-startup: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
