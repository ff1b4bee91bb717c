/**
 * Keeps the sandbox daemon (API server, controllers, kubelets, DNS: src/sandbox/daemon.ts)
 * running. `amesh sandbox daemon` is this supervisor; it runs the daemon as its child and starts
 * it again when the child dies without being asked to (a crash, an OOM kill, `kill -9`), as
 * systemd's `Restart=on-failure` keeps a kube-apiserver running. The restarted daemon loads the
 * store's last snapshot and its kubelets start the pods again (src/sandbox/kubelet/kubelet.ts).
 *
 * Invariants:
 * - At most one child at a time; the next starts only after the previous one exited.
 * - SIGTERM/SIGINT to the supervisor go to the child; the supervisor ends when the child has,
 *   and starts nothing more. `sandbox down` signals the supervisor (its pid is the state's
 *   daemonPid), so shutdown is unchanged.
 * - A child that exits 0 was stopped on purpose (its own signal handler): not restarted.
 * - Crash loops back off: `minBackoffMs` after a crash, doubled per crash in a row up to
 *   `maxBackoffMs`; a child that ran `stableMs` resets the delay.
 */
import type { Logger } from 'pino';

/** What the supervisor needs of a child process (node's ChildProcess has it; tests pass fakes). */
export interface SupervisedChild {
  readonly pid?: number | undefined;
  kill(signal: NodeJS.Signals): boolean;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}

export interface SupervisorOptions {
  /** Starts one daemon child. */
  spawnChild: () => SupervisedChild;
  log: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  stableMs?: number;
  now?: () => number;
}

export interface DaemonSupervisor {
  /** The running child's pid (undefined between a crash and the restart). */
  childPid(): number | undefined;
  /** How many times the child was started again after dying. */
  restarts(): number;
  /** Forwards `signal` to the child and starts no other; resolves with the exit code to end with. */
  stop(signal: NodeJS.Signals): Promise<number>;
  /** Resolves with the exit code once the supervisor is done (stopped, or the child exited 0). */
  done: Promise<number>;
}

export const DAEMON_RESTART_MIN_BACKOFF_MS = 1_000;
export const DAEMON_RESTART_MAX_BACKOFF_MS = 30_000;
/** A child that ran this long was healthy: the next crash waits the minimum again. */
export const DAEMON_STABLE_MS = 60_000;

export function superviseDaemon(o: SupervisorOptions): DaemonSupervisor {
  const minBackoff = o.minBackoffMs ?? DAEMON_RESTART_MIN_BACKOFF_MS;
  const maxBackoff = o.maxBackoffMs ?? DAEMON_RESTART_MAX_BACKOFF_MS;
  const stableMs = o.stableMs ?? DAEMON_STABLE_MS;
  const now = o.now ?? Date.now;
  let child: SupervisedChild | undefined;
  let stopping = false;
  let restarts = 0;
  let backoff = minBackoff;
  let restartTimer: NodeJS.Timeout | undefined;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));

  const start = (): void => {
    restartTimer = undefined;
    if (stopping) return;
    const startedAt = now();
    const current = o.spawnChild();
    child = current;
    o.log.info({ pid: current.pid, restarts }, 'sandbox daemon started');
    current.once('exit', (code, signal) => {
      child = undefined;
      if (stopping || code === 0) {
        if (!stopping) o.log.info('the sandbox daemon stopped on its own; the supervisor ends too');
        finish(code ?? 1);
        return;
      }
      const ranMs = now() - startedAt;
      if (ranMs >= stableMs) backoff = minBackoff;
      o.log.error({ pid: current.pid, code, signal, ranMs, restartInMs: backoff }, 'the sandbox daemon (API server, controllers, kubelets) died; starting it again');
      restarts++;
      restartTimer = setTimeout(start, backoff);
      backoff = Math.min(backoff * 2, maxBackoff);
    });
  };
  start();

  return {
    childPid: () => child?.pid,
    restarts: () => restarts,
    done,
    stop: (signal) => {
      if (!stopping) {
        stopping = true;
        if (restartTimer) clearTimeout(restartTimer);
        if (child) child.kill(signal);
        else finish(0);
      }
      return done;
    },
  };
}
