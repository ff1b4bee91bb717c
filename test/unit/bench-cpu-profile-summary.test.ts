import { describe, expect, it } from 'vitest';
import { asCpuProfile, classifyFrame, formatCpuProfileSummary, summarizeCpuProfile, type CpuProfile, type CpuProfileNode } from '../../bench/cpu-profile-summary.js';

describe('classifyFrame', () => {
  it.each([
    ['(idle)', '', 'idle', ''],
    ['(root)', '', 'root', ''],
    ['(program)', '', 'program', ''],
    ['(garbage collector)', '', 'gc', ''],
    ['writev', '', 'native', ''],
    ['onStreamRead', 'node:internal/stream_base_commons', 'node', 'internal/stream_base_commons'],
    ['Http2Session.request', 'node:internal/http2/core', 'node', 'internal/http2/core'],
    ['write', 'file:///work/main/node_modules/pino/lib/proto.js', 'dependency', 'pino'],
    ['Histogram.observe', 'file:///work/main/node_modules/@opentelemetry/sdk-trace-base/build/src/x.js', 'dependency', '@opentelemetry/sdk-trace-base'],
    ['relay', 'file:///work/main/dist/src/net/relay.js', 'amesh', 'net/relay.js'],
    // A checkout under a directory that is itself called src: the deepest /src/ wins.
    ['relay', 'file:///usr/src/amesh/dist/src/net/relay.js', 'amesh', 'net/relay.js'],
    ['openLoop', 'file:///usr/src/amesh/dist/bench/load/open-loop.js', 'bench', 'load/open-loop.js'],
    ['main', 'file:///tmp/x/app.js', 'other', 'x/app.js'],
  ])('%s at %j → %s %j', (name, url, owner, module) => {
    expect(classifyFrame(name, url)).toEqual({ owner, module });
  });
});

let nextId = 1;
function node(functionName: string, url: string, lineNumber = 0, children: number[] = []): CpuProfileNode {
  return { id: nextId++, callFrame: { functionName, url, lineNumber }, children };
}

describe('summarizeCpuProfile', () => {
  nextId = 1;
  const root = node('(root)', '');
  const idle = node('(idle)', '');
  const program = node('(program)', '');
  const gc = node('(garbage collector)', '');
  const relay = node('relay', 'file:///r/dist/src/net/relay.js', 9);
  const onRead = node('onStreamRead', 'node:internal/stream_base_commons', 162);
  const writev = node('writev', '');
  const profile: CpuProfile = {
    nodes: [root, idle, program, gc, relay, onRead, writev],
    startTime: 1_000_000,
    endTime: 1_100_000, // 100 ms
    // Sample i lasts timeDeltas[i + 1]; the last one gets the mean delta (10 ms here).
    samples: [idle.id, relay.id, relay.id, onRead.id, writev.id, program.id, gc.id, idle.id, relay.id, idle.id],
    timeDeltas: [10_000, 40_000, 10_000, 10_000, 5_000, 5_000, 10_000, 5_000, 5_000, 0].map((d) => d),
  };
  // Durations: idle 40 + 10 (mean: total 100 ms / 10 samples) + 5, relay 10 + 10 + 5 … computed below.
  const s = summarizeCpuProfile(profile);

  it('gives each sample the time until the next one and keeps idle time out of the CPU time', () => {
    // idle: samples 0 (40), 7 (5), 9 (mean 10) = 55 ms; relay: 1 (10), 2 (10), 8 (0) = 20; onRead 5; writev 5; program 10; gc 5.
    expect(s.idleMs).toBeCloseTo(55);
    expect(s.cpuMs).toBeCloseTo(45);
    expect(s.durationMs).toBe(100);
    expect(s.samples).toBe(10);
  });

  it('adds self time up per function, module and owner, as shares of the CPU time', () => {
    expect(s.functions.map((f) => [f.name, f.location, f.owner, Number(f.ms.toFixed(3))])).toEqual([
      ['relay', 'net/relay.js:10', 'amesh', 20],
      ['(program)', '', 'program', 10],
      ['onStreamRead', 'internal/stream_base_commons:163', 'node', 5],
      ['writev', '', 'native', 5],
      ['(garbage collector)', '', 'gc', 5],
    ]);
    expect(s.owners.map((o) => [o.owner, Number(o.share.toFixed(4))])).toEqual([
      ['amesh', 0.4444],
      ['program', 0.2222],
      ['node', 0.1111],
      ['native', 0.1111],
      ['gc', 0.1111],
    ]);
    expect(s.owners.reduce((a, o) => a + o.share, 0)).toBeCloseTo(1);
    expect(s.modules[0]).toMatchObject({ owner: 'amesh', module: 'net/relay.js', ms: 20 });
  });

  it('falls back to hit counts spread over the profile when it has no samples', () => {
    const a = { ...relay, hitCount: 3 };
    const b = { ...idle, hitCount: 1 };
    const r = summarizeCpuProfile({ nodes: [root, a, b], startTime: 0, endTime: 40_000 });
    expect(r.cpuMs).toBeCloseTo(30);
    expect(r.idleMs).toBeCloseTo(10);
    expect(r.functions).toHaveLength(1);
  });

  it('formats owners, modules and functions as Markdown tables, escaping pipes', () => {
    const text = formatCpuProfileSummary('client agent', s, 2);
    expect(text).toContain('# client agent');
    expect(text).toContain('100 ms profiled, 45 ms on the CPU (45.0 % of the time), 55 ms idle; 10 samples');
    expect(text).toContain("| amesh's JavaScript (src/) | 20 ms | 44.4 % |");
    expect(text).toContain('| net/relay.js | amesh | 20 ms | 44.4 % |');
    expect(text).toContain('| (program) | program | 10 ms | 22.2 % |');
    expect(text).toContain('Top 2 functions:');
    expect(text).not.toContain('onStreamRead');
    const piped = summarizeCpuProfile({ nodes: [node('a|b', 'node:x')], startTime: 0, endTime: 1, samples: [nextId - 1], timeDeltas: [1] });
    expect(formatCpuProfileSummary('t', piped)).toContain('| a\\|b |');
  });
});

describe('asCpuProfile', () => {
  it.each([
    [null, 'is not a V8 CPU profile'],
    [{ nodes: [], startTime: 0 }, 'is not a V8 CPU profile'],
    [{ traceEvents: [] }, 'is not a V8 CPU profile'],
    [{ nodes: [{ id: 1 }], startTime: 0, endTime: 1 }, 'a node without id or callFrame'],
  ])('refuses %j, naming the file', (value, message) => {
    expect(() => asCpuProfile(value, 'x.cpuprofile')).toThrow(message);
    expect(() => asCpuProfile(value, 'x.cpuprofile')).toThrow('x.cpuprofile');
  });

  it('accepts a profile as node --cpu-prof writes it', () => {
    const p = { nodes: [{ id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [] }], startTime: 0, endTime: 5, samples: [1], timeDeltas: [5] };
    expect(asCpuProfile(p, 'y')).toBe(p);
  });
});
