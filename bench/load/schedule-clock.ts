/**
 * Sub-millisecond wake-ups for the open-loop generator (load/open-loop-driver.ts): `onRing` is
 * called when a request of the schedule (request i due at t0 + i × 1000 / rate) comes due that
 * the caller has not sent yet — the caller reports its progress with `sent(next)`. A worker
 * thread (load/schedule-clock-worker.ts, which says why it is built this way) sleeps until then
 * in the kernel, so waiting costs no CPU and wakes are not rounded to Node's 1 ms timers.
 */
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

export class ScheduleClockError extends Error {
  readonly code = 'BENCH_SCHEDULE_CLOCK';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ScheduleClockError';
  }
}

export interface ClockSchedule {
  /** performance.now() (of this thread) when request 0 is due. */
  t0: number;
  rate: number;
  total: number;
}

export class ScheduleClock {
  /** [closed, ringing] (see schedule-clock-worker.ts). */
  private readonly flags: Int32Array;
  private readonly next: Float64Array;

  private constructor(
    private readonly worker: Worker,
    shared: SharedArrayBuffer,
  ) {
    this.flags = new Int32Array(shared, 0, 2);
    this.next = new Float64Array(shared, 8, 1);
  }

  static async start(schedule: ClockSchedule, onRing: () => void): Promise<ScheduleClock> {
    const shared = new SharedArrayBuffer(16);
    const workerData = { shared, t0Epoch: performance.timeOrigin + schedule.t0, rate: schedule.rate, total: schedule.total };
    const worker = new Worker(new URL('./schedule-clock-worker.js', import.meta.url), { workerData });
    const failed = new Promise<never>((_, reject) => worker.once('error', (err) => reject(new ScheduleClockError(`the schedule clock's worker failed: ${err.message}`, { cause: err }))));
    await Promise.race([once(worker, 'online'), failed]);
    const clock = new ScheduleClock(worker, shared);
    worker.on('message', () => {
      Atomics.store(clock.flags, 1, 0);
      onRing();
    });
    return clock;
  }

  /** Requests before `next` have been sent (or dropped): no ring for them. */
  sent(next: number): void {
    this.next[0] = next;
  }

  async close(): Promise<void> {
    Atomics.store(this.flags, 0, 1);
    Atomics.notify(this.flags, 0);
    await this.worker.terminate();
  }
}
