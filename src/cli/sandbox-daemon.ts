/**
 * `amesh sandbox daemon` (internal, hidden): the sandbox's long-running process, started by
 * `sandbox up` inside the fabric namespace. A command family of its own so the daemon does not
 * load the user-facing sandbox commands and their Kubernetes client (tens of MB of memory).
 *
 * Without `--child` it is the supervisor (src/sandbox/daemon-supervisor.ts): it holds the
 * inherited sockets (fd 3: the API server's host-loopback listener; fd 4: the host network
 * namespace handle) and runs `sandbox daemon --child` with them, again whenever that dies.
 */
import { spawn } from 'node:child_process';
import { fstatSync } from 'node:fs';
import type { Command } from 'commander';
import { exitOnSignals } from './graceful-exit.js';
import { runDaemon } from '../sandbox/daemon.js';
import { superviseDaemon } from '../sandbox/daemon-supervisor.js';
import { HOST_NETNS_FD, HOST_NETNS_FD_ENV } from '../sandbox/state.js';
import { createLogger } from '../telemetry/logger.js';

const LOOPBACK_FD = 3;

function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

export function registerSandboxDaemon(program: Command): void {
  program
    .command('sandbox', { hidden: true })
    .command('daemon', { hidden: true })
    .description('internal: the sandbox daemon (started by `sandbox up` inside the fabric namespace)')
    .requiredOption('--dir <dir>', 'sandbox state directory')
    .option('--child', 'run the daemon itself (the default is its supervisor, which restarts it)')
    .action(async (o: { dir: string; child?: boolean }) => {
      if (o.child) {
        const log = createLogger(process.env.AMESH_LOG_LEVEL ?? 'info', 'amesh-sandbox');
        // The supervisor gone (kill -9 of the recorded daemon pid, then `sandbox up`): end at once, as
        // the daemon itself killed used to, so the next daemon can listen; its kubelets kill our pods.
        process.once('disconnect', () => {
          log.error('the sandbox daemon supervisor is gone; exiting');
          process.exit(1);
        });
        const daemon = await runDaemon({ dir: o.dir, log, loopbackFd: LOOPBACK_FD });
        log.info('sandbox daemon running');
        exitOnSignals({ logger: log, graceMs: 40_000, close: () => daemon.stop() });
        await new Promise(() => undefined);
        return;
      }
      const log = createLogger(process.env.AMESH_LOG_LEVEL ?? 'info', 'amesh-sandbox-supervisor');
      // The same descriptors for every child: 'ignore' where the CLI passed none.
      const hostNetns = process.env[HOST_NETNS_FD_ENV] ? HOST_NETNS_FD : undefined;
      const stdio: Array<'ignore' | 'inherit' | 'ipc' | number> = ['ignore', 'inherit', 'inherit', isOpen(LOOPBACK_FD) ? LOOPBACK_FD : 'ignore'];
      if (hostNetns !== undefined && isOpen(hostNetns)) stdio[hostNetns] = hostNetns;
      for (let fd = 0; fd < stdio.length; fd++) stdio[fd] ??= 'ignore';
      // A channel whose end tells the child its supervisor died.
      stdio.push('ipc');
      const script = process.argv[1] ?? '';
      const supervisor = superviseDaemon({
        log,
        spawnChild: () => spawn(process.execPath, [...process.execArgv, script, 'sandbox', 'daemon', '--dir', o.dir, '--child'], { stdio, env: process.env }),
      });
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        process.on(signal, () => {
          log.info({ signal, child: supervisor.childPid() }, 'stopping the sandbox daemon');
          void supervisor.stop(signal);
        });
      }
      process.exit(await supervisor.done);
    });
}
