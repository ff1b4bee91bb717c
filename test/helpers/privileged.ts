/**
 * Guard for the privileged tier (STYLE.md §8: no silent skips). A privileged suite calls
 * `requireRoot()` at module level and hands the result to `describe.skipIf(!guard.run)`.
 *
 * - root: the suite runs.
 * - not root: the import throws a clear error, failing the file — a privileged test that cannot
 *   run must say so loudly. Set AMESH_ALLOW_UNPRIVILEGED_SKIP=1 to skip instead (a developer
 *   laptop); the reason is printed so the skip is never silent.
 *
 * Missing host tools (nsenter, tcpdump, ...) are treated the same way: they make the suite
 * unable to run, which is a failure unless skipping is explicitly allowed.
 */
import { execFileSync } from 'node:child_process';

export interface PrivilegeGuard {
  /** True when the suite can run. */
  run: boolean;
  /** Why it cannot (set when `run` is false). */
  reason?: string;
}

export const ALLOW_SKIP_ENV = 'AMESH_ALLOW_UNPRIVILEGED_SKIP';

export class PrivilegedTestUnavailableError extends Error {
  readonly code = 'PRIVILEGED_TEST_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'PrivilegedTestUnavailableError';
  }
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function missingTools(tools: readonly string[]): string[] {
  return tools.filter((tool) => {
    try {
      execFileSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * Checks that the calling suite can run: root, on Linux, with every tool in `tools` on PATH.
 * `suite` names the suite in the message ("l4 datapath").
 */
export function requireRoot(suite: string, options: { tools?: readonly string[] } = {}): PrivilegeGuard {
  let reason: string | undefined;
  if (process.platform !== 'linux') {
    reason = `needs Linux (network namespaces, eBPF); this is ${process.platform}`;
  } else if (!isRoot()) {
    reason = 'needs root (network namespaces, eBPF, tc); run the privileged tier with sudo';
  } else {
    const missing = missingTools(options.tools ?? []);
    if (missing.length > 0) reason = `needs these tools on PATH: ${missing.join(', ')} (scripts/setup.sh installs them)`;
  }
  if (reason === undefined) return { run: true };
  const message = `privileged suite "${suite}" cannot run: ${reason}`;
  if (process.env[ALLOW_SKIP_ENV] === '1') {
    console.warn(`SKIPPING ${message} (${ALLOW_SKIP_ENV}=1)`);
    return { run: false, reason };
  }
  throw new PrivilegedTestUnavailableError(`${message}. Set ${ALLOW_SKIP_ENV}=1 to skip it instead of failing.`);
}
