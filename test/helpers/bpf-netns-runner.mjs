// A JSON-lines RPC server over stdin/stdout that performs native-addon and socket steps inside
// the network namespace it was started in (`nsenter --net=/run/netns/NAME node <this file>
// <addon>`), so the BPF program's socket lookups see only that namespace. Each request line is
// {id, op, ...args}; each reply line is {id, ok} or {id, error, code, errno, syscall}.
// On stdin EOF every fd is closed and every object unloaded, then the process exits.
//
// Plain JavaScript: it runs under bare `node` (no TypeScript loader) inside the namespace.
import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import net from 'node:net';
import process from 'node:process';
import readline from 'node:readline';
import { clearTimeout, setTimeout } from 'node:timers';

const native = createRequire(import.meta.url)(process.argv[2]);

const objects = new Map(); // name → LoadedBpfObject
const fds = new Map(); // name → raw fd (not yet handed to Node)
const servers = new Map(); // name → { server, accepted[] }
const sockets = new Set();
const hex = (s) => Buffer.from(s, 'hex');

function objectOf(name) {
  const obj = objects.get(name);
  if (!obj) throw new Error(`no object ${name}`);
  return obj;
}

function mapOf(objectName, mapName) {
  const map = objectOf(objectName).maps.find((m) => m.name === mapName);
  if (!map) throw new Error(`object ${objectName} has no map ${mapName}`);
  return map;
}

/** A program's fd by name: the tc program by default (the object also holds the sk_lookup one). */
function progFd(objectName, programName = 'amesh_capture') {
  const program = objectOf(objectName).programs.find((p) => p.name === programName);
  if (!program) throw new Error(`object ${objectName} has no program ${programName}`);
  return program.fd;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what}: timed out after ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const ops = {
  load({ name, path, pinRoot, rodata }) {
    const obj = native.loadObject({ path, pinRoot, rodata: Object.fromEntries(Object.entries(rodata ?? {}).map(([k, v]) => [k, hex(v)])) });
    objects.set(name, obj);
    return {
      programs: obj.programs.map((p) => p.name),
      maps: obj.maps.map(({ name: n, keySize, valueSize, maxEntries }) => ({ name: n, keySize, valueSize, maxEntries })),
    };
  },
  close({ name }) {
    native.closeObject(objectOf(name).id);
    objects.delete(name);
    return true;
  },
  mapUpdate({ object, map, key, value }) {
    native.mapUpdate(mapOf(object, map).fd, hex(key), hex(value));
    return true;
  },
  mapDelete({ object, map, key }) {
    return native.mapDelete(mapOf(object, map).fd, hex(key));
  },
  mapLookup({ object, map, key }) {
    const m = mapOf(object, map);
    return native.mapLookup(m.fd, hex(key), m.valueSize)?.toString('hex') ?? null;
  },
  mapKeys({ object, map }) {
    const m = mapOf(object, map);
    return native.mapKeys(m.fd, m.keySize).map((k) => k.toString('hex'));
  },
  /** Sums of the per-CPU counters of a __u64 array map, by index (zeros left out). */
  counters({ object, map }) {
    const m = mapOf(object, map);
    const out = {};
    for (let index = 0; index < m.maxEntries; index++) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(index);
      const per = native.mapLookupPerCpu(m.fd, key, 8) ?? [];
      const total = per.reduce((sum, b) => sum + Number(b.readBigUInt64LE(0)), 0);
      if (total) out[index] = total;
    }
    return out;
  },
  /** A transparent listener fd; with `serve`, a net.Server on it that echoes and records peers. */
  async listen({ name, family, address, port, mark, serve }) {
    const fd = native.createTransparentListener(family, address, port, mark, 64);
    const socketMark = native.getSocketMark(fd);
    if (!serve) {
      fds.set(name, fd);
      return { fd, mark: socketMark };
    }
    const accepted = [];
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      accepted.push({ localAddress: socket.localAddress, localPort: socket.localPort, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      socket.pipe(socket);
    });
    server.listen({ fd });
    await once(server, 'listening');
    servers.set(name, { server, accepted });
    return { fd, mark: socketMark };
  },
  /** SO_COOKIE of a listener made by `listen` without `serve`, as a decimal string. */
  cookie({ name }) {
    const fd = fds.get(name);
    if (fd === undefined) throw new Error(`no listener fd ${name}`);
    return native.socketCookie(fd).toString();
  },
  /** BPF_PROG_TEST_RUN of an sk_lookup program: its verdict and the selected socket's cookie ('0': none). */
  skLookup({ object, program, ctx, repeat }) {
    const r = native.progTestRunSkLookup(progFd(object, program), hex(ctx), repeat ?? 1);
    return { retval: r.retval, cookie: r.ctxOut.readBigUInt64LE(0).toString() };
  },
  accepted({ name }) {
    return servers.get(name)?.accepted ?? [];
  },
  async unlisten({ name }) {
    const s = servers.get(name);
    if (s) {
      servers.delete(name);
      await new Promise((resolve) => s.server.close(resolve));
      return true;
    }
    native.closeFd(fds.get(name));
    fds.delete(name);
    return true;
  },
  /** Connect, send `payload`, wait for the echo; reports what happened instead of throwing. */
  async clientConnect({ host, port, payload, timeoutMs }) {
    const socket = net.connect({ host, port });
    sockets.add(socket);
    try {
      await withTimeout(once(socket, 'connect'), timeoutMs, `connect ${host}:${port}`);
      socket.write(payload);
      let echoed = '';
      await withTimeout(
        new Promise((resolve) => {
          socket.on('data', (d) => {
            echoed += d.toString();
            if (echoed.length >= payload.length) resolve();
          });
        }),
        timeoutMs,
        'echo',
      );
      return { connected: true, echoed, localAddress: socket.localAddress, localPort: socket.localPort };
    } catch (err) {
      return { connected: false, error: err.code ?? err.message };
    } finally {
      socket.destroy();
      sockets.delete(socket);
    }
  },
  /** An established loopback TCP connection (for the established fast path). */
  async tcpPair({ family }) {
    const host = family === 6 ? '::1' : '127.0.0.1';
    const server = net.createServer((s) => sockets.add(s));
    server.listen(0, host);
    await once(server, 'listening');
    const client = net.connect({ host, port: server.address().port });
    sockets.add(client);
    await once(client, 'connect');
    server.close();
    return { clientPort: client.localPort, serverPort: server.address()?.port ?? client.remotePort };
  },
  run({ object, packet, repeat }) {
    const r = native.progTestRun(progFd(object), hex(packet), repeat ?? 1);
    return { retval: r.retval, mark: r.mark, dataOut: r.dataOut.toString('hex') };
  },
  ifindex({ name }) {
    return native.ifNameToIndex(name);
  },
  progId({ object }) {
    return native.progId(progFd(object));
  },
  tcAttach({ object, ifindex, handle, priority }) {
    return native.tcAttachIngress(ifindex, progFd(object), handle, priority);
  },
  tcDetach({ ifindex, handle, priority }) {
    return native.tcDetachIngress(ifindex, handle, priority);
  },
  tcQuery({ ifindex, handle, priority }) {
    return native.tcQueryIngress(ifindex, handle, priority);
  },
};

function cleanup() {
  for (const s of sockets) s.destroy();
  for (const { server } of servers.values()) server.close();
  for (const fd of fds.values()) {
    try {
      native.closeFd(fd);
    } catch {
      // already closed
    }
  }
  for (const obj of objects.values()) native.closeObject(obj.id);
}

const lines = readline.createInterface({ input: process.stdin });
const pending = [];
lines.on('line', (line) => {
  if (!line.trim()) return;
  const { id, op, ...args } = JSON.parse(line);
  pending.push(
    (async () => {
      try {
        if (!ops[op]) throw new Error(`unknown op ${op}`);
        const ok = await ops[op](args);
        process.stdout.write(`${JSON.stringify({ id, ok: ok ?? null })}\n`);
      } catch (err) {
        process.stdout.write(`${JSON.stringify({ id, error: err.message, code: err.code, errno: err.errno, syscall: err.syscall })}\n`);
      }
    })(),
  );
});
lines.on('close', async () => {
  await Promise.allSettled(pending);
  cleanup();
  process.exit(0);
});
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
