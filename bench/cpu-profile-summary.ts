/**
 * Where a V8 CPU profile's time went (`node --cpu-prof`, or the inspector's Profiler domain as
 * bench/agent-cpu.ts takes it): self time per function, grouped by who owns the code — amesh's
 * own modules, Node's JavaScript, dependencies, native work, the garbage collector. Pure: it reads
 * a parsed `.cpuprofile` and returns plain data; bench/flamegraph.ts writes it beside the flame
 * graph, and a commit's before/after figures can quote it.
 *
 * Time per sample: `timeDeltas[i]` is the time *before* sample i, so sample i is given
 * `timeDeltas[i + 1]` (the time until the next sample; the last one gets the mean interval).
 * `(idle)` is time the thread waited in the event loop: it is reported, never counted as CPU.
 * `(program)` is native work that ran without a JavaScript stack (the event loop calling into
 * C++: TLS records, HTTP/2 and HTTP/1 parsing, socket reads before JavaScript is entered);
 * native work a JavaScript function called (a binding, a V8 builtin) is charged to a frame with
 * no script URL.
 */

/** The parts of Chrome's / V8's `.cpuprofile` JSON this reads. */
export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number; scriptId?: string | number };
  hitCount?: number;
  children?: number[];
}

export type CodeOwner = 'amesh' | 'node' | 'dependency' | 'bench' | 'native' | 'program' | 'gc' | 'other';

/** Reader-facing names of the owners, in the order the summary lists them. */
export const OWNER_LABELS: Readonly<Record<CodeOwner, string>> = {
  amesh: "amesh's JavaScript (src/)",
  node: "Node.js's JavaScript (node:*)",
  dependency: 'dependencies (node_modules)',
  bench: 'bench harness (bench/)',
  native: 'native, called from JavaScript (bindings, V8 builtins)',
  program: 'native, outside any JavaScript stack (event loop, TLS, HTTP/2 and HTTP parsing)',
  gc: 'V8 garbage collector',
  other: 'other JavaScript',
};

export interface TimeShare {
  ms: number;
  /** Of the profile's CPU time (idle excluded), 0–1. */
  share: number;
}

export interface FunctionTime extends TimeShare {
  owner: CodeOwner;
  /** The module the function lives in (`hbone/pool.js`, `internal/http2/core`, `pino`), or '' for native frames. */
  module: string;
  name: string;
  /** `module:line` (1-based), or '' for native frames. */
  location: string;
}

export interface ModuleTime extends TimeShare {
  owner: CodeOwner;
  module: string;
}

export interface CpuProfileSummary {
  /** Wall time the profile covers. */
  durationMs: number;
  /** Time the thread waited in the event loop. */
  idleMs: number;
  /** durationMs − idleMs as sampled: what the shares are shares of. */
  cpuMs: number;
  samples: number;
  owners: Array<TimeShare & { owner: CodeOwner }>;
  modules: ModuleTime[];
  functions: FunctionTime[];
}

/** Who owns a frame, and the module it belongs to. */
export function classifyFrame(functionName: string, url: string): { owner: CodeOwner | 'idle' | 'root'; module: string } {
  if (url === '') {
    if (functionName === '(idle)') return { owner: 'idle', module: '' };
    if (functionName === '(root)') return { owner: 'root', module: '' };
    if (functionName === '(program)') return { owner: 'program', module: '' };
    if (functionName === '(garbage collector)') return { owner: 'gc', module: '' };
    return { owner: 'native', module: '' };
  }
  if (url.startsWith('node:')) return { owner: 'node', module: url.slice('node:'.length) };
  const path = url.replace(/^file:\/\//, '');
  const inModules = path.lastIndexOf('/node_modules/');
  if (inModules >= 0) {
    const rest = path.slice(inModules + '/node_modules/'.length).split('/');
    const name = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? '');
    return { owner: 'dependency', module: name };
  }
  const bench = path.lastIndexOf('/bench/');
  const src = path.lastIndexOf('/src/');
  // dist/bench/… and dist/src/… (or the .ts sources under a loader): whichever is the deeper match.
  if (bench >= 0 && bench > src) return { owner: 'bench', module: path.slice(bench + '/bench/'.length) };
  if (src >= 0) return { owner: 'amesh', module: path.slice(src + '/src/'.length) };
  return { owner: 'other', module: path.split('/').slice(-2).join('/') };
}

/** Self time per node id in ms, from the samples and their time deltas (hit counts × the mean interval when a profile has no samples). */
function selfTimes(profile: CpuProfile): { byNode: Map<number, number>; samples: number } {
  const byNode = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    const totalUs = deltas.reduce((a, b) => a + Math.max(0, b), 0);
    const meanUs = totalUs / samples.length;
    for (let i = 0; i < samples.length; i++) {
      const next = deltas[i + 1];
      const us = next === undefined ? meanUs : Math.max(0, next);
      const id = samples[i] as number;
      byNode.set(id, (byNode.get(id) ?? 0) + us / 1000);
    }
    return { byNode, samples: samples.length };
  }
  const hits = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
  const meanMs = hits > 0 ? (profile.endTime - profile.startTime) / 1000 / hits : 0;
  for (const n of profile.nodes) if (n.hitCount) byNode.set(n.id, n.hitCount * meanMs);
  return { byNode, samples: hits };
}

/** Throws an error naming what is missing when `value` is not a V8 CPU profile. */
export function asCpuProfile(value: unknown, source: string): CpuProfile {
  const p = value as Partial<CpuProfile> | null;
  if (typeof p !== 'object' || p === null || !Array.isArray(p.nodes) || typeof p.startTime !== 'number' || typeof p.endTime !== 'number') {
    throw new Error(`${source} is not a V8 CPU profile (expected "nodes", "startTime" and "endTime" as written by node --cpu-prof)`);
  }
  for (const n of p.nodes) {
    if (typeof n?.id !== 'number' || typeof n.callFrame?.functionName !== 'string' || typeof n.callFrame.url !== 'string') {
      throw new Error(`${source}: a node without id or callFrame {functionName, url}: not a V8 CPU profile`);
    }
  }
  return p as CpuProfile;
}

function sortedByTime<T extends TimeShare>(list: T[]): T[] {
  return list.sort((a, b) => b.ms - a.ms);
}

export function summarizeCpuProfile(profile: CpuProfile): CpuProfileSummary {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const { byNode, samples } = selfTimes(profile);
  let idleMs = 0;
  const functions = new Map<string, FunctionTime>();
  for (const [id, ms] of byNode) {
    const node = nodes.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const { owner, module } = classifyFrame(functionName, url);
    if (owner === 'idle') {
      idleMs += ms;
      continue;
    }
    if (owner === 'root') continue;
    const name = functionName || '(anonymous)';
    const location = url ? `${module}:${lineNumber + 1}` : '';
    const key = `${owner}\u0000${name}\u0000${location}`;
    const entry = functions.get(key);
    if (entry) entry.ms += ms;
    else functions.set(key, { owner, module, name, location, ms, share: 0 });
  }
  const all = [...functions.values()];
  const cpuMs = all.reduce((a, f) => a + f.ms, 0);
  const share = (ms: number): number => (cpuMs > 0 ? ms / cpuMs : 0);
  for (const f of all) f.share = share(f.ms);

  const owners = new Map<CodeOwner, number>();
  const modules = new Map<string, ModuleTime>();
  for (const f of all) {
    owners.set(f.owner, (owners.get(f.owner) ?? 0) + f.ms);
    const key = `${f.owner}\u0000${f.module}`;
    const m = modules.get(key);
    if (m) m.ms += f.ms;
    else modules.set(key, { owner: f.owner, module: f.module, ms: f.ms, share: 0 });
  }
  for (const m of modules.values()) m.share = share(m.ms);
  return {
    durationMs: (profile.endTime - profile.startTime) / 1000,
    idleMs,
    cpuMs,
    samples,
    owners: sortedByTime([...owners].map(([owner, ms]) => ({ owner, ms, share: share(ms) }))),
    modules: sortedByTime([...modules.values()]),
    functions: sortedByTime(all),
  };
}

const pct = (share: number): string => `${(share * 100).toFixed(1)} %`;
const ms = (n: number): string => `${n.toFixed(0)} ms`;
const cell = (text: string): string => text.replace(/\|/g, '\\|');

/** The summary as Markdown: owners, then the `top` modules and functions by self time. */
export function formatCpuProfileSummary(title: string, s: CpuProfileSummary, top = 25): string {
  const lines = [
    `# ${title}`,
    '',
    `${ms(s.durationMs)} profiled, ${ms(s.cpuMs)} on the CPU (${pct(s.durationMs > 0 ? s.cpuMs / s.durationMs : 0)} of the time), ${ms(s.idleMs)} idle; ${s.samples} samples. Shares below are of the CPU time, by self time.`,
    '',
    '| who owns the code | self time | share |',
    '|---|---:|---:|',
    ...s.owners.map((o) => `| ${OWNER_LABELS[o.owner]} | ${ms(o.ms)} | ${pct(o.share)} |`),
    '',
    `Top ${Math.min(top, s.modules.length)} modules:`,
    '',
    '| module | owner | self time | share |',
    '|---|---|---:|---:|',
    ...s.modules.slice(0, top).map((m) => `| ${cell(m.module || `(${m.owner})`)} | ${m.owner} | ${ms(m.ms)} | ${pct(m.share)} |`),
    '',
    `Top ${Math.min(top, s.functions.length)} functions:`,
    '',
    '| function | where | owner | self time | share |',
    '|---|---|---|---:|---:|',
    ...s.functions.slice(0, top).map((f) => `| ${cell(f.name)} | ${cell(f.location || '(native)')} | ${f.owner} | ${ms(f.ms)} | ${pct(f.share)} |`),
    '',
  ];
  return lines.join('\n');
}
