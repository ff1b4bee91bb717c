/**
 * Tells capture when the node's links or routes change — a pod's veth deleted and recreated
 * (pod restart, new ifindex), a CNI adding the pod's /32 route — so the program is re-attached
 * at once instead of at the next mesh-state change (issue #10: within a second).
 *
 * Event-driven: `ip -o monitor link route` (rtnetlink multicast groups) in a child process; every
 * line it prints is a change. A tc filter or qdisc change prints nothing, so re-attaching does not
 * feed back into another pass. When `ip monitor` cannot run or exits, the watcher falls back to
 * polling `ip -j link show` + `ip -j route show` every `pollMs` (≤ 250 ms) and reports a change
 * when either differs. The watcher only signals; the caller debounces and reconciles.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { describeError } from '../../errors/amesh-error.js';
import type { CommandRunner } from '../../os/command.js';
import type { Logger } from '../../telemetry/logger.js';

export const LINK_POLL_MS = 250;

export interface LinkWatcher {
  readonly kind: 'monitor' | 'poll';
  close(): void;
}

export interface LinkWatcherOptions {
  commands: CommandRunner;
  logger: Logger;
  /** Called for every change seen (may be many per actual event; debounce in the caller). */
  onChange: (what: string) => void;
  pollMs?: number;
  /** Injected for tests: starts the monitor process (default `ip -o monitor link route`). */
  spawnMonitor?: () => ChildProcess;
}

/** Starts watching; never throws (falls back to polling). */
export function watchLinks(opts: LinkWatcherOptions): LinkWatcher {
  return new SwitchingWatcher(opts);
}

class SwitchingWatcher implements LinkWatcher {
  kind: 'monitor' | 'poll' = 'monitor';
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastFingerprint: string | undefined;

  constructor(private readonly opts: LinkWatcherOptions) {
    this.startMonitor();
  }

  private startMonitor(): void {
    const { logger, onChange } = this.opts;
    let child: ChildProcess;
    try {
      child = (this.opts.spawnMonitor ?? (() => spawn('ip', ['-o', 'monitor', 'link', 'route'], { stdio: ['ignore', 'pipe', 'pipe'] })))();
    } catch (err) {
      this.fallBack(`cannot start ip monitor: ${describeError(err)}`);
      return;
    }
    this.child = child;
    let partial = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) onChange(line.trim().slice(0, 200));
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-500)));
    child.on('error', (err) => this.fallBack(`ip monitor failed: ${describeError(err)}`));
    child.on('exit', (code, signal) => {
      if (!this.closed) this.fallBack(`ip monitor exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
    });
    // The agent's servers keep the process alive; this child must not.
    child.unref();
    (child.stdout as { unref?: () => void } | null)?.unref?.();
    (child.stderr as { unref?: () => void } | null)?.unref?.();
    logger.debug({ pid: child.pid }, 'capture: watching links and routes (ip monitor)');
  }

  private fallBack(reason: string): void {
    if (this.closed || this.kind === 'poll') return;
    this.kind = 'poll';
    this.child = undefined;
    const pollMs = Math.min(this.opts.pollMs ?? LINK_POLL_MS, LINK_POLL_MS);
    this.opts.logger.warn({ reason, pollMs }, `capture: link events unavailable, polling links and routes every ${pollMs} ms`);
    const tick = async (): Promise<void> => {
      try {
        const fingerprint = await this.fingerprint();
        if (this.lastFingerprint !== undefined && fingerprint !== this.lastFingerprint) this.opts.onChange('poll: links or routes changed');
        this.lastFingerprint = fingerprint;
      } catch (err) {
        this.opts.logger.debug({ err: describeError(err) }, 'capture: link poll failed');
      }
      if (!this.closed) this.timer = setTimeout(() => void tick(), pollMs).unref();
    };
    void tick();
  }

  /** Names with ifindexes and oper state, plus the main routing table. */
  private async fingerprint(): Promise<string> {
    const { commands } = this.opts;
    const links = JSON.parse((await commands.run('ip', ['-j', 'link', 'show'])).stdout) as Array<{ ifindex: number; ifname: string; operstate?: string }>;
    const routes = (await commands.run('ip', ['-j', 'route', 'show'], { allowFailure: true })).stdout;
    return `${links.map((l) => `${l.ifindex}:${l.ifname}:${l.operstate ?? ''}`).join(',')}|${routes}`;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    this.child = undefined;
  }
}
