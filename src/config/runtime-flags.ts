/**
 * Flags for `node` itself, per amesh program. V8 flags must be on node's command line (NODE_OPTIONS
 * refuses them), so they cannot be read from the environment like the rest of the configuration:
 * every launcher takes them from here — the sandbox's image catalog (src/sandbox/images/catalog.ts)
 * and the bench's testbed (bench/mesh-setup.ts) — and the container image's ENTRYPOINT
 * (images/node/Dockerfile) spells them out: test/unit/dockerfiles.test.ts checks that it agrees for
 * the image's Node major, test/unit/runtime-flags.test.ts that the running node accepts them.
 *
 * V8 flags come and go with V8 versions, and node refuses an unknown one at start ("bad option"),
 * so a flag that only some supported runtimes know carries the first Node major that has it.
 * Leaving a flag out is always safe (the runtime's default); passing an unknown one is not.
 */

/** One node flag and the Node majors that get it. */
export interface NodeFlag {
  readonly flag: string;
  /** The first Node major that gets the flag; absent: every supported Node (20.19+). */
  readonly fromNodeMajor?: number;
  /**
   * Why the majors before `fromNodeMajor` go without it: `refused`, their V8 does not have the flag
   * (node would stop at start); `not-needed`, they have it but were measured not to need it. The
   * runtime-flags test holds each flag to its reason on the node that runs it.
   */
  readonly before?: 'refused' | 'not-needed';
}

/**
 * The node agent's flags.
 *
 * `--single-threaded-gc`: V8's garbage collector on the agent's own thread only (no parallel
 * scavenge, concurrent marking or sweeping threads). The agent's heap is small (~20 KB per held
 * connection) and its CPU is what the mesh costs a node: helper threads add synchronisation and
 * compete with the data path for the node's cores. Measured on a 2-core node (issue #11): −8 to
 * −17 % agent CPU per new connection and +4 to +17 % connections/s in three interleaved
 * `bench/agent-cpu.ts --new-connections` pairs; −7 % CPU per GB in bulk transfer; p99 at 1000 req/s
 * unchanged. To run an agent without it, start it with `--no-single-threaded-gc` after this flag
 * (V8 takes the last one).
 *
 * `--max-semi-space-size=16` (MB): the young generation's size that the agent was measured and
 * tuned with, pinned. It is Node 20's default on this kind of machine; Node 24's V8 doubles it here
 * (a 64 MB new space instead of 32), and once a burst of new connections has grown it, each agent
 * keeps more memory committed: with 10 000 held connections 35.6 KB per connection instead of
 * 22.1 (issue #11's target is ≤ 30), at the same bulk, latency and request rates.
 *
 * `--external-memory-accounted-in-global-limit` (Node 24, V8 13.6; Node 20's V8 11.3 refuses it):
 * without it, Node 24's V8 starts a full mark-compact whenever the memory held outside the JS heap
 * (socket read Buffers) has grown by its own limit — every ~150 ms per agent in bulk transfer, and
 * marking took ~25 % of the client agent's CPU. With it that memory counts toward the heap's global
 * limit instead: bulk through two Node 24 agents 5.2–5.9 Gbit/s instead of 3.9–4.1, at the same
 * request rates.
 *
 * `--heap-growing-percent=100` (Node 24): the old generation's (and, with the flag above, the global)
 * limit set at twice what the last mark-compact left, instead of V8's own factor. With external
 * memory in the global limit, Node 24's factor left an agent at 1 000 req/s a full mark-compact every
 * ~6.5 s (~25 ms of marking steps and a 4–9 ms pause each), where Node 20's agents run none; with
 * the fixed factor they run none either. Node 20 has the flag but did not need it.
 *
 * `--no-async-context-frame` (Node 24; Node 20 refuses it): Node 24 keeps the current
 * AsyncLocalStorage context in an AsyncContextFrame that every callback into JavaScript saves and
 * restores, whether or not anything uses AsyncLocalStorage; the agent does not (no context manager,
 * no store), and with the flag Node falls back to the async_hooks implementation, which costs
 * nothing until a store exists, as on Node 20. Five interleaved rounds at 1 000 req/s: client agent
 * −3 % CPU per request (median 1.375 against 1.423 CPU-s per 10 000), p50 −0.03 ms in each round;
 * three rounds of new connections at 4 in flight: +1.4 to +2.5 % connections/s in each.
 *
 * Each is measured in docs/performance.md ("Node 24").
 */
export const NODE_AGENT_FLAGS: readonly NodeFlag[] = Object.freeze([
  { flag: '--single-threaded-gc' },
  { flag: '--max-semi-space-size=16' },
  { flag: '--external-memory-accounted-in-global-limit', fromNodeMajor: 24, before: 'refused' },
  { flag: '--heap-growing-percent=100', fromNodeMajor: 24, before: 'not-needed' },
  { flag: '--no-async-context-frame', fromNodeMajor: 24, before: 'refused' },
]);

/** The major of a Node version string ("24.11.1" or "v24.11.1" → 24); throws on anything else. */
export function nodeMajor(version: string): number {
  const match = /^v?(\d+)\.\d+\.\d+/.exec(version);
  if (!match) throw new Error(`"${version}" is not a Node version (expected e.g. 24.11.1)`);
  return Number(match[1]);
}

/** The flags of `flags` that Node `major` accepts, in order. */
export function nodeFlagsFor(flags: readonly NodeFlag[], major: number): string[] {
  return flags.filter((f) => f.fromNodeMajor === undefined || major >= f.fromNodeMajor).map((f) => f.flag);
}

/** The node agent's flags for a Node of `version` (default: the running one). */
export function nodeAgentNodeFlags(version: string = process.versions.node): string[] {
  return nodeFlagsFor(NODE_AGENT_FLAGS, nodeMajor(version));
}
