#!/usr/bin/env node
/**
 * Load for the agent hand-off test (test/privileged/agent-handoff.test.ts), run inside a pod
 * namespace against an echo server (pod-programs.mjs echo-server):
 *
 *   node handoff-load.mjs --host H --port P --connections 50 --chunk 2048 --interval-ms 100
 *        --probe-interval-ms 50 --stop-file F --max-seconds 110
 *
 * - `--connections` long-lived connections, each sending a deterministic byte stream (chunk
 *   bytes every interval) and checking that exactly the same bytes come back (echo), in order;
 * - a probe loop opening a NEW connection every `--probe-interval-ms`: sends a line, expects
 *   it back, closes; each records its outcome and how long it took (connect + echo);
 * - when `--stop-file` exists (or after --max-seconds), probes stop, every long-lived
 *   connection stops sending, waits for the rest of its echo, half-closes, waits for the
 *   server's FIN, and the program prints one JSON result line.
 *
 * Probe times (`at`) are ms since `startedEpochMs` (in the "established" line). Progress lines
 * {"event":"progress",...} every second. Only Node built-ins.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import process from 'node:process';

const flags = {};
for (let i = 2; i < process.argv.length; i += 2) flags[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const host = flags.host;
const port = Number(flags.port);
const connections = Number(flags.connections ?? 50);
const chunk = Number(flags.chunk ?? 2048);
const intervalMs = Number(flags['interval-ms'] ?? 100);
const probeIntervalMs = Number(flags['probe-interval-ms'] ?? 50);
const probeTimeoutMs = Number(flags['probe-timeout-ms'] ?? 15_000);
const stopFile = flags['stop-file'];
const maxSeconds = Number(flags['max-seconds'] ?? 110);
const started = Date.now();
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

/** Deterministic bytes of connection `id` from offset `offset` (xorshift per 4-byte word). */
function bytesFor(id, offset, length) {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    const n = offset + i;
    out[i] = (Math.imul(n ^ (id * 2654435761), 2246822519) >>> 13) & 0xff;
  }
  return out;
}

// ----------------------------------------------------------------------------- long-lived
const long = [];
function openLong(id) {
  return new Promise((resolve) => {
    const c = { id, sent: 0, received: 0, mismatchAt: -1, error: null, closedCleanly: false, sentHash: createHash('sha256'), receivedHash: createHash('sha256'), timer: null, done: null };
    long.push(c);
    const socket = net.connect({ host, port, allowHalfOpen: true });
    c.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      resolve();
      c.timer = setInterval(() => {
        if (socket.writableLength > 1 << 20) return; // bounded: never queue more than 1 MiB
        const data = bytesFor(id, c.sent, chunk);
        c.sentHash.update(data);
        c.sent += data.length;
        socket.write(data);
      }, intervalMs);
    });
    socket.on('data', (data) => {
      if (c.mismatchAt < 0 && !data.equals(bytesFor(id, c.received, data.length))) c.mismatchAt = c.received;
      c.receivedHash.update(data);
      c.received += data.length;
      if (c.onProgress) c.onProgress();
    });
    socket.on('error', (err) => {
      c.error = err.code ?? err.message;
      resolve();
    });
    socket.on('end', () => (c.ended = true));
    socket.on('close', () => {
      clearInterval(c.timer);
      c.closed = true;
      c.closedAt = Date.now();
      if (c.onProgress) c.onProgress();
    });
  });
}

/** Stop sending, wait for the echo of everything sent, half-close, wait for the server's FIN. */
function finishLong(c, timeoutMs) {
  clearInterval(c.timer);
  return new Promise((resolve) => {
    const deadline = setTimeout(() => {
      c.error ??= `FINISH_TIMEOUT (sent ${c.sent}, received ${c.received})`;
      c.socket.destroy();
      resolve();
    }, timeoutMs);
    let halfClosed = false;
    c.onProgress = () => {
      if (!halfClosed && c.received >= c.sent && !c.closed) {
        halfClosed = true;
        c.socket.end();
      }
      if (c.closed) {
        clearTimeout(deadline);
        c.closedCleanly = !c.error && c.ended && c.received === c.sent;
        resolve();
      }
    };
    c.onProgress();
  });
}

// ----------------------------------------------------------------------------- probes
const probes = { attempts: 0, ok: 0, failures: [], latencies: [] };
function probe() {
  const t0 = Date.now();
  const n = probes.attempts++;
  const line = `probe-${n}-${t0}\n`;
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    let got = '';
    const fail = (why) => {
      probes.failures.push({ n, at: t0 - started, why, ms: Date.now() - t0 });
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(() => fail('TIMEOUT'), probeTimeoutMs);
    socket.on('connect', () => socket.end(line));
    socket.setEncoding('utf8');
    socket.on('data', (d) => (got += d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      fail(err.code ?? err.message);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      if (got !== line) return fail(`BAD_ECHO ${JSON.stringify(got.slice(0, 40))}`);
      probes.ok++;
      probes.latencies.push({ at: t0 - started, ms: Date.now() - t0 });
      socket.destroy();
      resolve();
    });
  });
}

// ----------------------------------------------------------------------------- main
await Promise.all(Array.from({ length: connections }, (_, id) => openLong(id)));
print({ event: 'established', startedEpochMs: started, connections: long.filter((c) => !c.error).length, errors: long.filter((c) => c.error).map((c) => c.error) });
const inflight = new Set();
let stopping = false;
const probeTimer = setInterval(() => {
  if (stopping) return;
  const p = probe();
  inflight.add(p);
  void p.then(() => inflight.delete(p));
}, probeIntervalMs);
const progressTimer = setInterval(() => {
  print({ event: 'progress', t: Date.now() - started, sent: long.reduce((n, c) => n + c.sent, 0), received: long.reduce((n, c) => n + c.received, 0), closed: long.filter((c) => c.closed).length, probes: probes.attempts, probeFailures: probes.failures.length });
}, 1000);
while (!(stopFile && existsSync(stopFile)) && Date.now() - started < maxSeconds * 1000) await new Promise((r) => setTimeout(r, 100));
stopping = true;
clearInterval(probeTimer);
await Promise.all(inflight);
await Promise.all(long.map((c) => finishLong(c, 20_000)));
clearInterval(progressTimer);
const sorted = probes.latencies.map((l) => l.ms).sort((a, b) => a - b);
const q = (f) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] ?? null;
print({
  event: 'result',
  ok: true,
  seconds: (Date.now() - started) / 1000,
  long: {
    connections: long.length,
    sentBytes: long.reduce((n, c) => n + c.sent, 0),
    receivedBytes: long.reduce((n, c) => n + c.received, 0),
    intact: long.filter((c) => c.closedCleanly && c.mismatchAt < 0 && c.sentHash.digest('hex') === c.receivedHash.digest('hex')).length,
    problems: long.filter((c) => !c.closedCleanly || c.mismatchAt >= 0).map((c) => ({ id: c.id, error: c.error, sent: c.sent, received: c.received, mismatchAt: c.mismatchAt, ended: Boolean(c.ended), closedAt: c.closedAt ? c.closedAt - started : null })),
  },
  probes: { attempts: probes.attempts, ok: probes.ok, failures: probes.failures, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: sorted.at(-1) ?? null, slowest: [...probes.latencies].sort((a, b) => b.ms - a.ms).slice(0, 5), latencies: probes.latencies },
});
process.exit(0);
