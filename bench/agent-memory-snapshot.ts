/**
 * `node dist/bench/agent-memory-snapshot.js IDLE.heapsnapshot HELD.heapsnapshot --connections N`:
 * what one held connection costs a node agent's JavaScript heap, by kind of object — the
 * difference in self size and count between two V8 heap snapshots of the same agent, idle and with
 * N connections held, divided by N. Scenario 5 (bench/scenarios/memory.ts) gives the total (RSS and
 * heap per connection); this tells which objects make it up.
 *
 * Taking the snapshots (the agents inherit NODE_OPTIONS from the bench, bench/mesh-setup.ts):
 *   NODE_OPTIONS="--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR" \
 *     node dist/bench/run.js --scenarios memory --paths amesh --memory-connections 1000 --runs 1
 * and send SIGUSR2 to each agent of that run (a `node-agent --local-config` process whose
 * /proc/PID/environ names DIR — never another run's agent: without the flag SIGUSR2 kills it)
 * once idle (when the run prints "[6/8]") and once with the N connections up (each agent holds
 * about N descriptors, /proc/PID/fd). V8 collects garbage before it writes a snapshot.
 *
 * Kinds: `object:<constructor>`, `closure:<function name>` (anonymous closures as `closure:`),
 * `array:<…>` (`(object properties)` is a dictionary-mode object's property store), `(string)`,
 * `native:<…>`/`synthetic:<…>` (Node's C++ wrappers, only their JavaScript-visible size).
 */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { runBenchCli, wholeNumber } from './cli.js';

/** The parts of a .heapsnapshot file this reads (the format's own field names). */
export interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: unknown[] } };
  nodes: number[];
  strings: string[];
}

export interface KindTotal {
  count: number;
  selfBytes: number;
}

const STRING_TYPES = new Set(['string', 'concatenated string', 'sliced string']);

/** The snapshot's objects grouped by kind: count and summed self size. */
export function totalsByKind(s: HeapSnapshot): Map<string, KindTotal> {
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0] as string[];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  if (typeAt < 0 || nameAt < 0 || sizeAt < 0 || !Array.isArray(types)) throw new Error('not a V8 heap snapshot: node_fields lacks type, name or self_size');
  const out = new Map<string, KindTotal>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt]!] ?? '?';
    const name = s.strings[s.nodes[i + nameAt]!] ?? '';
    const kind = STRING_TYPES.has(type) ? '(string)' : type === 'code' ? '(code)' : `${type}:${name.slice(0, 50)}`;
    const t = out.get(kind) ?? { count: 0, selfBytes: 0 };
    t.count++;
    t.selfBytes += s.nodes[i + sizeAt]!;
    out.set(kind, t);
  }
  return out;
}

export interface KindPerConnection {
  kind: string;
  bytesPerConnection: number;
  objectsPerConnection: number;
}

/** (held − idle) / connections per kind, largest first. */
export function perConnection(idle: Map<string, KindTotal>, held: Map<string, KindTotal>, connections: number): KindPerConnection[] {
  if (connections <= 0) throw new RangeError(`connections must be positive, got ${connections}`);
  const none: KindTotal = { count: 0, selfBytes: 0 };
  return [...new Set([...idle.keys(), ...held.keys()])]
    .map((kind) => {
      const a = idle.get(kind) ?? none;
      const b = held.get(kind) ?? none;
      return { kind, bytesPerConnection: (b.selfBytes - a.selfBytes) / connections, objectsPerConnection: (b.count - a.count) / connections };
    })
    .sort((x, y) => y.bytesPerConnection - x.bytesPerConnection);
}

async function load(file: string): Promise<Map<string, KindTotal>> {
  return totalsByKind(JSON.parse(await readFile(file, 'utf8')) as HeapSnapshot);
}

async function main(): Promise<void> {
  const cmd = new Command('agent-memory-snapshot')
    .argument('<idle>', 'heap snapshot of the agent with no connection held')
    .argument('<held>', 'heap snapshot of the same agent with the connections held')
    .requiredOption('--connections <n>', 'connections held in the second snapshot', wholeNumber(1, 10_000_000))
    .option('--top <n>', 'kinds to print', wholeNumber(1, 10_000), 40)
    .parse();
  const [idleFile, heldFile] = cmd.args as [string, string];
  const o = cmd.opts<{ connections: number; top: number }>();
  const rows = perConnection(await load(idleFile), await load(heldFile), o.connections);
  const total = rows.reduce((sum, r) => sum + r.bytesPerConnection, 0);
  console.log(`JavaScript heap (self sizes) per held connection: ${(total / 1024).toFixed(1)} KB`);
  for (const r of rows.slice(0, o.top)) console.log(`${r.bytesPerConnection.toFixed(0).padStart(8)} B ${r.objectsPerConnection.toFixed(2).padStart(7)} objects  ${r.kind}`);
}

if (process.argv[1]?.endsWith('agent-memory-snapshot.js')) runBenchCli('agent-memory-snapshot', main);
