/**
 * The open-loop generator's clock thread (load/schedule-clock.ts is its main-thread side). Node's
 * timers have 1 ms granularity (the event loop waits in epoll with a millisecond timeout), which
 * at 1000 req/s would make almost every request ~0.5–1 ms late — more than the latency being
 * measured. This thread knows the schedule (request i due at t0 + i × 1000 / rate), sleeps in the
 * kernel until the next request the main thread has not sent yet comes due (Atomics.wait takes a
 * fractional millisecond timeout), and then posts one message, which wakes the main loop at once.
 *
 * The main thread never messages or notifies this thread: an earlier version re-armed a waker by
 * postMessage (then by Atomics.notify) after each request, and that cost as much CPU as the
 * request itself (~25–40 µs, profiled at 2 000 req/s). Instead it publishes in shared memory
 * `next`, the first request it has not sent (it also sends on the back of I/O, so many requests
 * never need a ring), and clears `ringing` when it takes a message. A ring is skipped while the
 * previous one has not been taken: the main thread sends everything due when it takes it.
 *
 * Layout (workerData.shared): Int32 `closed` at byte 0, Int32 `ringing` at byte 4, Float64
 * `next` at byte 8.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

const { shared, t0Epoch, rate, total } = workerData as { shared: SharedArrayBuffer; t0Epoch: number; rate: number; total: number };
const flags = new Int32Array(shared, 0, 2);
const next = new Float64Array(shared, 8, 1);
const now = (): number => performance.timeOrigin + performance.now();
const due = (index: number): number => t0Epoch + (index * 1000) / rate;

// The request this thread is waiting for: never behind the main thread's `next`.
let index = 0;
while (Atomics.load(flags, 0) === 0) {
  index = Math.max(index, next[0]!);
  if (index >= total) break;
  const delay = due(index) - now();
  if (delay > 0) {
    Atomics.wait(flags, 0, 0, delay);
    continue;
  }
  // Due: wake the main thread unless a ring is already waiting for it (it will send this one too).
  if (Atomics.compareExchange(flags, 1, 0, 1) === 0) parentPort?.postMessage(0);
  index++;
}
