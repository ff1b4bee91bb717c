/**
 * `amesh install [--dry-run] [--set key=value]... [--kubeconfig F] [--context C] [--dir D]
 * [--timeout 5m] [-y]`: renders the manifests with the values (src/install/render.ts), server-side
 * applies them and waits for the rollout with progress (src/install/install.ts — the same function
 * the sandbox's `up` runs), then prints what to do next. `--dry-run` prints the rendered YAML and
 * talks to no cluster.
 *
 * Also the shared pieces of the install-family commands (uninstall, namespace, version): finding
 * the cluster (as the inspect commands do: --kubeconfig, --dir's sandbox, in-cluster, $KUBECONFIG,
 * ~/.kube/config, else the running sandbox; plus --context), the confirmation prompt, --timeout.
 */
import { createInterface } from 'node:readline/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { describeValues } from '../install/render.js';
import { parseDurationSeconds } from './ca.js';

export interface ClusterOptions {
  kubeconfig?: string;
  context?: string;
  dir?: string;
}

export interface Cluster {
  kubeConfig: KubeConfig;
  /** Set when the cluster is an amesh sandbox. */
  sandboxDir: string | undefined;
  /** `context <name> (https://…)` for prompts and output. */
  description: string;
}

export const CLUSTER_OPTIONS_HELP = {
  kubeconfig: 'kubeconfig to use (default: in-cluster, else $KUBECONFIG or ~/.kube/config, else the running sandbox)',
  context: 'kubeconfig context to use (default: its current context)',
  dir: 'sandbox state directory: use that sandbox (default: detected from the kubeconfig)',
  timeout: 'how long to wait (e.g. 90s, 5m)',
};

/** The cluster the command talks to. */
export async function openCluster(o: ClusterOptions): Promise<Cluster> {
  const [{ resolveClusterAccess, isSandboxServer }, { readState }] = await Promise.all([import('./inspect/cluster-access.js'), import('../sandbox/state.js')]);
  const access = await resolveClusterAccess({ ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}), ...(o.dir !== undefined ? { dir: o.dir } : {}) });
  const kc = access.kubeConfig;
  let sandboxDir = access.sandboxDir;
  if (o.context !== undefined && o.context !== kc.getCurrentContext()) {
    if (!kc.getContextObject(o.context)) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `the kubeconfig has no context ${JSON.stringify(o.context)}`, { hint: `contexts: ${kc.getContexts().map((c) => c.name).join(', ') || '(none)'}` });
    }
    kc.setCurrentContext(o.context);
    // The sandbox was detected from the old context's server; check the new one's.
    const state = sandboxDir !== undefined ? await readState(sandboxDir).catch(() => undefined) : undefined;
    if (!state || !isSandboxServer(kc.getCurrentCluster()?.server, state)) sandboxDir = undefined;
  }
  const server = kc.getCurrentCluster()?.server ?? '?';
  return { kubeConfig: kc, sandboxDir, description: `context ${kc.getCurrentContext() || '(in-cluster)'} (${server})${sandboxDir !== undefined ? `, amesh sandbox ${sandboxDir}` : ''}` };
}

/** `--timeout` in milliseconds. */
export function parseTimeout(raw: string): number {
  const seconds = parseDurationSeconds(raw);
  if (seconds === undefined || seconds <= 0) throw new AmeshError('AMESH_CONFIG_INVALID', `--timeout ${raw}: expected a duration such as 90s, 5m or 1h`);
  return seconds * 1000;
}

/** Asks on a terminal; refuses without one (pass -y). */
export async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw new AmeshError('AMESH_CONFIG_INVALID', `${question}: no terminal to confirm on`, { hint: 'pass -y to proceed without asking' });
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') throw new AmeshError('AMESH_CONFIG_INVALID', 'cancelled', { hint: 'nothing was changed' });
  } finally {
    rl.close();
  }
}

/** Collects a repeatable option. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** What to do after `amesh install`. */
export function nextSteps(sandboxDir: string | undefined): string[] {
  const dir = sandboxDir !== undefined ? ` --dir ${sandboxDir}` : '';
  const steps: Array<[string, string]> = [
    ['amesh precheck', "check the nodes' kernel and BPF features and the CNI settings"],
    [`amesh namespace enroll <ns>${dir}`, 'enrol a namespace: labels it istio.io/dataplane-mode=ambient, waits until its pods are captured'],
    ['', '(or: kubectl label namespace <ns> istio.io/dataplane-mode=ambient)'],
    ['amesh waypoint apply -n <ns> --enroll-namespace', 'a waypoint for L7 routing and policy in that namespace'],
    [`amesh version${dir}`, 'client, controller and node agent versions'],
  ];
  const width = Math.max(...steps.map(([c]) => c.length));
  return ['next:', ...steps.map(([command, what]) => `  ${command.padEnd(width)}  ${what}`)];
}

interface InstallFlags extends ClusterOptions {
  dryRun?: boolean;
  set: string[];
  timeout: string;
  yes?: boolean;
}

export function registerInstall(program: Command): void {
  program
    .command('install')
    .description('install amesh into the cluster (server-side apply of daemonset/ with your values), wait for it to roll out')
    .option('--dry-run', 'print the manifests that would be applied and apply nothing (no cluster needed)')
    .option('--set <key=value>', 'override an install value (repeatable), e.g. --set image.tag=0.2.0; see docs/install.md', collect, [])
    .option('--kubeconfig <path>', CLUSTER_OPTIONS_HELP.kubeconfig)
    .option('--context <name>', CLUSTER_OPTIONS_HELP.context)
    .option('--dir <dir>', CLUSTER_OPTIONS_HELP.dir)
    .option('--timeout <duration>', `${CLUSTER_OPTIONS_HELP.timeout} for the rollout`, '5m')
    .option('-y, --yes', 'do not ask for confirmation')
    .addHelpText('after', () => `\nvalues for --set (key=value; several per flag with commas):\n  ${describeValues().join('\n  ')}`)
    .action(async (o: InstallFlags) => {
      const { parseSetFlags, renderInstall, toYaml } = await import('../install/render.js');
      const timeoutMs = parseTimeout(o.timeout);
      if (o.dryRun) {
        process.stdout.write(toYaml(await renderInstall(parseSetFlags(o.set))));
        return;
      }
      const cluster = await openCluster(o);
      const sandbox = cluster.sandboxDir !== undefined ? await import('../sandbox/lifecycle.js') : undefined;
      const values = parseSetFlags(o.set);
      await confirm(`install amesh (images ${values['image.hub']}/*:${values['image.tag']}) into ${cluster.description}?`, o.yes);
      const started = Date.now();
      console.log(`• installing amesh into ${cluster.description}`);
      const progress = (line: string): void => console.log(`• ${line}`);
      const result =
        sandbox && cluster.sandboxDir !== undefined
          ? await sandbox.installIntoSandbox(cluster.kubeConfig, values, progress, { timeoutMs, sandboxDir: cluster.sandboxDir })
          : await (await import('../install/install.js')).installAmesh(cluster.kubeConfig, values, progress, { timeoutMs });
      const changed = result.applied.filter((r) => r.outcome !== 'unchanged').length;
      console.log(`\namesh is installed (${result.applied.length} objects applied, ${changed} changed${result.skipped.length ? `, ${result.skipped.length} left alone` : ''}; ${result.rollouts.map((t) => t.title).join(' and ')} up) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      for (const line of nextSteps(cluster.sandboxDir)) console.log(line);
    });
}
