/**
 * `amesh node-agent --local-config FILE [--uninstall]`: runs the node agent in the current
 * network namespace (the node's), or removes everything it installed there.
 */
import type { Command } from 'commander';
import { exitOnSignals } from './graceful-exit.js';
import { readAgentConfig } from '../config/agent-config.js';
import { loadLocalConfig } from '../config/local-config.js';
import { NodeAgent } from '../node-agent/app.js';
import { RedirectionManager } from '../node-agent/capture/redirection-manager.js';
import { loadNativeBinding } from '../native/index.js';
import { systemCommands } from '../os/command.js';
import { createLogger } from '../telemetry/logger.js';

export function registerNodeAgent(program: Command): void {
  program
    .command('node-agent')
    .description('run the node agent (L4 proxy + traffic capture) in this network namespace')
    .requiredOption('--local-config <file>', 'static mesh configuration (YAML or JSON); reloaded when it changes')
    .option('--uninstall', 'remove capture (tc filters, pinned maps, nft table, ip rules) for this node and exit')
    .action(async (opts: { localConfig: string; uninstall?: boolean }) => {
      const local = await loadLocalConfig(opts.localConfig);
      const config = readAgentConfig(process.env, local.node);
      const logger = createLogger(config.logLevel, 'amesh-node-agent');
      if (opts.uninstall) {
        await RedirectionManager.uninstall({ config, node: local.node, uplinks: local.uplinks, commands: systemCommands, logger, native: loadNativeBinding });
        logger.info({ node: local.node }, 'capture uninstalled');
        return;
      }
      const agent = await NodeAgent.build({ config, localConfigPath: opts.localConfig, logger });
      const stop = exitOnSignals({ logger, graceMs: config.drainTimeoutMs + 5000, close: () => agent.close() });
      void agent.quitSignal().then(() => stop('/quitquitquit'));
      await agent.run();
    });
}
