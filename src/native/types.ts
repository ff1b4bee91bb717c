/**
 * The exact interface of the native addon (native/src/*.cc). Every function does one
 * syscall-level job; on failure it throws an Error with `errno` (positive number), `code`
 * (e.g. 'EPERM') and `syscall` (the failing call, e.g. 'bpf_tc_attach').
 *
 * Nothing outside src/native/ imports the addon; consumers take a `NativeBinding` parameter
 * (default: the real addon) so unit tests can pass a fake.
 */
export interface BpfProgramInfo {
  name: string;
  fd: number;
}

export interface BpfMapInfo {
  name: string;
  fd: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface LoadedBpfObject {
  /** Opaque id of the bpf_object inside the addon; pass to `closeObject`. */
  id: number;
  programs: BpfProgramInfo[];
  maps: BpfMapInfo[];
}

export interface LoadObjectOptions {
  /** Path of the compiled .bpf.o */
  path: string;
  /** Directory for maps declared LIBBPF_PIN_BY_NAME (created if missing). */
  pinRoot: string;
  /**
   * Values for `const volatile` globals in .rodata, by symbol name, written before load.
   * Each value is the raw little-endian bytes of the variable.
   */
  rodata?: Record<string, Buffer>;
}

export interface TestRunResult {
  retval: number;
  durationNs: number;
  dataOut: Buffer;
  /** `__sk_buff.mark` after the run (ctx_out). */
  mark: number;
}

export interface SkLookupTestRunResult {
  retval: number;
  durationNs: number;
  /** The struct bpf_sk_lookup after the run: its first 8 bytes are the selected socket's SO_COOKIE (0: none). */
  ctxOut: Buffer;
}

export interface TcFilterId {
  ifindex: number;
  handle: number;
  priority: number;
}

export interface NativeBinding {
  // --- eBPF objects and maps ---
  loadObject(options: LoadObjectOptions): LoadedBpfObject;
  closeObject(id: number): void;
  /** bpf_map_update_elem(fd, key, value, BPF_ANY) */
  mapUpdate(mapFd: number, key: Buffer, value: Buffer): void;
  /** bpf_map_delete_elem; returns false when the key was absent (ENOENT). */
  mapDelete(mapFd: number, key: Buffer): boolean;
  /** bpf_map_lookup_elem; null when absent. */
  mapLookup(mapFd: number, key: Buffer, valueSize: number): Buffer | null;
  /** All keys via bpf_map_get_next_key. */
  mapKeys(mapFd: number, keySize: number): Buffer[];
  /** Per-CPU array/hash lookup: one Buffer per possible CPU; null when absent. */
  mapLookupPerCpu(mapFd: number, key: Buffer, valueSize: number): Buffer[] | null;
  /** bpf_prog_test_run_opts with data_in and a zeroed __sk_buff ctx (ctx_out read back). */
  progTestRun(progFd: number, data: Buffer, repeat: number): TestRunResult;
  /** bpf_prog_test_run_opts of an sk_lookup program: ctx_in is a struct bpf_sk_lookup, no packet. */
  progTestRunSkLookup(progFd: number, ctx: Buffer, repeat: number): SkLookupTestRunResult;

  // --- tc ---
  /** bpf_tc_hook_create (EEXIST = success) + bpf_tc_attach with BPF_TC_F_REPLACE on ingress.
   *  Returns true when this call created the clsact qdisc. */
  tcAttachIngress(ifindex: number, progFd: number, handle: number, priority: number): boolean;
  /** bpf_tc_detach; returns false when no such filter (ENOENT). Never destroys the qdisc. */
  tcDetachIngress(ifindex: number, handle: number, priority: number): boolean;
  /** bpf_tc_query: the attached program id, or 0 when none. */
  tcQueryIngress(ifindex: number, handle: number, priority: number): number;
  /** bpf_obj_get_info_by_fd: the kernel's id of a program fd. */
  progId(progFd: number): number;
  /** bpf_link_create(BPF_SK_LOOKUP) on this process's network namespace: the link's fd (closing it detaches). */
  netnsAttachSkLookup(progFd: number): number;

  // --- sockets ---
  /**
   * socket(), SO_REUSEADDR, IP_TRANSPARENT / IPV6_TRANSPARENT, SO_MARK, bind, listen.
   * Returns a non-blocking fd for net.Server.listen({ fd }).
   */
  createTransparentListener(family: 4 | 6, address: string, port: number, mark: number, backlog: number): number;
  /** getsockopt(SO_COOKIE): the socket's kernel-wide id. */
  socketCookie(fd: number): bigint;
  /**
   * socket() for an outbound TCP connection with SO_MARK set (when mark != 0) and, when
   * `bindAddress` is given, IP_TRANSPARENT + bind(bindAddress, 0) so the SYN carries a
   * foreign source. Not yet connected; non-blocking. Wrap with `new net.Socket({ fd })`.
   */
  createOutboundSocket(family: 4 | 6, mark: number, bindAddress: string | null): number;
  /** getsockopt(SO_MARK) */
  getSocketMark(fd: number): number;
  /** setsockopt(SO_MARK) on an existing socket. */
  setSocketMark(fd: number, mark: number): void;
  /**
   * setsockopt(SO_LINGER): `seconds` turns lingering on with that timeout (0: the kernel's close
   * of the fd sends a RST, not a FIN), `null` turns it off.
   */
  setSocketLinger(fd: number, seconds: number | null): void;
  /** close(2), for fds never handed to Node. */
  closeFd(fd: number): void;
  /** if_nametoindex */
  ifNameToIndex(name: string): number;

  // --- fd passing (the node agent's listener hand-off) ---
  /**
   * socket(AF_UNIX, SOCK_STREAM) + connect. A leading '@' names an abstract socket (scoped by
   * network namespace). Returns a connected, non-blocking, close-on-exec fd; throws with code
   * ECONNREFUSED when nobody listens.
   */
  unixConnect(path: string): number;
  /**
   * socket(AF_UNIX, SOCK_STREAM) + bind + listen, exact-length names ('@name' abstract): a
   * non-blocking, close-on-exec fd for net.Server#listen({ fd }). EADDRINUSE when taken.
   */
  unixListen(path: string, backlog: number): number;
  /** One sendmsg of `data` with `fds` attached (SCM_RIGHTS); the caller's fds stay open. Non-blocking. */
  sendFds(fd: number, fds: number[], data: Buffer): number;
  /**
   * One non-blocking recvmsg (MSG_CMSG_CLOEXEC): null when nothing is queued yet; `data` empty
   * and no fds when the peer closed. The received fds belong to the caller.
   */
  recvFds(fd: number, maxBytes: number): ReceivedFds | null;
  /** SO_PEERCRED of a connected unix socket. */
  peerCredentials(fd: number): PeerCredentials;
}

export interface ReceivedFds {
  data: Buffer;
  fds: number[];
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}
