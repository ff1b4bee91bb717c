/**
 * Sub-millisecond wake-ups for the open-loop generator. Node's timers have 1 ms granularity (the
 * event loop waits in epoll with a millisecond timeout), which at 1000 req/s would make almost
 * every request ~0.5–1 ms late — more than the latency being measured. This worker sleeps for the
 * exact fractional delay the main thread asks for (Atomics.wait takes a fractional millisecond
 * timeout) and then posts back, which wakes the main loop at once. It sleeps in the kernel, so
 * unlike a spin loop it costs almost no CPU on a machine whose cores the proxies need.
 *
 * Protocol: the main thread posts a delay in ms and waits for the reply before posting again.
 */
import { parentPort } from 'node:worker_threads';

const cell = new Int32Array(new SharedArrayBuffer(4));
parentPort?.on('message', (delayMs: number) => {
  if (delayMs > 0) Atomics.wait(cell, 0, 0, delayMs);
  parentPort?.postMessage(0);
});
