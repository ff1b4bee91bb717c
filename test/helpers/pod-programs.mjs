#!/usr/bin/env node
/**
 * Tiny dependency-free programs that run inside pod (and node) network namespaces:
 * `node pod-programs.mjs <subcommand> [--flag value ...]`. Only Node built-ins, so they run
 * anywhere Node does (tests, the demo, benchmarks).
 *
 * Servers listen on 0.0.0.0 (or --bind) on every `--port` given (repeatable) and print one JSON
 * line per event on stdout: {"event":"listening","server":KIND,"port":P},
 * {"event":"connection","server":KIND,"local":"ip:port","remote":"ip:port"},
 * {"event":"done",...,"bytes":N}. They exit 0 on SIGTERM/SIGINT.
 *   echo-server   --port P   echoes everything, half-closes after the client does
 *   whoami-server --port P   writes {"local":"ip:port","remote":"ip:port"}\n, then closes
 *   sink-server   --port P   reads to EOF, then writes {"sha256":hex,"bytes":N}\n and closes
 *
 * Clients print one JSON result line on stdout, `ok` true only when the exchange was verified
 * (exit 0), else `error` (a code such as ECONNRESET, TIMEOUT, NO_REPLY) and `message` (exit 1):
 *   client --host H --port P [--expect echo|sink|whoami] [--expect-whoami]
 *          [--send-bytes N --seed S | --send TEXT [--repeat N]] [--timeout-ms T]
 *     echo (default): sends the payload (default a short line), checks the same bytes come back.
 *     sink (default with --send-bytes/--send): checks the server's sha256 and byte count.
 *     whoami: sends nothing, checks the reply names local and remote addresses.
 *   many-clients --host H --port P --count N [--expect echo|whoami] [--timeout-ms T]
 *                [--max-failures K]
 *     N short sequential connections (stopping after K failures; unattempted ones count as
 *     failures); prints {ok, count, attempted, successes, failures, errors}.
 *   hbone-probe --host H [--port 15008] --authority IP:PORT --cert F --key F --ca F
 *               [--message TEXT] [--timeout-ms T]
 *     HBONE by hand: TLS 1.3 + ALPN h2 with the given client certificate, one CONNECT stream
 *     to --authority carrying TEXT (then END_STREAM); reports `tls` (how far TLS got), the
 *     server's SAN, the CONNECT `status` and the tunnelled `reply` (JSON when it parses).
 *   http-get --url URL [--method GET|POST] [--timeout-ms T]
 *     prints {ok, status, body}; ok when any HTTP response arrived.
 *
 * Every client operation is bounded by --timeout-ms (default 10 s).
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import process from 'node:process';
import tls from 'node:tls';
import { clearTimeout, setTimeout } from 'node:timers';
import { URL } from 'node:url';

const CHUNK = 64 * 1024;
/** Replies longer than this are hashed, not kept (echo mode keeps only the hash). */
const MAX_KEPT_REPLY = 64 * 1024;

/** `--k v` pairs (a flag without value is `true`); the last occurrence wins, `all` keeps every one. */
function parseArgs(argv) {
  const flags = {};
  const all = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    const key = arg.slice(2);
    const next = argv[i + 1];
    let value = true;
    if (next !== undefined && !next.startsWith('--')) {
      value = next;
      i++;
    }
    flags[key] = value;
    (all[key] ??= []).push(value);
  }
  Object.defineProperty(flags, 'all', { value: all, enumerable: false });
  return flags;
}

function intFlag(flags, name, fallback) {
  const raw = flags[name];
  if (raw === undefined) {
    if (fallback === undefined) throw new Error(`--${name} is required`);
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} ${JSON.stringify(raw)}: expected a whole number`);
  return n;
}

function print(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const addr = (ip, port) => (ip === undefined ? undefined : `${ip.includes(':') ? `[${ip}]` : ip}:${port}`);
const errorInfo = (err) => ({ error: typeof err.code === 'string' ? err.code : 'ERROR', message: err.message });

/** Deterministic pseudo-random bytes: AES-128-CTR keystream keyed by sha256(seed). */
function* seededChunks(total, seed) {
  const key = createHash('sha256').update(String(seed)).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  for (let left = total; left > 0; left -= CHUNK) yield cipher.update(left >= CHUNK ? zeros : zeros.subarray(0, left));
}

// ---------------------------------------------------------------- servers

function serve(kind, flags, onSocket) {
  const ports = (flags.all.port ?? []).map((_, i) => intFlag({ port: flags.all.port[i] }, 'port'));
  if (ports.length === 0) throw new Error('--port is required');
  const bind = typeof flags.bind === 'string' ? flags.bind : '0.0.0.0';
  const sockets = new Set();
  const servers = ports.map((port) => {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      const info = { server: kind, local: addr(socket.localAddress, socket.localPort), remote: addr(socket.remoteAddress, socket.remotePort) };
      print({ event: 'connection', ...info });
      socket.on('error', (err) => print({ event: 'socket-error', ...info, ...errorInfo(err) }));
      socket.on('close', () => sockets.delete(socket));
      onSocket(socket, info);
    });
    server.on('error', (err) => {
      print({ event: 'fatal', server: kind, port, ...errorInfo(err) });
      process.exit(1);
    });
    server.listen({ port, host: bind }, () => print({ event: 'listening', server: kind, port: server.address().port }));
    return server;
  });
  const stop = () => {
    for (const server of servers) server.close();
    for (const s of sockets) s.destroy();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function echoServer(flags) {
  serve('echo-server', flags, (socket, info) => {
    let bytes = 0;
    socket.on('data', (chunk) => {
      bytes += chunk.length;
      if (!socket.write(chunk)) socket.pause();
    });
    socket.on('drain', () => socket.resume());
    socket.on('end', () => {
      socket.end();
      print({ event: 'done', ...info, bytes });
    });
  });
}

/** Writes 16 KiB chunks for as long as the connection lasts (a server mid-response when its client aborts). */
function firehoseServer(flags) {
  const chunk = Buffer.alloc(16 << 10, 'FIREHOSE-PLAINTEXT-');
  serve('firehose-server', flags, (socket) => {
    const pump = () => {
      while (!socket.destroyed && socket.write(chunk));
    };
    socket.on('drain', pump);
    socket.resume();
    pump();
  });
}

function whoamiServer(flags) {
  serve('whoami-server', flags, (socket, info) => {
    socket.end(`${JSON.stringify({ local: info.local, remote: info.remote })}\n`);
    // Keep reading whatever the client sends so closing never turns into a reset.
    socket.resume();
    socket.on('end', () => print({ event: 'done', ...info }));
  });
}

function sinkServer(flags) {
  serve('sink-server', flags, (socket, info) => {
    const hash = createHash('sha256');
    let bytes = 0;
    socket.on('data', (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    socket.on('end', () => {
      const sha256 = hash.digest('hex');
      socket.end(`${JSON.stringify({ sha256, bytes })}\n`);
      print({ event: 'done', ...info, bytes, sha256 });
    });
  });
}

// ---------------------------------------------------------------- clients

function payloadFor(flags, expect) {
  if (flags['send-bytes'] !== undefined) {
    const total = intFlag(flags, 'send-bytes');
    return { total, chunks: () => seededChunks(total, flags.seed ?? '0') };
  }
  const text = flags.send ?? flags.message;
  if (typeof text === 'string') {
    const repeat = intFlag(flags, 'repeat', 1);
    const data = Buffer.from(Array.from({ length: repeat }, () => text).join('\n'));
    return { total: data.length, chunks: () => [data] };
  }
  if (expect === 'whoami') return { total: 0, chunks: () => [] };
  const data = Buffer.from(`ping ${randomBytes(8).toString('hex')}\n`);
  return { total: data.length, chunks: () => [data] };
}

/** One connection; resolves (never rejects) with a verified-or-not result. */
function exchange({ host, port, expect, payload, timeoutMs }) {
  const started = Date.now();
  return new Promise((resolve) => {
    const sentHash = createHash('sha256');
    const gotHash = createHash('sha256');
    const kept = [];
    let keptBytes = 0;
    let receivedBytes = 0;
    let sentBytes = 0;
    let connected = false;
    let error;
    let local;
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      error = { error: 'TIMEOUT', message: `no complete exchange within ${timeoutMs} ms (connected: ${connected})` };
      socket.destroy();
    }, timeoutMs);

    const send = async () => {
      for (const chunk of payload.chunks()) {
        sentHash.update(chunk);
        sentBytes += chunk.length;
        if (!socket.write(chunk)) {
          await new Promise((r) => {
            socket.once('drain', r);
            socket.once('close', r);
          });
          if (socket.destroyed) return;
        }
      }
      if (expect !== 'whoami') socket.end();
    };

    socket.on('connect', () => {
      connected = true;
      local = addr(socket.localAddress, socket.localPort);
      void send();
    });
    socket.on('data', (chunk) => {
      receivedBytes += chunk.length;
      gotHash.update(chunk);
      if (keptBytes < MAX_KEPT_REPLY) {
        kept.push(chunk);
        keptBytes += chunk.length;
      }
    });
    socket.on('end', () => {
      if (!socket.writableEnded) socket.end();
    });
    socket.on('error', (err) => {
      error ??= errorInfo(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const replyText = Buffer.concat(kept).toString('utf8');
      const result = {
        ok: false,
        expect,
        target: addr(host, port),
        connected,
        local,
        sentBytes,
        sentSha256: sentHash.digest('hex'),
        receivedBytes,
        durationMs: Date.now() - started,
      };
      if (error) Object.assign(result, error);
      const got = gotHash.digest('hex');
      if (expect === 'echo') {
        result.receivedSha256 = got;
        result.ok = !error && receivedBytes === sentBytes && got === result.sentSha256;
        if (!error && !result.ok) Object.assign(result, { error: 'MISMATCH', message: `echoed ${receivedBytes} bytes (sha256 ${got}), sent ${sentBytes}` });
      } else {
        let reply;
        try {
          reply = JSON.parse(replyText);
        } catch {
          reply = undefined;
        }
        result.reply = reply ?? replyText.slice(0, 2000);
        if (expect === 'sink') {
          result.ok = !error && reply?.sha256 === result.sentSha256 && reply?.bytes === sentBytes;
        } else {
          result.ok = !error && typeof reply?.local === 'string' && typeof reply?.remote === 'string';
        }
        if (!error && !result.ok) Object.assign(result, { error: receivedBytes ? 'BAD_REPLY' : 'NO_REPLY', message: `unexpected reply ${JSON.stringify(replyText.slice(0, 200))}` });
      }
      resolve(result);
    });
  });
}

function clientOptions(flags) {
  const host = flags.host;
  if (typeof host !== 'string') throw new Error('--host is required');
  let expect = flags['expect-whoami'] ? 'whoami' : flags.expect;
  if (expect === undefined) expect = flags['send-bytes'] !== undefined || flags.send !== undefined || flags.message !== undefined ? 'sink' : 'echo';
  if (!['echo', 'sink', 'whoami'].includes(expect)) throw new Error(`--expect ${expect}: expected echo, sink or whoami`);
  return { host, port: intFlag(flags, 'port'), expect, timeoutMs: intFlag(flags, 'timeout-ms', 10_000) };
}

async function client(flags) {
  const opts = clientOptions(flags);
  const result = await exchange({ ...opts, payload: payloadFor(flags, opts.expect) });
  print(result);
  process.exitCode = result.ok ? 0 : 1;
}

async function manyClients(flags) {
  const opts = clientOptions(flags);
  const count = intFlag(flags, 'count');
  const maxFailures = intFlag(flags, 'max-failures', count);
  const started = Date.now();
  const errors = {};
  let successes = 0;
  let attempted = 0;
  let firstFailure;
  for (let i = 0; i < count && attempted - successes < maxFailures; i++) {
    attempted++;
    const result = await exchange({ ...opts, payload: payloadFor({}, opts.expect) });
    if (result.ok) successes++;
    else {
      const code = result.error ?? 'UNKNOWN';
      errors[code] = (errors[code] ?? 0) + 1;
      firstFailure ??= { index: i, ...result };
    }
  }
  const failures = count - successes;
  print({ ok: failures === 0, count, attempted, successes, failures, errors, ...(firstFailure ? { firstFailure } : {}), durationMs: Date.now() - started });
  process.exitCode = failures === 0 ? 0 : 1;
}

function httpGet(flags) {
  if (typeof flags.url !== 'string') throw new Error('--url is required');
  const timeoutMs = intFlag(flags, 'timeout-ms', 5_000);
  const method = typeof flags.method === 'string' ? flags.method : 'GET';
  const req = http.request(new URL(flags.url), { method, timeout: timeoutMs }, (res) => {
    const body = [];
    res.on('data', (chunk) => body.push(chunk));
    res.on('end', () => {
      const text = Buffer.concat(body).toString('utf8');
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      print({ ok: true, status: res.statusCode, body: json ?? text });
    });
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error(`no response within ${timeoutMs} ms`), { code: 'TIMEOUT' })));
  req.on('error', (err) => {
    print({ ok: false, ...errorInfo(err) });
    process.exitCode = 1;
  });
  req.end();
}

/**
 * HBONE by hand. `ok` needs the whole path: TLS accepted, CONNECT answered 200, the tunnelled
 * stream carried `--message` (if any) and ended. `tls` and `status` tell where it stopped, so a
 * test can tell "handshake refused" from "stream refused".
 */
function hboneProbe(flags) {
  for (const f of ['host', 'cert', 'key', 'ca', 'authority']) if (typeof flags[f] !== 'string') throw new Error(`--${f} is required`);
  const port = intFlag(flags, 'port', 15008);
  const timeoutMs = intFlag(flags, 'timeout-ms', 10_000);
  const started = Date.now();
  const state = { target: addr(flags.host, port), authority: flags.authority, tls: 'pending' };
  let session;
  let settled = false;
  const done = (ok, extra = {}) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    print({ ok, ...state, ...extra, durationMs: Date.now() - started });
    process.exitCode = ok ? 0 : 1;
    session?.destroy();
    socket.destroy();
  };
  const fail = (err) => done(false, { tls: state.tls === 'pending' ? 'failed' : state.tls, ...errorInfo(err) });
  const timer = setTimeout(() => fail({ code: 'TIMEOUT', message: `no result within ${timeoutMs} ms` }), timeoutMs);
  const socket = tls.connect({
    host: flags.host,
    port,
    cert: readFileSync(flags.cert),
    key: readFileSync(flags.key),
    ca: readFileSync(flags.ca),
    ALPNProtocols: ['h2'],
    minVersion: 'TLSv1.3',
    // The server's identity is reported, not enforced: the subject here is the server's verdict
    // on *our* certificate. No SNI is sent for an IP host, as HBONE requires.
    rejectUnauthorized: false,
  });
  socket.on('secureConnect', () => {
    const peer = socket.getPeerCertificate();
    Object.assign(state, {
      tls: 'handshaken',
      alpn: socket.alpnProtocol,
      serverVerified: socket.authorized,
      serverSan: peer?.subjectaltname,
    });
  });
  socket.on('error', fail);
  session = http2.connect(`https://${addr(flags.host, port)}`, { createConnection: () => socket });
  session.on('error', fail);
  session.on('close', () => fail({ code: 'SESSION_CLOSED', message: 'HTTP/2 session closed before the stream ended' }));
  const stream = session.request({ ':method': 'CONNECT', ':authority': flags.authority }, { endStream: false });
  const chunks = [];
  stream.on('response', (headers) => {
    state.status = headers[':status'];
    if (state.status !== 200) return fail({ code: 'STREAM_REFUSED', message: `CONNECT answered ${state.status}` });
    stream.end(typeof flags.message === 'string' ? flags.message : '');
  });
  stream.on('data', (chunk) => chunks.push(chunk));
  stream.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    let reply;
    try {
      reply = JSON.parse(text);
    } catch {
      reply = text.slice(0, 2000);
    }
    done(state.status === 200, { reply, receivedBytes: Buffer.byteLength(text) });
  });
  stream.on('error', fail);
}

/** Busy-waits `us` microseconds: a timer's resolution (1 ms) is too coarse for these races. */
function spin(us) {
  const until = process.hrtime.bigint() + BigInt(us) * 1000n;
  while (process.hrtime.bigint() < until);
}

/**
 * --count sequential connections to --host:--port; `act(socket, waitUs, i)` sets each one up,
 * with waitUs spread over 0…--spread-us. Prints how each ended: the error code, `closedAs` for
 * a plain close, TIMEOUT after 3 s.
 */
async function spreadConnections(flags, closedAs, act) {
  const host = flags.host;
  const port = intFlag(flags, 'port');
  const count = intFlag(flags, 'count');
  const spreadUs = intFlag(flags, 'spread-us', 2000);
  const outcomes = {};
  for (let i = 0; i < count; i++) {
    const waitUs = Math.floor((i * 7919) % (spreadUs + 1));
    const outcome = await new Promise((resolve) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve('TIMEOUT');
      }, 3000);
      socket.on('error', (err) => resolve(err.code ?? 'ERROR'));
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(closedAs);
      });
      act(socket, waitUs, i);
    });
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  print({ ok: true, count, outcomes });
}

/**
 * Connections whose first write lands at a spread of moments after connect, so some of them
 * cross a reset the proxy sends at once: --count N, --spread-us U (writes 0…U µs after connect).
 */
function racyClients(flags) {
  return spreadConnections(flags, 'CLOSED', (socket, waitUs, i) => {
    socket.on('connect', () => {
      spin(waitUs);
      socket.write(`GET / HTTP/1.1\r\nHost: racy-${i}\r\n\r\n`);
    });
    socket.resume();
  });
}

/**
 * Connections that each read the server's first bytes, then wait 0…--spread-us µs and abort
 * with a reset (socket.resetAndDestroy): --count N.
 */
function abortClients(flags) {
  return spreadConnections(flags, 'ABORTED', (socket, waitUs) => {
    socket.once('data', () => {
      spin(waitUs);
      socket.resetAndDestroy();
    });
  });
}

const COMMANDS = {
  'racy-clients': racyClients,
  'abort-clients': abortClients,
  'firehose-server': firehoseServer,
  'echo-server': echoServer,
  'whoami-server': whoamiServer,
  'sink-server': sinkServer,
  client,
  'many-clients': manyClients,
  'http-get': httpGet,
  'hbone-probe': hboneProbe,
};

const [command, ...rest] = process.argv.slice(2);
const handler = COMMANDS[command];
if (!handler) {
  process.stderr.write(`usage: pod-programs.mjs <${Object.keys(COMMANDS).join('|')}> [--flag value ...]\n`);
  process.exit(2);
}
try {
  await handler(parseArgs(rest));
} catch (err) {
  print({ ok: false, ...errorInfo(err) });
  process.exit(2);
}
