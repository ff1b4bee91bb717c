/**
 * `amesh sandbox up|down|status|kubeconfig|exec|logs`: a Kubernetes-like cluster on this machine
 * (DESIGN §9). `daemon` is internal: `up` starts it inside the fabric network namespace.
 */
import { spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { CoreV1Api, AppsV1Api, type V1Pod } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { containerLogPath, podExecTarget } from '../sandbox/pod-access.js';
import { kubeConfigFor, sandboxDown, sandboxUp } from '../sandbox/lifecycle.js';
import { planClusterNetwork } from '../sandbox/network/cluster-network.js';
import { HOST_PORTS_ANNOTATION, parseHostPorts } from '../sandbox/network/host-ports.js';
import { daemonAlive, readState, sandboxDir, sandboxPaths } from '../sandbox/state.js';

interface DirOption {
  dir?: string;
}

const say = (message: string): void => console.log(message);

async function requireRunning(dir: string): Promise<void> {
  const state = await readState(dir);
  if (!state) throw new AmeshError('AMESH_SANDBOX_NOT_RUNNING', `no sandbox in ${dir}`, { hint: 'start one with `amesh sandbox up`' });
  if (!daemonAlive(state)) throw new AmeshError('AMESH_SANDBOX_NOT_RUNNING', `sandbox ${state.name} is not running`, { hint: 'start it with `amesh sandbox up`' });
}

function parsePodRef(ref: string): { namespace: string; name: string } {
  const parts = ref.split('/');
  if (parts.length === 1 && parts[0]) return { namespace: 'default', name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  throw new AmeshError('AMESH_CONFIG_INVALID', `${JSON.stringify(ref)} is not a pod reference`, { hint: 'write <namespace>/<pod>, e.g. demo/client-7d9c4-abcde' });
}

/** A pod by exact name, or — for convenience — the only pod whose name starts with `<name>-`. */
async function findPod(dir: string, ref: string): Promise<V1Pod> {
  const { namespace, name } = parsePodRef(ref);
  const core = kubeConfigFor(dir).makeApiClient(CoreV1Api);
  const pods = (await core.listNamespacedPod({ namespace })).items;
  const exact = pods.find((p) => p.metadata?.name === name);
  if (exact) return exact;
  const prefixed = pods.filter((p) => p.metadata?.name?.startsWith(`${name}-`));
  if (prefixed.length === 1 && prefixed[0]) return prefixed[0];
  const names = pods.map((p) => p.metadata?.name).join(', ') || '(none)';
  throw new AmeshError('AMESH_CONFIG_INVALID', prefixed.length > 1 ? `${ref} matches several pods: ${prefixed.map((p) => p.metadata?.name).join(', ')}` : `pod ${namespace}/${name} not found`, {
    hint: `pods in ${namespace}: ${names}`,
  });
}

export function registerSandbox(program: Command): void {
  const sandbox = program.command('sandbox').description('a Kubernetes-like cluster on this machine: nodes and pods as network namespaces (needs root)');
  const dirOption = (c: Command): Command => c.option('--dir <dir>', 'sandbox state directory (default $AMESH_SANDBOX_DIR or /var/lib/amesh/sandbox)');

  dirOption(sandbox.command('up'))
    .description('create (or resume) the sandbox cluster and install amesh into it; idempotent')
    .option('--nodes <n>', 'number of worker nodes (default 2)')
    .option('--name <name>', 'sandbox name: prefix of node names and network namespaces (default amesh)')
    .option('--api-port <port>', 'host loopback port of the API server (default: any free port)')
    .option('--no-install', 'do not install amesh (bare cluster)')
    .action(async (o: DirOption & { nodes?: string; name?: string; apiPort?: string; install: boolean }) => {
      const nodes = o.nodes === undefined ? undefined : Number(o.nodes);
      if (nodes !== undefined && (!Number.isInteger(nodes) || nodes < 1 || nodes > 16)) throw new AmeshError('AMESH_CONFIG_INVALID', `--nodes ${o.nodes}: expected 1..16`);
      const apiPort = o.apiPort === undefined ? undefined : Number(o.apiPort);
      if (apiPort !== undefined && (!Number.isInteger(apiPort) || apiPort < 0 || apiPort > 65535)) throw new AmeshError('AMESH_CONFIG_INVALID', `--api-port ${o.apiPort}: expected 0..65535`);
      const started = Date.now();
      const dir = sandboxDir(o.dir);
      const result = await sandboxUp({
        dir,
        ...(nodes !== undefined ? { nodes } : {}),
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(apiPort !== undefined ? { apiPort } : {}),
        install: o.install,
        progress: (m) => say(`• ${m}`),
      });
      say(`\nsandbox ${result.state.name} ${result.alreadyRunning ? 'is running' : `is up in ${((Date.now() - started) / 1000).toFixed(1)} s`}: ${result.state.nodes.join(', ')}`);
      say(`  export KUBECONFIG=${result.kubeconfig}`);
      say('  kubectl get pods -A');
      const dirFlag = o.dir ? ` --dir ${o.dir}` : '';
      say(`  amesh sandbox exec${dirFlag} <namespace>/<pod> -- <command>`);
      say(`  amesh sandbox exec${dirFlag} --outside -- curl http://<EXTERNAL-IP>/   (a client outside the cluster; LoadBalancer ports are also on 127.0.0.1, see \`amesh sandbox status\`)`);
      say(`  amesh sandbox down${dirFlag}`);
    });

  dirOption(sandbox.command('down'))
    .description('stop the sandbox and remove everything it created (namespaces, processes, BPF pins, state)')
    .option('--keep', 'keep the API server state so `sandbox up` resumes it')
    .action(async (o: DirOption & { keep?: boolean }) => {
      await sandboxDown({ dir: sandboxDir(o.dir), keep: o.keep ?? false, progress: (m) => say(`• ${m}`) });
    });

  dirOption(sandbox.command('status'))
    .description('is the sandbox running; nodes, pods and node agents')
    .action(async (o: DirOption) => {
      const dir = sandboxDir(o.dir);
      const state = await readState(dir);
      if (!state) {
        say(`no sandbox in ${dir}`);
        process.exitCode = 3;
        return;
      }
      const alive = daemonAlive(state);
      say(`sandbox ${state.name}: ${alive ? `running (daemon pid ${state.daemonPid})` : 'stopped (state kept)'}; API https://127.0.0.1:${state.apiPort}; kubeconfig ${sandboxPaths(dir).kubeconfig}`);
      if (!alive) {
        process.exitCode = 3;
        return;
      }
      const kc = kubeConfigFor(dir);
      const core = kc.makeApiClient(CoreV1Api);
      const nodes = (await core.listNode()).items;
      for (const n of nodes) {
        const ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
        say(`  node ${n.metadata?.name}: ${ready ? 'Ready' : 'NotReady'} ${n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? ''} pods ${n.spec?.podCIDR ?? ''}`);
      }
      const pods = (await core.listPodForAllNamespaces()).items;
      const phases = new Map<string, number>();
      for (const p of pods) phases.set(p.status?.phase ?? 'Unknown', (phases.get(p.status?.phase ?? 'Unknown') ?? 0) + 1);
      say(`  pods: ${[...phases].map(([k, v]) => `${v} ${k}`).join(', ') || 'none'}`);
      const ds = await kc
        .makeApiClient(AppsV1Api)
        .readNamespacedDaemonSet({ name: 'amesh-node', namespace: 'amesh-system' })
        .catch(() => undefined);
      say(`  amesh node agents: ${ds ? `${ds.status?.numberReady ?? 0}/${ds.status?.desiredNumberScheduled ?? 0} ready` : 'not installed'}`);
      const balancers = (await core.listServiceForAllNamespaces()).items.filter((s) => s.spec?.type === 'LoadBalancer');
      if (balancers.length) say('  LoadBalancer services (reach them with `amesh sandbox exec --outside -- curl http://<address>/` or on the host ports):');
      for (const svc of balancers) {
        const ip = svc.status?.loadBalancer?.ingress?.find((i) => i.ip)?.ip;
        const hostPorts = parseHostPorts(svc.metadata?.annotations?.[HOST_PORTS_ANNOTATION]);
        const ports = (svc.spec?.ports ?? []).map((p) => {
          const hostPort = hostPorts.get(p.port);
          return `${p.port}/${p.protocol ?? 'TCP'}${hostPort ? ` → 127.0.0.1:${hostPort}` : ''}`;
        });
        say(`    ${svc.metadata?.namespace}/${svc.metadata?.name}: ${ip ?? '<pending>'} ${ports.join(', ')}`);
      }
    });

  dirOption(sandbox.command('kubeconfig'))
    .description('print the path of the sandbox kubeconfig: export KUBECONFIG=$(amesh sandbox kubeconfig)')
    .action(async (o: DirOption) => {
      const dir = sandboxDir(o.dir);
      const path = sandboxPaths(dir).kubeconfig;
      if (!(await readState(dir)) || !existsSync(path)) throw new AmeshError('AMESH_SANDBOX_NOT_RUNNING', `no sandbox in ${dir}`, { hint: 'start one with `amesh sandbox up`' });
      say(path);
    });

  dirOption(sandbox.command('exec'))
    .description("run a host command inside a pod's network namespace with the pod's environment, or (--outside) in the client namespace outside the cluster")
    .usage('[options] <namespace>/<pod> -- <command...>\n       amesh sandbox exec --outside -- <command...>')
    .argument('[pod]', '<namespace>/<pod> (a Deployment name prefix works when it matches one pod); not with --outside')
    .argument('[command...]', 'the command and its arguments (after --)')
    .option('-c, --container <name>', 'take the environment of this container (default: the first)')
    .option('--outside', 'run in the client namespace outside the cluster, which reaches LoadBalancer addresses (10.252.0.0/24) only')
    .action(async (ref: string | undefined, rest: string[], o: DirOption & { container?: string; outside?: boolean }) => {
      const dir = sandboxDir(o.dir);
      await requireRunning(dir);
      let prefix: string[];
      let env: Record<string, string> = {};
      let command: string[];
      if (o.outside) {
        if (o.container) throw new AmeshError('AMESH_CONFIG_INVALID', '--container does not go with --outside (the outside namespace runs no pod)');
        // Everything after `--` is the command: commander hands its first word in as <pod>.
        command = ref === undefined ? rest : [ref, ...rest];
        const state = await readState(dir);
        const plan = planClusterNetwork({ prefix: state?.name ?? '', nodes: state?.nodes ?? [] });
        if (!existsSync(plan.outsideNetnsPath)) {
          throw new AmeshError('AMESH_SANDBOX_FAILED', `the outside client namespace ${plan.outsideNetns} does not exist`, { hint: 'restart the sandbox to create it: amesh sandbox down --keep && amesh sandbox up' });
        }
        prefix = ['nsenter', `--net=${plan.outsideNetnsPath}`, '--'];
      } else {
        if (ref === undefined) throw new AmeshError('AMESH_CONFIG_INVALID', 'no pod given', { hint: 'amesh sandbox exec demo/client -- curl -s http://backend.demo   (or --outside -- curl http://<EXTERNAL-IP>/)' });
        command = rest;
        const pod = await findPod(dir, ref);
        if (pod.status?.phase !== 'Running') throw new AmeshError('AMESH_SANDBOX_FAILED', `pod ${pod.metadata?.namespace}/${pod.metadata?.name} is ${pod.status?.phase ?? 'not running'}`, { hint: 'wait for it: kubectl get pod -w' });
        const target = await podExecTarget({ stateDir: sandboxPaths(dir).kubelet, pod, container: o.container });
        prefix = target.prefix;
        env = target.env;
      }
      if (command.length === 0) throw new AmeshError('AMESH_CONFIG_INVALID', 'no command given', { hint: 'amesh sandbox exec demo/client -- curl -s http://backend.demo' });
      const [program, ...args] = [...prefix, ...command];
      if (!program) throw new AmeshError('AMESH_CONFIG_INVALID', 'no command given');
      const child = spawn(program, args, { stdio: 'inherit', env: { ...process.env, ...env } });
      const code = await new Promise<number>((resolve) => {
        child.once('error', (err) => {
          console.error(`amesh: cannot run ${command[0]}: ${err.message}`);
          resolve(127);
        });
        child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
      });
      process.exitCode = code;
    });

  dirOption(sandbox.command('logs'))
    .description("print a pod container's output")
    .argument('<pod>', '<namespace>/<pod>')
    .option('-c, --container <name>', 'container (default: the first)')
    .option('-p, --previous', 'the previous run of the container')
    .option('-f, --follow', 'keep printing new output until Ctrl-C')
    .action(async (ref: string, o: DirOption & { container?: string; previous?: boolean; follow?: boolean }) => {
      const dir = sandboxDir(o.dir);
      await requireRunning(dir);
      const pod = await findPod(dir, ref);
      const container = o.container ?? pod.spec?.containers[0]?.name ?? '';
      const path = await containerLogPath({ stateDir: sandboxPaths(dir).kubelet, pod, container, previous: o.previous ?? false });
      if (!path || !existsSync(path)) throw new AmeshError('AMESH_SANDBOX_FAILED', `no log for container ${container} of ${pod.metadata?.namespace}/${pod.metadata?.name}${o.previous ? ' (previous run)' : ''}`);
      if (!o.follow) {
        process.stdout.write(await readFile(path));
        return;
      }
      let offset = 0;
      for (;;) {
        const size = (await stat(path)).size;
        if (size > offset) {
          await new Promise<void>((resolve) => createReadStream(path, { start: offset, end: size - 1 }).on('end', resolve).pipe(process.stdout, { end: false }));
          offset = size;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    });
}
