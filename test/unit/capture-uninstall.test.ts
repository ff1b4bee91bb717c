import { describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { RedirectionManager } from '../../src/node-agent/capture/redirection-manager.js';
import type { CommandRunner } from '../../src/os/command.js';
import { silentLogger } from '../../src/telemetry/logger.js';

/** Records every command; `ip rule show` answers with no rule so removeRouting ends at once. */
function recorder(): { commands: CommandRunner; ran: string[] } {
  const ran: string[] = [];
  return {
    ran,
    commands: {
      async run(command, args) {
        ran.push(`${command} ${args.join(' ')}`);
        return { stdout: '', stderr: '', code: 0 };
      },
    },
  };
}

describe('RedirectionManager.uninstall (`amesh node-agent --uninstall`)', () => {
  it('still removes the nft table and routing when eBPF cleanup fails, then fails naming it', async () => {
    const { commands, ran } = recorder();
    const config = readAgentConfig({ AMESH_NODE_NAME: 'node1' }, 'node1');
    const run = RedirectionManager.uninstall({
      config,
      node: 'node1',
      uplinks: [],
      commands,
      logger: silentLogger,
      native: () => {
        throw new Error('cannot load the native addon');
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'AMESH_CAPTURE_FAILED', message: expect.stringContaining('eBPF cleanup incomplete') });
    expect(ran).toContain('nft delete table inet amesh');
    expect(ran.some((c) => c.startsWith('ip -4 route flush table'))).toBe(true);
  });
});
