/**
 * The open-loop schedule, run: the part both load generators share (load/open-loop-client.ts for
 * `npm run bench`, node:http; load/soak-load-client.ts for `npm run soak`, raw sockets). The model
 * is open-loop.ts's: request i is due at t0 + i/rate whatever happened to earlier ones, goes to
 * connection i mod N, and waits in that connection's queue while the connection carries an
 * earlier request (HTTP/1.1, one in flight). A queue holds at most `maxBacklog` requests; a
 * request due when its queue is full is dropped (never sent) and reported as such.
 *
 * Guarantees: every request in [0, total) is reported exactly once — `finished` (sent and
 * answered or failed), `dropped`, or counted in `end`'s unsent / in-flight numbers when the
 * deadline comes first. `end` is called once, after which no hook runs.
 */
import { performance } from 'node:perf_hooks';
import { connectionFor, dueOffsetMs } from './open-loop.js';
import { ScheduleClock } from './schedule-clock.js';

/** Connections that carry one request at a time. */
export interface OpenLoopTransport {
  readonly connections: number;
  /** Sends one request on `connection`; calls `done` exactly once: undefined for a complete 200, else an error kind. */
  send(connection: number, done: (code: string | undefined) => void): void;
}

export interface OpenLoopSchedule {
  rate: number;
  /** Requests scheduled. */
  total: number;
  /** Requests queued per connection at most (Infinity: unbounded). */
  maxBacklog: number;
  /** After t0: requests unanswered by then are given up. */
  deadlineMs: number;
}

export interface OpenLoopHooks {
  /** Request `index` came due `lagMs` ago (the generator's own lateness), whether sent or queued. */
  due?(index: number, lagMs: number): void;
  /** Request `index` was written to its connection. */
  sent?(index: number): void;
  /** Request `index` was answered (`code` undefined) or failed, `latencyMs` after its due time. */
  finished(index: number, code: string | undefined, latencyMs: number, now: number): void;
  /** Request `index` was not sent: its connection's queue was full. */
  dropped(index: number): void;
  /** Called once: all requests accounted for (0, 0), or the deadline with `unsent` queued or never due and `inFlight` unanswered. */
  end(unsent: number, inFlight: number): void;
}

/** Sends one request on every connection at once (opening them, and any tunnel, before the clock starts); the first error, if any. */
export async function preflight(transport: OpenLoopTransport): Promise<string | undefined> {
  const codes = await Promise.all(Array.from({ length: transport.connections }, (_, c) => new Promise<string | undefined>((resolve) => transport.send(c, resolve))));
  return codes.find((code) => code !== undefined);
}

export class OpenLoop {
  private readonly queues: number[][];
  private readonly busy: boolean[];
  private next = 0;
  private finishedCount = 0;
  private ended = false;
  private readonly deadline: NodeJS.Timeout;

  private constructor(
    private readonly transport: OpenLoopTransport,
    private readonly schedule: OpenLoopSchedule,
    private readonly hooks: OpenLoopHooks,
    private readonly clock: ScheduleClock,
    /** performance.now() of request 0's due time. */
    readonly t0: number,
  ) {
    this.queues = Array.from({ length: transport.connections }, () => []);
    this.busy = new Array<boolean>(transport.connections).fill(false);
    this.deadline = setTimeout(() => this.giveUp(), t0 - performance.now() + schedule.deadlineMs);
  }

  /** Starts the schedule 20 ms from now (time for the clock's thread to start). */
  static async start(transport: OpenLoopTransport, schedule: OpenLoopSchedule, hooks: OpenLoopHooks): Promise<OpenLoop> {
    // Wakes us at each due time with sub-millisecond precision (see schedule-clock-worker.ts).
    const ticks: { loop?: OpenLoop } = {};
    const t0 = performance.now() + 20;
    const clock = await ScheduleClock.start({ t0, rate: schedule.rate, total: schedule.total }, () => ticks.loop?.tick());
    ticks.loop = new OpenLoop(transport, schedule, hooks, clock, t0);
    return ticks.loop;
  }

  due(index: number): number {
    return this.t0 + dueOffsetMs(index, this.schedule.rate);
  }

  /** Stops scheduling (no hook runs after this). */
  stop(): void {
    this.ended = true;
    clearTimeout(this.deadline);
    void this.clock.close();
  }

  private tick(): void {
    if (this.ended) return;
    const now = performance.now();
    const { total, maxBacklog } = this.schedule;
    while (this.next < total && this.due(this.next) <= now) {
      const index = this.next++;
      this.hooks.due?.(index, now - this.due(index));
      const connection = connectionFor(index, this.transport.connections);
      if (!this.busy[connection]) this.send(index, connection);
      else if (this.queues[connection]!.length < maxBacklog) this.queues[connection]!.push(index);
      else {
        this.hooks.dropped(index);
        this.countFinished();
      }
    }
    this.clock.sent(this.next);
  }

  private send(index: number, connection: number): void {
    this.busy[connection] = true;
    this.hooks.sent?.(index);
    this.transport.send(connection, (code) => {
      if (this.ended) return;
      const now = performance.now();
      this.hooks.finished(index, code, now - this.due(index), now);
      const queued = this.queues[connection]!.shift();
      if (queued !== undefined) this.send(queued, connection);
      else this.busy[connection] = false;
      this.countFinished();
      // Awake anyway: send what came due meanwhile without waiting for the alarm.
      if (this.next < this.schedule.total && this.due(this.next) <= now) this.tick();
    });
  }

  private countFinished(): void {
    if (++this.finishedCount === this.schedule.total) this.finish(0, 0);
  }

  private giveUp(): void {
    if (this.ended) return;
    // Still queued (or never due): not sent — the generator's backlog, not the path's failures.
    const unsent = this.queues.reduce((n, q) => n + q.length, 0) + (this.schedule.total - this.next);
    this.finish(unsent, this.schedule.total - this.finishedCount - unsent);
  }

  private finish(unsent: number, inFlight: number): void {
    if (this.ended) return;
    this.stop();
    this.hooks.end(unsent, inFlight);
  }
}
