/**
 * `amesh uninstall [-y] [--keep-crds] [--set key=value]... [--kubeconfig F] [--context C] [--dir D]
 * [--timeout 5m]`: removes amesh from the cluster and its capture from every node, then verifies
 * nothing of it remains (src/install/uninstall.ts has the steps and what is deliberately left).
 */
import type { Command } from 'commander';
import { collect, CLUSTER_OPTIONS_HELP, confirm, openCluster, parseTimeout, type ClusterOptions } from './install.js';

interface UninstallFlags extends ClusterOptions {
  yes?: boolean;
  keepCrds?: boolean;
  set: string[];
  timeout: string;
}

export function registerUninstall(program: Command): void {
  program
    .command('uninstall')
    .description("remove amesh: the controller, node agents and their capture on every node (tc filters, pinned BPF maps, nft table, routing rules), the objects it created, its CRDs; then verify")
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--keep-crds', 'keep the CRDs amesh installed (and so every Gateway, HTTPRoute, AuthorizationPolicy … stored in them)')
    .option('--set <key=value>', 'the values amesh was installed with, when they change names (repeatable)', collect, [])
    .option('--kubeconfig <path>', CLUSTER_OPTIONS_HELP.kubeconfig)
    .option('--context <name>', CLUSTER_OPTIONS_HELP.context)
    .option('--dir <dir>', CLUSTER_OPTIONS_HELP.dir)
    .option('--timeout <duration>', `${CLUSTER_OPTIONS_HELP.timeout} for the whole uninstall`, '5m')
    .action(async (o: UninstallFlags) => {
      const [{ parseSetFlags }, { uninstallAmesh }] = await Promise.all([import('../install/render.js'), import('../install/uninstall.js')]);
      const values = parseSetFlags(o.set);
      const timeoutMs = parseTimeout(o.timeout);
      const cluster = await openCluster(o);
      await confirm(`remove amesh${o.keepCrds ? '' : ' and the CRDs it installed (with every object stored in them)'} from ${cluster.description}? Enrolled pods lose mesh encryption and policy`, o.yes);
      const started = Date.now();
      console.log(`• uninstalling amesh from ${cluster.description}`);
      const result = await uninstallAmesh(cluster.kubeConfig, (line) => console.log(`• ${line}`), {
        values,
        timeoutMs,
        keepCrds: o.keepCrds ?? false,
        ...(cluster.sandboxDir !== undefined ? { sandboxDir: cluster.sandboxDir } : {}),
      });
      console.log(`\namesh is uninstalled in ${((Date.now() - started) / 1000).toFixed(1)} s: ${result.deleted.length} objects deleted, capture removed on ${result.nodesCleaned.length} node(s) (${result.nodesCleaned.join(', ')}); nothing of amesh remains in the API`);
      if (result.left.length) {
        console.log('left in place (not amesh state, or kept on purpose):');
        for (const line of result.left) console.log(`  ${line}`);
      }
    });
}
