/** The controller runner on the real store: dedup of keys, retry with back-off on 409 and on other errors, stop. */
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryStore, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import { ApiError } from '../../src/sandbox/apiserver/types.js';
import { runController, type RunningController } from '../../src/sandbox/controllers/controller-runner.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';

describe('controller runner', () => {
  let store: MemoryStore;
  let controller: RunningController | undefined;
  afterEach(() => {
    controller?.stop();
    store.close();
  });

  it('retries a key after a conflict and after an unexpected error, then settles', async () => {
    store = createMemoryStore({});
    const calls: string[] = [];
    const failures = [new ApiError(409, 'Conflict', 'the object has been modified'), new Error('boom')];
    controller = runController(
      {
        name: 'test',
        watches: [{ apiVersion: 'v1', kind: 'ConfigMap', keys: (event) => [`${event.object.metadata.namespace ?? ''}/${event.object.metadata.name ?? ''}`] }],
        reconcile(key) {
          calls.push(key);
          const failure = failures.shift();
          if (failure) throw failure;
        },
      },
      store,
      silentLogger,
    );
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'one', namespace: 'default' } });
    await eventually(() => expect(calls).toEqual(['default/one', 'default/one', 'default/one']), { timeoutMs: 5_000, intervalMs: 5 });
    await eventually(() => expect(controller?.pendingWork()).toBe(0), { timeoutMs: 5_000, intervalMs: 5 });
  });

  it('coalesces a burst of events for one key and stops delivering after stop()', async () => {
    store = createMemoryStore({});
    const calls: string[] = [];
    controller = runController(
      { name: 'test', watches: [{ apiVersion: 'v1', kind: 'ConfigMap', keys: () => ['same'] }], reconcile: (key) => void calls.push(key) },
      store,
      silentLogger,
    );
    for (let index = 0; index < 20; index++) store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${index}`, namespace: 'default' } });
    await eventually(() => expect(calls.length).toBeGreaterThan(0), { timeoutMs: 5_000, intervalMs: 5 });
    await eventually(() => expect(controller?.pendingWork()).toBe(0), { timeoutMs: 5_000, intervalMs: 5 });
    expect(calls.length).toBeLessThan(20);
    controller.stop();
    const before = calls.length;
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'late', namespace: 'default' } });
    await new Promise<void>((resolve) => setImmediate(resolve));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(calls.length).toBe(before);
  });
});
