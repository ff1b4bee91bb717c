/**
 * Flags for `node` itself, per amesh program. V8 flags must be on node's command line (NODE_OPTIONS
 * refuses them), so they cannot be read from the environment like the rest of the configuration:
 * every launcher takes them from here — the sandbox's image catalog (src/sandbox/images/catalog.ts)
 * and the bench's testbed (bench/mesh-setup.ts) — and the container image's ENTRYPOINT
 * (images/node/Dockerfile) spells them out: test/unit/dockerfiles.test.ts checks that it agrees,
 * test/unit/runtime-flags.test.ts that node accepts them.
 */

/**
 * The node agent runs V8's garbage collector on its own thread only (`--single-threaded-gc`: no
 * parallel scavenge, concurrent marking or sweeping threads). The agent's heap is small (~20 KB
 * per held connection) and its CPU is what the mesh costs a node: helper threads add
 * synchronisation and compete with the data path for the node's cores. Measured on a 2-core node
 * (issue #11): −8 to −17 % agent CPU per new connection and +4 to +17 % connections/s in three
 * interleaved `bench/agent-cpu.ts --new-connections` pairs; −7 % CPU per GB in bulk transfer; p99
 * at 1000 req/s unchanged. To run an agent without it, start it with `--no-single-threaded-gc`
 * after this flag (V8 takes the last one).
 */
export const NODE_AGENT_NODE_FLAGS: readonly string[] = Object.freeze(['--single-threaded-gc']);
