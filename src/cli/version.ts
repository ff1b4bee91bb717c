/**
 * `amesh version [--short] [-o json] [--client]`: the client's version and, unless --client, the
 * server's — controller and node agents, from the cluster (src/install/version.ts: image tags of
 * the workloads and of every running pod, as neither serves a version endpoint yet).
 */
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { CLUSTER_OPTIONS_HELP, openCluster, type ClusterOptions } from './install.js';

interface VersionFlags extends ClusterOptions {
  short?: boolean;
  output: string;
  client?: boolean;
}

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('client version, and the controller and node agent versions in the cluster')
    .option('--short', 'versions only')
    .option('-o, --output <format>', 'text or json', 'text')
    .option('--client', 'the client version only (no cluster needed)')
    .option('--kubeconfig <path>', CLUSTER_OPTIONS_HELP.kubeconfig)
    .option('--context <name>', CLUSTER_OPTIONS_HELP.context)
    .option('--dir <dir>', CLUSTER_OPTIONS_HELP.dir)
    .action(async (o: VersionFlags) => {
      if (o.output !== 'text' && o.output !== 'json') throw new AmeshError('AMESH_CONFIG_INVALID', `-o ${o.output}: expected text or json`);
      const { clientVersion, formatVersions, serverVersions, VERSION_SOURCE_NOTE } = await import('../install/version.js');
      const client = clientVersion();
      let server;
      let serverError: unknown;
      if (!o.client) {
        try {
          server = await serverVersions((await openCluster(o)).kubeConfig);
        } catch (err) {
          serverError = err;
        }
      }
      if (o.output === 'json') {
        const out = { client: { version: client }, ...(server ? { server, note: VERSION_SOURCE_NOTE } : {}), ...(serverError ? { serverError: (serverError as Error).message } : {}) };
        console.log(JSON.stringify(out, null, 2));
      } else {
        for (const line of formatVersions(client, server, o.short ?? false)) console.log(line);
      }
      if (serverError) throw new AmeshError('AMESH_COMMAND_FAILED', 'cannot read the server versions from the cluster', { cause: serverError, hint: 'check the kubeconfig (--kubeconfig, --context), or pass --client for the client version only' });
    });
}
