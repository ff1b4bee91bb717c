/**
 * `amesh node-agent [--local-config FILE | --xds-address HOST:PORT] [--uninstall]`: runs the node
 * agent in the current network namespace (the node's), or removes everything it installed there.
 * State comes from the controller over xDS when an xDS address is given (flag or
 * AMESH_XDS_ADDRESS; the node name then comes from NODE_NAME), else from the local config file.
 */
import type { Command } from 'commander';
import { exitOnSignals } from './graceful-exit.js';
import { readAgentConfig } from '../config/agent-config.js';
import { loadLocalConfig } from '../config/local-config.js';
import { AmeshError } from '../errors/amesh-error.js';
import { NodeAgent } from '../node-agent/app.js';
import { RedirectionManager } from '../node-agent/capture/redirection-manager.js';
import { loadNativeBinding } from '../native/index.js';
import { systemCommands } from '../os/command.js';
import { createAccessLogger } from '../telemetry/access-logger.js';
import { createLogger } from '../telemetry/logger.js';

export function registerNodeAgent(program: Command): void {
  program
    .command('node-agent')
    .description('run the node agent (L4 proxy + traffic capture) in this network namespace')
    .option('--local-config <file>', 'static mesh configuration (YAML or JSON); reloaded when it changes')
    .option('--xds-address <host:port>', 'take the mesh state from the controller (or istiod) over xDS instead; same as AMESH_XDS_ADDRESS')
    .option('--uninstall', 'remove capture (tc filters, pinned maps, nft table, ip rules) for this node and exit')
    .action(async (opts: { localConfig?: string; xdsAddress?: string; uninstall?: boolean }) => {
      const env = opts.xdsAddress ? { ...process.env, AMESH_XDS_ADDRESS: opts.xdsAddress } : process.env;
      const xdsMode = Boolean(env.AMESH_XDS_ADDRESS);
      if (!xdsMode && !opts.localConfig) {
        throw new AmeshError('AMESH_CONFIG_INVALID', 'no source of mesh state: give --local-config FILE or --xds-address HOST:PORT (AMESH_XDS_ADDRESS)');
      }
      const local = !xdsMode && opts.localConfig ? await loadLocalConfig(opts.localConfig) : undefined;
      const config = readAgentConfig(env, local?.node);
      const logger = createLogger(config.logLevel, 'amesh-node-agent');
      const node = local?.node ?? config.nodeName;
      if (opts.uninstall) {
        await RedirectionManager.uninstall({ config, node, uplinks: local ? local.uplinks : config.uplinks, commands: systemCommands, logger, native: loadNativeBinding });
        logger.info({ node }, 'capture uninstalled');
        return;
      }
      const access = createAccessLogger(logger, { name: 'amesh-node-agent' });
      const agent = await NodeAgent.build({ config, ...(opts.localConfig ? { localConfigPath: opts.localConfig } : {}), logger, accessLog: access.logger });
      const stop = exitOnSignals({
        logger,
        graceMs: config.drainTimeoutMs + 5000,
        close: () => agent.close().finally(() => access.close()),
      });
      void agent.quitSignal().then((why) => stop(why));
      await agent.run();
    });
}
