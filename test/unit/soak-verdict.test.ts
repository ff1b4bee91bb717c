import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, judgeSoak, slope, type Sample, type VerdictInput } from '../../bench/soak-verdict.js';

/** Samples every 10 s over `duration` s for one process whose RSS (MiB) and fds follow the given functions of t. */
function samples(duration: number, rssMib: (t: number) => number, fds: (t: number) => number): Sample[] {
  const out: Sample[] = [];
  for (let t = 0; t <= duration; t += 10) out.push({ t, processes: { 'agent-node1': { rssKib: rssMib(t) * 1024, fds: fds(t) } } });
  return out;
}

const base = (s: Sample[]): VerdictInput => ({ samples: s, durationSeconds: 600, targetRate: 5000, achievedRate: 5000, requestsSent: 3_000_000, requestErrors: 0, connections: 10_000, closedWhileHeld: 0 });

describe('slope', () => {
  it.each([
    { points: [[0, 1], [1, 3], [2, 5]] as Array<[number, number]>, want: 2 },
    { points: [[0, 4], [1, 4], [2, 4]] as Array<[number, number]>, want: 0 },
    { points: [[0, 4]] as Array<[number, number]>, want: 0 },
    { points: [[1, 4], [1, 9]] as Array<[number, number]>, want: 0 },
  ])('$points → $want', ({ points, want }) => expect(slope(points)).toBeCloseTo(want));
});

describe('judgeSoak', () => {
  it('passes flat memory and descriptors with GC noise, after a warm-up climb', () => {
    const v = judgeSoak(base(samples(600, (t) => (t < 200 ? 100 + t / 4 : 150 + (t % 30 === 0 ? 3 : -3)), () => 10_050)));
    expect(v.failures).toEqual([]);
    expect(v.ok).toBe(true);
  });

  it('fails a leak of 2 MiB/min on 150 MiB after warm-up, naming the process', () => {
    const v = judgeSoak(base(samples(600, (t) => 150 + (2 * t) / 60, () => 10_050)));
    expect(v.ok).toBe(false);
    expect(v.failures.join()).toMatch(/agent-node1: RSS grew 2\.00 MiB\/min/);
  });

  it('fails descriptors that creep beyond ±1 % of the median', () => {
    const v = judgeSoak(base(samples(600, () => 150, (t) => 10_000 + t)));
    expect(v.failures.join()).toMatch(/agent-node1: open descriptors 10300–10600/);
  });

  it('allows the descriptor floor for a process holding few descriptors', () => {
    expect(judgeSoak(base(samples(600, () => 80, (t) => 25 + (t % 20 === 0 ? 5 : 0)))).ok).toBe(true);
  });

  it.each([
    { change: { requestErrors: 3001 }, reason: /3001 of 3000000 requests failed/ },
    { change: { closedWhileHeld: 11 }, reason: /11 of 10000 held connections closed/ },
    { change: { achievedRate: 1200 }, reason: /achieved 1200 req\/s of the 5000 targeted/ },
    { change: { requestsSent: 0 }, reason: /no request was sent/ },
  ])('fails on $reason', ({ change, reason }) => {
    const v = judgeSoak({ ...base(samples(600, () => 150, () => 100)), ...change });
    expect(v.ok).toBe(false);
    expect(v.failures.join('\n')).toMatch(reason);
  });

  it('accepts errors up to the limit', () => {
    expect(judgeSoak({ ...base(samples(600, () => 150, () => 100)), requestErrors: 3000 }).ok).toBe(true);
  });

  it('fails with too few samples in the second half, and a process that vanished', () => {
    expect(judgeSoak(base(samples(600, () => 150, () => 100).slice(0, 32))).failures.join()).toMatch(/only 2 samples/);
    const s = samples(600, () => 150, () => 100).map((x) => (x.t > 300 ? { t: x.t, processes: {} } : x));
    expect(judgeSoak(base(s)).failures.join()).toMatch(/agent-node1: no samples in the second half/);
  });

  describe('takes V8’s young generation out of RSS when every sample reports it', () => {
    // The CI failure's shape: a 60 s run, samples every 5 s, judged from t = 30 s with the short
    // soak's 10 %/min limit; the young generation steps 1 → 32 MiB committed at t = 45 s, and RSS with it.
    const shortRun = (newSpaceMib: (t: number) => number | undefined, leakMibPerMinute = 0): VerdictInput => {
      const out: Sample[] = [];
      for (let t = 0; t <= 60; t += 5) {
        const young = newSpaceMib(t);
        const rssMib = 80 + (young ?? (t >= 45 ? 32 : 1)) + (leakMibPerMinute * t) / 60;
        out.push({ t, processes: { waypoint: { rssKib: rssMib * 1024, fds: 25, v8: { heapUsedKib: 19 * 1024, heapTotalKib: (20 + (young ?? 0)) * 1024, ...(young === undefined ? {} : { newSpaceKib: young * 1024 }) } } } });
      }
      return { ...base(out), durationSeconds: 60 };
    };
    const limits = { ...DEFAULT_LIMITS, rssSlopePercentPerMinute: 10 };
    const step = (t: number): number => (t >= 45 ? 32 : 1);

    it('passes a young-generation step that fails when judged on RSS alone', () => {
      const judgedOnRss = judgeSoak(shortRun(() => undefined), limits);
      expect(judgedOnRss.failures.join()).toMatch(/waypoint: RSS grew 79\.71 MiB\/min/);
      const v = judgeSoak(shortRun(step), limits);
      expect(v.failures).toEqual([]);
      expect(v.processes[0]).toMatchObject({ name: 'waypoint', youngGenerationExcluded: true });
    });

    it('still fails a leak beside the step, and says where V8 saw it', () => {
      const v = judgeSoak(shortRun(step, 12), limits);
      expect(v.failures.join()).toMatch(/waypoint: RSS outside V8’s young generation grew 12\.00 MiB\/min .*heap in use \+0\.00, committed \+\d+\.\d\d/);
    });

    it('judges plain RSS when a sample of the window lacks the young generation', () => {
      const v = judgeSoak(shortRun((t) => (t === 50 ? undefined : step(t))), limits);
      expect(v.processes[0]?.youngGenerationExcluded).toBe(false);
      expect(v.ok).toBe(false);
    });
  });

  it('allows a pooled hop to open and close up to the request connections, no more', () => {
    // The server-side agent holds 1 000 tunnelled connections plus one socket per connection in
    // the waypoint's upstream pool, which idles 29 of them out and opens them again.
    const dip = samples(600, () => 150, (t) => (t >= 400 && t < 450 ? 1087 : 1116));
    const input = { ...base(dip), connections: 1000 };
    expect(judgeSoak(input).failures.join()).toMatch(/open descriptors 1087–1116/);
    expect(judgeSoak({ ...input, loadConnections: 64 }).ok).toBe(true);
    const creep = samples(600, () => 150, (t) => 1116 + Math.max(0, t - 300));
    expect(judgeSoak({ ...base(creep), loadConnections: 64 }).failures.join()).toMatch(/open descriptors 1116–1416/);
  });

  it('uses the limits it is given', () => {
    const leaky = samples(600, (t) => 150 + (2 * t) / 60, () => 100);
    expect(judgeSoak(base(leaky), { ...DEFAULT_LIMITS, rssSlopePercentPerMinute: 5 }).ok).toBe(true);
  });
});
