/**
 * Run a program (no shell) to completion, bounded in time, with errors that name the program,
 * where it ran and its stderr. Shared by the test topology and the sandbox cluster network.
 */
import { spawn as spawnChild } from 'node:child_process';
import { AmeshError } from '../../errors/amesh-error.js';

const DEFAULT_EXEC_TIMEOUT_MS = 30_000;

export interface ExecOptions {
  /** Written to the program's stdin, which is then closed. */
  input?: string | Buffer;
  /** Kill the program (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
  /** Resolve with the exit code instead of throwing when the program fails. */
  allowFailure?: boolean;
  /** Environment for the program, merged over the caller's unless `replaceEnv` is set. */
  env?: NodeJS.ProcessEnv;
  replaceEnv?: boolean;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/** argv as a copy-pasteable shell line, for messages. */
export function describeArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Run a program (no shell) to completion, bounded in time. */
export function run(argv: readonly string[], options: ExecOptions & { where: string }): Promise<ExecResult> {
  const [command, ...args] = argv;
  if (!command) throw new AmeshError('AMESH_COMMAND_FAILED', 'empty command');
  const timeoutMs = options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawnChild(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.replaceEnv ? (options.env ?? {}) : { ...process.env, ...options.env },
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin.on('error', () => {
      // the program may exit without reading its input; its exit status tells what happened
    });
    child.stdin.end(options.input ?? '');
    child.once('error', (err) => {
      clearTimeout(timer);
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new AmeshError('AMESH_COMMAND_FAILED', `${options.where}: cannot run \`${describeArgv(argv)}\`${missing ? `: ${command} is not installed` : ''}`, {
          cause: err,
          ...(missing ? { hint: 'the sandbox network needs iproute2 and util-linux (nsenter)' } : {}),
        }),
      );
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = {
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        code,
        signal,
        timedOut,
      };
      if ((code === 0 && !timedOut) || options.allowFailure) {
        resolve(result);
        return;
      }
      const why = timedOut ? `timed out after ${timeoutMs} ms` : code === null ? `killed by ${signal}` : `exited with ${code}`;
      reject(new AmeshError('AMESH_COMMAND_FAILED', `${options.where}: \`${describeArgv(argv)}\` ${why}: ${result.stderr.trim() || result.stdout.trim() || '(no output)'}`));
    });
  });
}
