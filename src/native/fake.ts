/**
 * In-memory NativeBinding for unit tests: maps, tc filters, interfaces and fds behave like the
 * kernel's as far as the capture code can observe (pinned maps outlive closeObject and are
 * shared by every load with the same pin root; a filter slot is replaced, not duplicated; a
 * missing key or filter is ENOENT). Socket fds are numbers only — never hand them to Node.
 * Errors carry errno/code/syscall like the real addon's.
 */
import { constants } from 'node:os';
import { BPF_MAP_NAMES, BPF_PROGRAM_NAME, EXEMPT_MAX_ENTRIES, FLOWS_MAX_ENTRIES, FLOW_KEY_SIZE, LISTENERS_MAX_ENTRIES, LPM_KEY_SIZE, ADDRESS_KEY_SIZE, MAP_VALUE_SIZE, PODS_MAX_ENTRIES, REASON, REASON_COUNTER_SIZE, SK_LOOKUP_PROGRAM_NAME } from '../node-agent/capture/bpf-contract.js';
import type { BpfMapInfo, LoadedBpfObject, LoadObjectOptions, NativeBinding, TestRunResult } from './types.js';

export interface FakeMap {
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  perCpu: boolean;
  /** hex key → value (per-CPU maps: one Buffer per CPU, concatenated). */
  entries: Map<string, Buffer>;
}

export interface FakeTcFilter {
  ifindex: number;
  handle: number;
  priority: number;
  progId: number;
}

type FdEntry =
  | { kind: 'prog'; progId: number; objectId: number }
  | { kind: 'map'; map: FakeMap; objectId: number }
  | { kind: 'listener'; family: 4 | 6; address: string; port: number; mark: number }
  | { kind: 'outbound'; family: 4 | 6; mark: number; bindAddress: string | null }
  | { kind: 'link'; progId: number };

export interface FakeNativeState {
  /** Pinned maps by pin root, then map name: they survive closeObject like pinned maps. */
  pinned: Map<string, Map<string, FakeMap>>;
  /** Open objects by id. */
  objects: Map<number, { pinRoot: string; fds: number[]; rodata: Record<string, Buffer> }>;
  /** Interfaces by name → ifindex. */
  interfaces: Map<string, number>;
  /** Interfaces with a clsact qdisc. */
  clsact: Set<number>;
  /** tc ingress filters, key `${ifindex}/${handle}/${priority}`. */
  filters: Map<string, FakeTcFilter>;
  /** Every open fd. */
  fds: Map<number, FdEntry>;
  /** SO_LINGER set by fd (real sockets' fds too: the agent arms sockets Node made): seconds, or null for off. */
  linger: Map<number, number | null>;
  possibleCpus: number;
}

export interface FakeNativeBinding extends NativeBinding {
  readonly state: FakeNativeState;
  /** Make an interface visible to ifNameToIndex; returns its ifindex. */
  addInterface(name: string, ifindex?: number): number;
  removeInterface(name: string): void;
  /** Make the next call of `method` throw a kernel-style error (e.g. 'EPERM'). */
  failNext(method: keyof NativeBinding, code: string): void;
  /** Add to a decision counter on one CPU, as the program would. */
  countReason(pinRoot: string, reason: number, n?: number, cpu?: number): void;
  /** The map of a pin root, by name (undefined before the first load). */
  pinnedMap(pinRoot: string, name: string): FakeMap | undefined;
}

function sysError(syscall: string, code: string, detail: string): Error {
  const errno = (constants.errno as Record<string, number>)[code] ?? 1;
  const err = new Error(`${syscall}(${detail}): ${code}`) as Error & { errno: number; code: string; syscall: string };
  err.errno = errno;
  err.code = code;
  err.syscall = syscall;
  return err;
}

export function createFakeNativeBinding(options: { possibleCpus?: number } = {}): FakeNativeBinding {
  const state: FakeNativeState = {
    pinned: new Map(),
    objects: new Map(),
    interfaces: new Map([['lo', 1]]),
    linger: new Map(),
    clsact: new Set(),
    filters: new Map(),
    fds: new Map(),
    possibleCpus: options.possibleCpus ?? 2,
  };
  const failures = new Map<string, string>();
  let nextFd = 100;
  let nextObjectId = 1;
  let nextProgId = 1000;
  let nextIfindex = 2;

  const openFd = (entry: FdEntry): number => {
    const fd = nextFd++;
    state.fds.set(fd, entry);
    return fd;
  };
  const checkFailure = (method: string, detail: string) => {
    const code = failures.get(method);
    if (code) {
      failures.delete(method);
      throw sysError(method, code, detail);
    }
  };
  const mapOf = (fd: number, syscall: string): FakeMap => {
    const e = state.fds.get(fd);
    if (e?.kind !== 'map') throw sysError(syscall, 'EBADF', `fd ${fd}`);
    return e.map;
  };
  const progOf = (fd: number, syscall: string) => {
    const e = state.fds.get(fd);
    if (e?.kind !== 'prog') throw sysError(syscall, 'EBADF', `fd ${fd}`);
    return e;
  };
  const socketOf = (fd: number, syscall: string) => {
    const e = state.fds.get(fd);
    if (e?.kind !== 'listener' && e?.kind !== 'outbound') throw sysError(syscall, 'ENOTSOCK', `fd ${fd}`);
    return e;
  };
  const ifindexKnown = (ifindex: number, syscall: string) => {
    if (![...state.interfaces.values()].includes(ifindex)) throw sysError(syscall, 'ENODEV', `ifindex ${ifindex}`);
  };
  const newMaps = (): FakeMap[] => [
    { name: BPF_MAP_NAMES.pods, keySize: ADDRESS_KEY_SIZE, valueSize: MAP_VALUE_SIZE, maxEntries: PODS_MAX_ENTRIES, perCpu: false, entries: new Map() },
    { name: BPF_MAP_NAMES.exempt, keySize: LPM_KEY_SIZE, valueSize: MAP_VALUE_SIZE, maxEntries: EXEMPT_MAX_ENTRIES, perCpu: false, entries: new Map() },
    { name: BPF_MAP_NAMES.reasons, keySize: 4, valueSize: REASON_COUNTER_SIZE, maxEntries: REASON.MAX, perCpu: true, entries: new Map() },
    { name: BPF_MAP_NAMES.flows, keySize: FLOW_KEY_SIZE, valueSize: MAP_VALUE_SIZE, maxEntries: FLOWS_MAX_ENTRIES, perCpu: false, entries: new Map() },
  ];
  const keyCheck = (map: FakeMap, key: Buffer, syscall: string) => {
    if (key.length !== map.keySize) throw sysError(syscall, 'EINVAL', `key size ${key.length} != ${map.keySize}`);
  };
  const arrayIndex = (map: FakeMap, key: Buffer): number | undefined => {
    if (!map.perCpu) return undefined;
    return key.readUInt32LE(0);
  };

  const binding: FakeNativeBinding = {
    state,
    addInterface(name, ifindex) {
      const index = ifindex ?? nextIfindex++;
      state.interfaces.set(name, index);
      return index;
    },
    removeInterface(name) {
      const index = state.interfaces.get(name);
      state.interfaces.delete(name);
      if (index === undefined) return;
      state.clsact.delete(index);
      for (const [k, f] of state.filters) if (f.ifindex === index) state.filters.delete(k);
    },
    failNext(method, code) {
      failures.set(method, code);
    },
    countReason(pinRoot, reason, n = 1, cpu = 0) {
      const map = state.pinned.get(pinRoot)?.get(BPF_MAP_NAMES.reasons);
      if (!map) throw new Error(`no reasons map pinned under ${pinRoot}`);
      const k = Buffer.alloc(4);
      k.writeUInt32LE(reason);
      const hex = k.toString('hex');
      const value = map.entries.get(hex) ?? Buffer.alloc(REASON_COUNTER_SIZE * state.possibleCpus);
      value.writeBigUInt64LE(value.readBigUInt64LE(cpu * REASON_COUNTER_SIZE) + BigInt(n), cpu * REASON_COUNTER_SIZE);
      map.entries.set(hex, value);
    },
    pinnedMap(pinRoot, name) {
      return state.pinned.get(pinRoot)?.get(name);
    },

    loadObject(o: LoadObjectOptions): LoadedBpfObject {
      checkFailure('loadObject', o.path);
      let maps = state.pinned.get(o.pinRoot);
      if (!maps) {
        maps = new Map(newMaps().map((m) => [m.name, m]));
        state.pinned.set(o.pinRoot, maps);
      }
      const id = nextObjectId++;
      const progFd = openFd({ kind: 'prog', progId: nextProgId++, objectId: id });
      const skLookupFd = openFd({ kind: 'prog', progId: nextProgId++, objectId: id });
      // Not pinned, like the real one: each load gets an empty map of listening sockets.
      const listeners: FakeMap = { name: BPF_MAP_NAMES.listeners, keySize: 4, valueSize: 8, maxEntries: LISTENERS_MAX_ENTRIES, perCpu: false, entries: new Map() };
      const mapInfos: BpfMapInfo[] = [...maps.values(), listeners].map((m) => ({
        name: m.name,
        fd: openFd({ kind: 'map', map: m, objectId: id }),
        keySize: m.keySize,
        valueSize: m.valueSize,
        maxEntries: m.maxEntries,
      }));
      state.objects.set(id, { pinRoot: o.pinRoot, fds: [progFd, skLookupFd, ...mapInfos.map((m) => m.fd)], rodata: { ...(o.rodata ?? {}) } });
      return { id, programs: [{ name: BPF_PROGRAM_NAME, fd: progFd }, { name: SK_LOOKUP_PROGRAM_NAME, fd: skLookupFd }], maps: mapInfos };
    },
    closeObject(id) {
      const obj = state.objects.get(id);
      if (!obj) throw sysError('closeObject', 'ENOENT', `object ${id}`);
      for (const fd of obj.fds) state.fds.delete(fd);
      state.objects.delete(id);
    },
    mapUpdate(fd, key, value) {
      checkFailure('mapUpdate', `fd ${fd}`);
      const map = mapOf(fd, 'bpf_map_update_elem');
      keyCheck(map, key, 'bpf_map_update_elem');
      if (value.length !== map.valueSize) throw sysError('bpf_map_update_elem', 'EINVAL', `value size ${value.length}`);
      const hex = key.toString('hex');
      if (!map.entries.has(hex) && map.entries.size >= map.maxEntries) throw sysError('bpf_map_update_elem', 'E2BIG', `fd ${fd}`);
      map.entries.set(hex, Buffer.from(value));
    },
    mapDelete(fd, key) {
      checkFailure('mapDelete', `fd ${fd}`);
      const map = mapOf(fd, 'bpf_map_delete_elem');
      keyCheck(map, key, 'bpf_map_delete_elem');
      return map.entries.delete(key.toString('hex'));
    },
    mapLookup(fd, key, valueSize) {
      const map = mapOf(fd, 'bpf_map_lookup_elem');
      keyCheck(map, key, 'bpf_map_lookup_elem');
      const v = map.entries.get(key.toString('hex'));
      return v ? Buffer.from(v.subarray(0, valueSize)) : null;
    },
    mapKeys(fd, keySize) {
      const map = mapOf(fd, 'bpf_map_get_next_key');
      if (keySize !== map.keySize) throw sysError('bpf_map_get_next_key', 'EINVAL', `key size ${keySize}`);
      if (map.perCpu) {
        return Array.from({ length: map.maxEntries }, (_, i) => {
          const k = Buffer.alloc(4);
          k.writeUInt32LE(i);
          return k;
        });
      }
      return [...map.entries.keys()].map((hex) => Buffer.from(hex, 'hex'));
    },
    mapLookupPerCpu(fd, key, valueSize) {
      const map = mapOf(fd, 'bpf_map_lookup_elem');
      keyCheck(map, key, 'bpf_map_lookup_elem');
      const index = arrayIndex(map, key);
      if (index === undefined) throw sysError('bpf_map_lookup_elem', 'EINVAL', 'not a per-CPU map');
      if (index >= map.maxEntries) return null;
      const stride = Math.ceil(valueSize / 8) * 8;
      const v = map.entries.get(key.toString('hex')) ?? Buffer.alloc(REASON_COUNTER_SIZE * state.possibleCpus);
      return Array.from({ length: state.possibleCpus }, (_, cpu) => Buffer.from(v.subarray(cpu * stride, cpu * stride + valueSize)));
    },
    progTestRun(fd, data): TestRunResult {
      progOf(fd, 'bpf_prog_test_run_opts');
      return { retval: 0, durationNs: 0, dataOut: Buffer.from(data), mark: 0 };
    },
    progTestRunSkLookup(fd, ctx) {
      progOf(fd, 'bpf_prog_test_run_opts');
      // SK_PASS, nothing selected (cookie 0).
      const ctxOut = Buffer.from(ctx);
      ctxOut.fill(0, 0, Math.min(8, ctxOut.length));
      return { retval: 1, durationNs: 0, ctxOut };
    },

    tcAttachIngress(ifindex, progFd, handle, priority) {
      checkFailure('tcAttachIngress', `ifindex ${ifindex}`);
      ifindexKnown(ifindex, 'bpf_tc_hook_create');
      const prog = progOf(progFd, 'bpf_tc_attach');
      const created = !state.clsact.has(ifindex);
      state.clsact.add(ifindex);
      state.filters.set(`${ifindex}/${handle}/${priority}`, { ifindex, handle, priority, progId: prog.progId });
      return created;
    },
    tcDetachIngress(ifindex, handle, priority) {
      checkFailure('tcDetachIngress', `ifindex ${ifindex}`);
      ifindexKnown(ifindex, 'bpf_tc_detach');
      return state.filters.delete(`${ifindex}/${handle}/${priority}`);
    },
    tcQueryIngress(ifindex, handle, priority) {
      checkFailure('tcQueryIngress', `ifindex ${ifindex}`);
      ifindexKnown(ifindex, 'bpf_tc_query');
      return state.filters.get(`${ifindex}/${handle}/${priority}`)?.progId ?? 0;
    },
    progId(fd) {
      return progOf(fd, 'bpf_obj_get_info_by_fd').progId;
    },
    netnsAttachSkLookup(fd) {
      checkFailure('netnsAttachSkLookup', `prog fd ${fd}`);
      return openFd({ kind: 'link', progId: progOf(fd, 'bpf_link_create').progId });
    },

    createTransparentListener(family, address, port, mark) {
      checkFailure('createTransparentListener', `${address}:${port}`);
      for (const e of state.fds.values()) {
        if (e.kind === 'listener' && e.address === address && e.port === port && port !== 0) throw sysError('bind', 'EADDRINUSE', `${address}:${port}`);
      }
      return openFd({ kind: 'listener', family, address, port, mark });
    },
    createOutboundSocket(family, mark, bindAddress) {
      checkFailure('createOutboundSocket', String(bindAddress));
      return openFd({ kind: 'outbound', family, mark, bindAddress });
    },
    getSocketMark(fd) {
      return socketOf(fd, 'getsockopt').mark;
    },
    socketCookie(fd) {
      socketOf(fd, 'getsockopt');
      return BigInt(fd);
    },
    setSocketMark(fd, mark) {
      socketOf(fd, 'setsockopt').mark = mark;
    },
    setSocketLinger(fd, seconds) {
      checkFailure('setSocketLinger', `fd ${fd}`);
      state.linger.set(fd, seconds);
    },
    closeFd(fd) {
      if (!state.fds.delete(fd)) throw sysError('close', 'EBADF', `fd ${fd}`);
    },
    ifNameToIndex(name) {
      const index = state.interfaces.get(name);
      if (index === undefined) throw sysError('if_nametoindex', 'ENODEV', name);
      return index;
    },
    // The fake has no unix sockets: nobody answers a hand-off, so an agent binds fresh.
    unixConnect(socketPath) {
      throw sysError('connect', 'ECONNREFUSED', socketPath);
    },
    unixListen(socketPath) {
      throw sysError('bind', 'EPERM', socketPath);
    },
    sendFds(fd) {
      throw sysError('sendmsg', 'ENOTSOCK', `fd ${fd}`);
    },
    recvFds(fd) {
      throw sysError('recvmsg', 'ENOTSOCK', `fd ${fd}`);
    },
    peerCredentials(fd) {
      throw sysError('getsockopt', 'ENOTSOCK', `fd ${fd}`);
    },
  };
  return binding;
}
