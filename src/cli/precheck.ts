/**
 * `amesh precheck`: can amesh be installed here? Checks this machine as a node (kernel version and
 * config, a real eBPF load/pin/attach in a throw-away network namespace, bpffs and cgroup2, nft,
 * the agent's ports) and the cluster the kubeconfig names (Kubernetes version, the rights install
 * needs, Istio, Cilium's socket LB). One line per check with the fix; exit status 1 when any check
 * FAILs; `-o json` for tools. Facts: install/precheck-facts.ts; decisions: install/precheck.ts.
 */
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { gatherClusterFacts, gatherHostFacts } from '../install/precheck-facts.js';
import { clusterChecks, formatReport, hostChecks, report, type CaptureMode, type CheckResult } from '../install/precheck.js';
import { resolveClusterAccess } from './inspect/cluster-access.js';
import { KUBE_OPTIONS_HELP, parseOutput, structuredText } from './inspect/output.js';

interface PrecheckOptions {
  output: string;
  kernelConfig?: string;
  captureMode: string;
  host: boolean;
  cluster: boolean;
  kubeconfig?: string;
  dir?: string;
}

/** client-node's answer when it finds no kubeconfig at all. */
const NO_CONFIG_SERVER = 'http://localhost:8080';

async function clusterResults(o: PrecheckOptions, progress: (line: string) => void): Promise<CheckResult[]> {
  const explicit = o.kubeconfig !== undefined || o.dir !== undefined || !!process.env.KUBECONFIG;
  let access;
  try {
    access = await resolveClusterAccess({ ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}), ...(o.dir !== undefined ? { dir: o.dir } : {}) });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return [{ id: 'cluster', status: explicit ? 'FAIL' : 'WARN', message: `no cluster to check: ${message}`, fix: 'pass --kubeconfig <file> (or set KUBECONFIG), or --no-cluster to check only this node' }];
  }
  const server = access.kubeConfig.getCurrentCluster()?.server ?? '';
  if (!explicit && server === NO_CONFIG_SERVER) {
    return [{ id: 'cluster', status: 'WARN', message: 'no kubeconfig found: cluster checks skipped', fix: 'pass --kubeconfig <file> (or set KUBECONFIG) to check the cluster too' }];
  }
  progress(`checking the cluster at ${server}${access.sandboxDir ? ` (amesh sandbox ${access.sandboxDir})` : ''}`);
  try {
    const facts = await gatherClusterFacts(access.kubeConfig);
    return [{ id: 'cluster', status: 'PASS', message: `API server ${server} answers` }, ...clusterChecks(facts)];
  } catch (err) {
    return [{ id: 'cluster', status: 'FAIL', message: err instanceof Error ? err.message : String(err), fix: 'check the kubeconfig (server address, credentials, context), or pass --no-cluster to check only this node' }];
  }
}

export function registerPrecheck(program: Command): void {
  program
    .command('precheck')
    .description('can amesh run here? this node (kernel, eBPF, mounts, nft, ports) and the cluster (version, RBAC, Istio, Cilium): one line per check with the fix; exit 1 when a check fails')
    .option('-o, --output <format>', 'short (plain lines) or json', 'short')
    .option('--kernel-config <file>', 'kernel build config to check (default: /proc/config.gz, else /boot/config-$(uname -r))')
    .option('--capture-mode <mode>', 'the capture mode you will install: ebpf, or nftables (then eBPF is not required)', 'ebpf')
    .option('--no-host', 'skip the checks of this machine (run `amesh precheck --no-cluster` on each node instead)')
    .option('--no-cluster', 'skip the cluster checks')
    .option('--kubeconfig <path>', KUBE_OPTIONS_HELP.kubeconfig)
    .option('--dir <dir>', 'sandbox state directory: check that sandbox\'s cluster')
    .action(async (o: PrecheckOptions) => {
      const output = parseOutput(o.output, ['short', 'json']);
      if (o.captureMode !== 'ebpf' && o.captureMode !== 'nftables') throw new AmeshError('AMESH_CONFIG_INVALID', `--capture-mode ${o.captureMode}: expected ebpf or nftables`);
      if (!o.host && !o.cluster) throw new AmeshError('AMESH_CONFIG_INVALID', '--no-host and --no-cluster together leave nothing to check');
      const mode: CaptureMode = o.captureMode;
      const progress = (line: string): void => {
        if (output === 'short') process.stderr.write(`${line}…\n`);
      };
      const checks: CheckResult[] = [];
      if (o.host) {
        progress('checking this node (kernel, eBPF probe in a new network namespace, mounts, nft, ports)');
        checks.push(...hostChecks(await gatherHostFacts({ ...(o.kernelConfig !== undefined ? { kernelConfig: o.kernelConfig } : {}) }), mode));
      }
      if (o.cluster) checks.push(...(await clusterResults(o, progress)));
      const result = report(checks);
      process.stdout.write(output === 'json' ? structuredText('json', result) : formatReport(result));
      process.exitCode = result.result === 'PASS' ? 0 : 1;
    });
}
