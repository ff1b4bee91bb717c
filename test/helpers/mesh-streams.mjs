#!/usr/bin/env node
/**
 * Long-lived streams and new-connection probes against an echo server, for "no byte lost, no
 * reset" checks across node-agent restarts (issue #10) and faults (issue #12). Only Node
 * built-ins; runs inside a pod's network namespace (`amesh sandbox exec ns/pod -- node
 * mesh-streams.mjs ...`).
 *
 *   node mesh-streams.mjs --host H --port P [--count 50] [--duration-ms 20000]
 *        [--interval-ms 100] [--chunk 512] [--probe-interval-ms 250] [--stop-file F]
 *        [--timeout-ms 180000]
 *
 * Streams: `count` connections, each writing `chunk` deterministic bytes every `interval-ms` for
 * `duration-ms`, then half-closing; every byte echoed back is compared with what was sent at that
 * offset, and a stream is complete when the server's half-close arrives after exactly all bytes
 * and after the client's own half-close. A stream the server ends before the client finished is
 * not complete even when every byte so far came back (a path that closes the client gracefully
 * instead of resetting it would otherwise pass as whole).
 * Probes: a new connection every `probe-interval-ms` (one line, echoed back within 3 s) until the
 * streams are done AND `stop-file` exists (or `timeout-ms`). Prints JSON lines: `progress` every
 * 2 s, then one `result` {ok, streams, bytes, probes}.
 * Result errors carry `code`: EARLY_FIN (server's FIN before the client's, bytes intact so far),
 * SHORT (server's FIN with bytes missing), MISMATCH (a wrong byte), CLOSED, or a socket error
 * code (ECONNRESET, …). Exit 0 only when every stream completed and every probe succeeded.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import process from 'node:process';

function flags(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i]?.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(argv[i])}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

const f = flags(process.argv.slice(2));
const host = f.host;
const port = Number(f.port);
const count = Number(f.count ?? 50);
const durationMs = Number(f['duration-ms'] ?? 20_000);
const intervalMs = Number(f['interval-ms'] ?? 100);
const chunk = Number(f.chunk ?? 512);
const probeIntervalMs = Number(f['probe-interval-ms'] ?? 250);
const stopFile = f['stop-file'];
const timeoutMs = Number(f['timeout-ms'] ?? 180_000);
if (!host || !Number.isInteger(port)) {
  process.stderr.write('usage: mesh-streams.mjs --host H --port P [...]\n');
  process.exit(2);
}
const started = Date.now();
const since = () => Date.now() - started;
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

/** Byte `i` of stream `s`: varies with both so a byte from another stream or offset is caught. */
const byteAt = (s, i) => (i * 31 + s * 7 + (i >>> 8) * 13) & 0xff;
function bytes(s, from, n) {
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) b[k] = byteAt(s, from + k);
  return b;
}

const streams = [];
function openStream(s) {
  const st = { id: s, sent: 0, received: 0, complete: false, clientEnded: false, error: undefined, mismatchAt: undefined, connectedAt: undefined, closedAt: undefined };
  streams.push(st);
  const socket = net.connect({ host, port, noDelay: true });
  let timer;
  const fail = (error) => {
    if (!st.error && !st.complete) st.error = { ...error, atMs: since() };
  };
  socket.on('connect', () => {
    st.connectedAt = since();
    timer = setInterval(() => {
      if (Date.now() - started - st.connectedAt >= durationMs) {
        clearInterval(timer);
        st.clientEnded = true;
        socket.end();
        return;
      }
      socket.write(bytes(s, st.sent, chunk));
      st.sent += chunk;
    }, intervalMs);
  });
  socket.on('data', (data) => {
    if (st.mismatchAt === undefined) {
      const want = bytes(s, st.received, data.length);
      if (!want.equals(data)) {
        let k = 0;
        while (k < data.length && data[k] === want[k]) k++;
        st.mismatchAt = st.received + k;
        fail({ code: 'MISMATCH', message: `byte ${st.mismatchAt} differs` });
      }
    }
    st.received += data.length;
  });
  socket.on('end', () => {
    if (!st.clientEnded) fail({ code: st.received === st.sent ? 'EARLY_FIN' : 'SHORT', message: `server ended after ${st.received} of ${st.sent} bytes, before the client finished` });
    else if (st.received === st.sent && st.sent > 0 && st.mismatchAt === undefined && !st.error) st.complete = true;
    else fail({ code: 'SHORT', message: `server ended after ${st.received} of ${st.sent} bytes` });
    socket.end();
  });
  socket.on('error', (err) => fail({ code: err.code ?? 'ERROR', message: err.message }));
  socket.on('close', () => {
    clearInterval(timer);
    st.closedAt = since();
    if (!st.complete) fail({ code: 'CLOSED', message: `closed after ${st.received} of ${st.sent} bytes` });
  });
}

const probes = { ok: 0, failed: 0, errors: [], maxMs: 0 };
function probe(n) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const line = `probe ${n}\n`;
    let got = '';
    let settled = false;
    const done = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) {
        probes.failed++;
        if (probes.errors.length < 20) probes.errors.push({ n, atMs: since(), ...error });
      } else {
        probes.ok++;
        probes.maxMs = Math.max(probes.maxMs, Date.now() - t0);
      }
      resolve();
    };
    const socket = net.connect({ host, port, noDelay: true }, () => socket.write(line));
    const timer = setTimeout(() => done({ code: 'TIMEOUT', message: `no echo within 3 s (got ${JSON.stringify(got)})` }), 3_000);
    socket.on('data', (d) => {
      got += d.toString();
      if (got === line) done();
      else if (!line.startsWith(got)) done({ code: 'MISMATCH', message: JSON.stringify(got) });
    });
    socket.on('error', (err) => done({ code: err.code ?? 'ERROR', message: err.message }));
    socket.on('close', () => done({ code: 'CLOSED', message: `closed after ${JSON.stringify(got)}` }));
  });
}

const streamsDone = () => streams.length === count && streams.every((s) => s.closedAt !== undefined);
const summary = () => ({
  streams: {
    count,
    complete: streams.filter((s) => s.complete).length,
    failed: streams.filter((s) => s.error).length,
    errors: streams.filter((s) => s.error).slice(0, 20).map((s) => ({ stream: s.id, sent: s.sent, received: s.received, ...s.error })),
  },
  bytes: { sent: streams.reduce((a, s) => a + s.sent, 0), received: streams.reduce((a, s) => a + s.received, 0) },
  probes: { ...probes, errors: probes.errors },
});

for (let s = 0; s < count; s++) openStream(s);
const progress = setInterval(() => {
  const x = summary();
  print({ event: 'progress', atMs: since(), open: streams.filter((s) => s.closedAt === undefined).length, complete: x.streams.complete, failed: x.streams.failed, sent: x.bytes.sent, received: x.bytes.received, probesOk: probes.ok, probesFailed: probes.failed });
}, 2_000);

let n = 0;
while (since() < timeoutMs && !(streamsDone() && (!stopFile || existsSync(stopFile)))) {
  const next = Date.now() + probeIntervalMs;
  await probe(++n);
  await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
}
clearInterval(progress);
const result = summary();
const ok = result.streams.complete === count && result.streams.failed === 0 && probes.failed === 0 && probes.ok > 0 && since() < timeoutMs;
print({ event: 'result', ok, atMs: since(), ...result });
process.exit(ok ? 0 : 1);
