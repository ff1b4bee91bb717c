import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { superviseDaemon, type SupervisedChild } from '../../src/sandbox/daemon-supervisor.js';
import { silentLogger } from '../../src/telemetry/logger.js';

class FakeChild extends EventEmitter implements SupervisedChild {
  readonly signals: NodeJS.Signals[] = [];
  constructor(readonly pid: number) {
    super();
  }
  kill(signal: NodeJS.Signals): boolean {
    this.signals.push(signal);
    return true;
  }
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.emit('exit', code, signal);
  }
}

describe('sandbox daemon supervisor', () => {
  let children: FakeChild[];
  let clock: number;
  const supervise = () =>
    superviseDaemon({
      log: silentLogger,
      now: () => clock,
      spawnChild: () => {
        const c = new FakeChild(100 + children.length);
        children.push(c);
        return c;
      },
    });
  beforeEach(() => {
    vi.useFakeTimers();
    children = [];
    clock = 0;
  });
  afterEach(() => vi.useRealTimers());

  it('starts the daemon again after kill -9, backing off 1 s, 2 s, 4 s … and resetting after a stable run', () => {
    const s = supervise();
    expect(s.childPid()).toBe(100);
    children[0]?.exit(null, 'SIGKILL');
    expect(s.childPid()).toBeUndefined();
    vi.advanceTimersByTime(999);
    expect(children).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(s.childPid()).toBe(101);
    children[1]?.exit(1);
    vi.advanceTimersByTime(1999);
    expect(children).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(children).toHaveLength(3);
    clock += 60_000; // ran a minute: healthy
    children[2]?.exit(null, 'SIGKILL');
    vi.advanceTimersByTime(1000);
    expect(children).toHaveLength(4);
    expect(s.restarts()).toBe(3);
  });

  it('forwards SIGTERM, restarts nothing after it and ends with the child’s code', async () => {
    const s = supervise();
    const done = s.stop('SIGTERM');
    expect(children[0]?.signals).toEqual(['SIGTERM']);
    children[0]?.exit(1);
    vi.advanceTimersByTime(60_000);
    expect(children).toHaveLength(1);
    expect(await done).toBe(1);
  });

  it('a stop between a crash and the restart starts nothing', async () => {
    const s = supervise();
    children[0]?.exit(null, 'SIGSEGV');
    expect(await s.stop('SIGTERM')).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(children).toHaveLength(1);
  });

  it('a child that exits 0 on its own ends the supervisor', async () => {
    const s = supervise();
    children[0]?.exit(0);
    expect(await s.done).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(children).toHaveLength(1);
  });
});
