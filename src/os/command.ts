/**
 * Runs OS tools (ip, nft, tc) with argument arrays — never a shell — and turns failures into
 * AmeshError naming the command and its stderr.
 */
import { execFile } from 'node:child_process';
import { AmeshError } from '../errors/amesh-error.js';

export interface CommandRunner {
  run(command: string, args: string[], options?: { input?: string; allowFailure?: boolean }): Promise<{ stdout: string; stderr: string; code: number }>;
}

export const systemCommands: CommandRunner = {
  run(command, args, options = {}) {
    return new Promise((resolve, reject) => {
      const child = execFile(command, args, { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new AmeshError('AMESH_COMMAND_FAILED', `${command} is not installed`, { cause: err, hint: 'run scripts/setup.sh (installs iproute2, nftables)' }));
          return;
        }
        if (err && !options.allowFailure) {
          reject(new AmeshError('AMESH_COMMAND_FAILED', `\`${command} ${args.join(' ')}\` failed: ${stderr.trim() || err.message}`, { cause: err }));
          return;
        }
        resolve({ stdout, stderr, code });
      });
      if (options.input !== undefined) child.stdin?.end(options.input);
    });
  },
};
