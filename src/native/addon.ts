/**
 * The only module that loads native/build/Release/amesh_native.node (serialport/node-pty
 * style). It validates arguments in TypeScript so the C++ side can trust them, and turns a
 * missing or unloadable addon into one coded error with a hint. Loading is lazy: nftables
 * mode and unit tests never touch the addon.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AmeshError } from '../errors/amesh-error.js';
import type { LoadObjectOptions, NativeBinding } from './types.js';

const BUILD_HINT = 'build it with `npm run build:native` (needs libbpf-dev, libelf-dev; scripts/setup.sh installs them)';

function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'amesh') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the amesh package root above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Absolute path of the compiled addon. */
export function nativeAddonPath(): string {
  return path.join(findPackageRoot(), 'native', 'build', 'Release', 'amesh_native.node');
}

// --- argument checks: a bad argument is a programming error, so TypeError/RangeError ---

function int(name: string, value: unknown, min: number, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
}
const fdArg = (name: string, v: unknown) => int(name, v, 0, 0x7fffffff);
const u32Arg = (name: string, v: unknown) => int(name, v, 0, 0xffffffff);

function buf(name: string, value: unknown, size?: number): asserts value is Buffer {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${name} must be a Buffer`);
  if (size !== undefined && value.length !== size) throw new RangeError(`${name} must be ${size} bytes, got ${value.length}`);
}

function unixPath(value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length < 2 || value.length > 107 || value.slice(1).includes('\0')) {
    throw new TypeError(`unix socket path must be 2..107 characters ('@name' for an abstract socket), got ${JSON.stringify(value)}`);
  }
}

function family(value: unknown): asserts value is 4 | 6 {
  if (value !== 4 && value !== 6) throw new RangeError(`family must be 4 or 6, got ${String(value)}`);
}

function address(fam: 4 | 6, value: unknown): asserts value is string {
  if (typeof value !== 'string' || isIP(value) !== fam) throw new TypeError(`expected an IPv${fam} address, got ${JSON.stringify(value)}`);
}

/** Wrap the raw addon with argument validation; exported for tests of the validation itself. */
export function validatingBinding(raw: NativeBinding): NativeBinding {
  return {
    loadObject(options: LoadObjectOptions) {
      if (typeof options?.path !== 'string' || !options.path) throw new TypeError('loadObject: path must be a non-empty string');
      if (typeof options.pinRoot !== 'string' || !path.isAbsolute(options.pinRoot)) throw new TypeError('loadObject: pinRoot must be an absolute path');
      const rodata: Record<string, Buffer> = {};
      for (const [name, value] of Object.entries(options.rodata ?? {})) {
        buf(`rodata.${name}`, value);
        rodata[name] = value;
      }
      return raw.loadObject({ path: options.path, pinRoot: options.pinRoot, rodata });
    },
    closeObject(id) {
      int('id', id, 1, 0x7fffffff);
      raw.closeObject(id);
    },
    mapUpdate(mapFd, key, value) {
      fdArg('mapFd', mapFd);
      buf('key', key);
      buf('value', value);
      raw.mapUpdate(mapFd, key, value);
    },
    mapDelete(mapFd, key) {
      fdArg('mapFd', mapFd);
      buf('key', key);
      return raw.mapDelete(mapFd, key);
    },
    mapLookup(mapFd, key, valueSize) {
      fdArg('mapFd', mapFd);
      buf('key', key);
      int('valueSize', valueSize, 1, 1 << 20);
      return raw.mapLookup(mapFd, key, valueSize);
    },
    mapKeys(mapFd, keySize) {
      fdArg('mapFd', mapFd);
      int('keySize', keySize, 1, 512);
      return raw.mapKeys(mapFd, keySize);
    },
    mapLookupPerCpu(mapFd, key, valueSize) {
      fdArg('mapFd', mapFd);
      buf('key', key);
      int('valueSize', valueSize, 1, 1 << 16);
      return raw.mapLookupPerCpu(mapFd, key, valueSize);
    },
    progTestRun(progFd, data, repeat) {
      fdArg('progFd', progFd);
      buf('data', data);
      if (data.length < 14) throw new RangeError('progTestRun: data must hold at least an Ethernet header (14 bytes)');
      int('repeat', repeat, 1, 1_000_000);
      return raw.progTestRun(progFd, data, repeat);
    },
    progTestRunSkLookup(progFd, ctx, repeat) {
      fdArg('progFd', progFd);
      buf('ctx', ctx);
      int('repeat', repeat, 1, 1_000_000);
      return present(raw, 'progTestRunSkLookup')(progFd, ctx, repeat);
    },
    tcAttachIngress(ifindex, progFd, handle, priority) {
      int('ifindex', ifindex, 1, 0x7fffffff);
      fdArg('progFd', progFd);
      int('handle', handle, 1, 0xffffffff);
      int('priority', priority, 1, 0xffff);
      return raw.tcAttachIngress(ifindex, progFd, handle, priority);
    },
    tcDetachIngress(ifindex, handle, priority) {
      int('ifindex', ifindex, 1, 0x7fffffff);
      int('handle', handle, 1, 0xffffffff);
      int('priority', priority, 1, 0xffff);
      return raw.tcDetachIngress(ifindex, handle, priority);
    },
    tcQueryIngress(ifindex, handle, priority) {
      int('ifindex', ifindex, 1, 0x7fffffff);
      int('handle', handle, 1, 0xffffffff);
      int('priority', priority, 1, 0xffff);
      return raw.tcQueryIngress(ifindex, handle, priority);
    },
    progId(progFd) {
      fdArg('progFd', progFd);
      return raw.progId(progFd);
    },
    netnsAttachSkLookup(progFd) {
      fdArg('progFd', progFd);
      return present(raw, 'netnsAttachSkLookup')(progFd);
    },
    createTransparentListener(fam, addr, port, mark, backlog) {
      family(fam);
      address(fam, addr);
      int('port', port, 0, 65535);
      u32Arg('mark', mark);
      int('backlog', backlog, 1, 65535);
      return raw.createTransparentListener(fam, addr, port, mark, backlog);
    },
    createOutboundSocket(fam, mark, bindAddress) {
      family(fam);
      u32Arg('mark', mark);
      if (bindAddress !== null) address(fam, bindAddress);
      return raw.createOutboundSocket(fam, mark, bindAddress);
    },
    getSocketMark(fd) {
      fdArg('fd', fd);
      return raw.getSocketMark(fd);
    },
    socketCookie(fd) {
      fdArg('fd', fd);
      return present(raw, 'socketCookie')(fd);
    },
    setSocketMark(fd, mark) {
      fdArg('fd', fd);
      u32Arg('mark', mark);
      present(raw, 'setSocketMark')(fd, mark);
    },
    setSocketLinger(fd, seconds) {
      fdArg('fd', fd);
      if (seconds !== null) int('seconds', seconds, 0, 0x7fffffff);
      present(raw, 'setSocketLinger')(fd, seconds);
    },
    closeFd(fd) {
      fdArg('fd', fd);
      raw.closeFd(fd);
    },
    ifNameToIndex(name) {
      if (typeof name !== 'string' || !name || name.length > 15 || name.includes('\0')) {
        throw new TypeError(`interface name must be 1..15 characters, got ${JSON.stringify(name)}`);
      }
      return raw.ifNameToIndex(name);
    },
    unixConnect(socketPath) {
      unixPath(socketPath);
      return present(raw, 'unixConnect')(socketPath);
    },
    unixListen(socketPath, backlog) {
      unixPath(socketPath);
      int('backlog', backlog, 1, 65535);
      return present(raw, 'unixListen')(socketPath, backlog);
    },
    sendFds(fd, fds, data) {
      fdArg('fd', fd);
      if (!Array.isArray(fds) || fds.length > 64) throw new RangeError('sendFds: fds must be an array of at most 64 fds');
      fds.forEach((f, i) => fdArg(`fds[${i}]`, f));
      buf('data', data);
      if (data.length === 0) throw new RangeError('sendFds: data must not be empty');
      return present(raw, 'sendFds')(fd, fds, data);
    },
    recvFds(fd, maxBytes) {
      fdArg('fd', fd);
      int('maxBytes', maxBytes, 1, 1 << 20);
      return present(raw, 'recvFds')(fd, maxBytes);
    },
    peerCredentials(fd) {
      fdArg('fd', fd);
      return present(raw, 'peerCredentials')(fd);
    },
  };
}

/**
 * A function added to the addon after its first release: an addon built from older sources
 * lacks it, which is a stale build (AMESH_NATIVE_UNAVAILABLE with the rebuild hint), not a
 * programming error.
 */
function present<K extends keyof NativeBinding>(raw: NativeBinding, name: K): NativeBinding[K] {
  const fn = raw[name] as unknown;
  if (typeof fn !== 'function') {
    throw new AmeshError('AMESH_NATIVE_UNAVAILABLE', `the native addon has no ${name}(): it was built from older sources`, { hint: `rebuild it: ${BUILD_HINT}` });
  }
  return (fn as (...args: unknown[]) => unknown).bind(raw) as NativeBinding[K];
}

let cached: NativeBinding | undefined;

/** The real addon, loaded once. Throws AMESH_NATIVE_UNAVAILABLE when it cannot be loaded. */
export function loadNativeBinding(): NativeBinding {
  if (cached) return cached;
  let file = '(unknown)';
  try {
    file = nativeAddonPath();
    const raw = createRequire(import.meta.url)(file) as NativeBinding;
    cached = validatingBinding(raw);
    return cached;
  } catch (err) {
    throw new AmeshError('AMESH_NATIVE_UNAVAILABLE', `cannot load the native addon ${file}: ${(err as Error).message}`, {
      cause: err,
      hint: BUILD_HINT,
    });
  }
}
