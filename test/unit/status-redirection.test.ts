import { describe, expect, it } from 'vitest';
import { PodRedirectionWriter, REDIRECTION_ANNOTATION, redirectionAnnotation, redirectionWrite, type RedirectionState } from '../../src/controller/status/redirection.js';
import type { NamespaceObject, PodObject } from '../../src/controller/translate/enrolment.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const namespaces = new Map<string, NamespaceObject>([
  ['mesh', { metadata: { name: 'mesh', labels: AMBIENT } }],
  ['plain', { metadata: { name: 'plain' } }],
]);
const namespaceOf = (name: string) => namespaces.get(name);

function pod(name: string, o: { ns?: string; current?: RedirectionState; hostNetwork?: boolean; phase?: string; deleting?: boolean; version?: string; labels?: Record<string, string> } = {}): PodObject {
  return {
    metadata: {
      name,
      namespace: o.ns ?? 'mesh',
      uid: `uid-${name}`,
      resourceVersion: o.version ?? '1',
      labels: o.labels ?? {},
      ...(o.current ? { annotations: { [REDIRECTION_ANNOTATION]: o.current } } : {}),
      ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: { hostNetwork: o.hostNetwork ?? false },
    status: { phase: o.phase ?? 'Running' },
  };
}

class Fail extends Error {
  constructor(readonly code: number) {
    super(`HTTP ${code}`);
  }
}

describe('redirectionAnnotation', () => {
  it.each([
    [true, true, 'enabled'],
    [true, false, 'pending'],
    [false, true, 'disabled'],
    [false, false, 'disabled'],
  ] as const)('enrolled=%s captured=%s → %s', (enrolled, captured, expected) => {
    expect(redirectionAnnotation(enrolled, captured)).toBe(expected);
  });
});

describe('redirectionWrite', () => {
  it.each([
    ['enrolled, captured, unannotated', pod('a'), true, 'enabled'],
    ['enrolled, not captured yet', pod('a'), false, 'pending'],
    ['pending → enabled', pod('a', { current: 'pending' }), true, 'enabled'],
    ['already enabled', pod('a', { current: 'enabled' }), true, undefined],
    ['unenrolled, never annotated: left alone', pod('a', { ns: 'plain' }), false, undefined],
    ['unenrolled after being enabled', pod('a', { ns: 'plain', current: 'enabled' }), false, 'disabled'],
    ['opted out by pod label', pod('a', { current: 'enabled', labels: { 'istio.io/dataplane-mode': 'none' } }), true, 'disabled'],
    ['host network: never', pod('a', { hostNetwork: true, current: 'enabled' }), false, undefined],
    ['finished pod', pod('a', { phase: 'Succeeded' }), false, undefined],
    ['deleting pod', pod('a', { deleting: true }), false, undefined],
    ['enrolled, agent not heard from since a controller restart: kept', pod('a', { current: 'enabled' }), undefined, undefined],
    ['enrolled, unannotated, agent unknown: wait', pod('a'), undefined, undefined],
    ['unenrolled, agent unknown: still disabled', pod('a', { ns: 'plain', current: 'enabled' }), undefined, 'disabled'],
  ])('%s', (_what, p, captured: boolean | undefined, expected) => {
    expect(redirectionWrite(p, namespaceOf(p.metadata.namespace ?? ''), captured)).toBe(expected);
  });
});

describe('PodRedirectionWriter', () => {
  function writer(patch: (ns: string, name: string, annotations: Record<string, string>) => Promise<void>, captured: Set<string> = new Set(), concurrency = 2) {
    return new PodRedirectionWriter({ patch, capturedByAgent: (uid) => captured.has(uid), log: silentLogger, concurrency, maxAttempts: 3, retryBaseMs: 1 });
  }

  it('patches only pods whose annotation differs, with the one annotation', async () => {
    const calls: string[] = [];
    const w = writer(async (ns, name, annotations) => void calls.push(`${ns}/${name} ${JSON.stringify(annotations)}`), new Set(['uid-a']));
    w.reconcile([pod('a'), pod('b'), pod('c', { current: 'pending' }), pod('host', { hostNetwork: true }), pod('d', { ns: 'plain' })], namespaceOf);
    await w.idle();
    expect(calls.sort()).toEqual([`mesh/a {"${REDIRECTION_ANNOTATION}":"enabled"}`, `mesh/b {"${REDIRECTION_ANNOTATION}":"pending"}`]);
  });

  it('does not repeat a write while the cache still shows the pod as before, but does once it moved on', async () => {
    let calls = 0;
    const w = writer(async () => void calls++);
    w.reconcile([pod('a', { version: '1' })], namespaceOf);
    await w.idle();
    w.reconcile([pod('a', { version: '1' })], namespaceOf);
    await w.idle();
    expect(calls).toBe(1);
    // Someone removed the annotation after our write (new resourceVersion): write it again.
    w.reconcile([pod('a', { version: '3' })], namespaceOf);
    await w.idle();
    expect(calls).toBe(2);
  });

  it('bounds concurrency', async () => {
    let active = 0;
    let peak = 0;
    const w = writer(async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((resolve) => setImmediate(resolve));
      active--;
    });
    w.reconcile(
      Array.from({ length: 10 }, (_, i) => pod(`p${i}`)),
      namespaceOf,
    );
    await w.idle();
    expect(peak).toBe(2);
  });

  it.each([
    [409, 2],
    [503, 2],
    [429, 2],
  ])('retries on %i', async (code, expectedCalls) => {
    let calls = 0;
    const w = writer(async () => {
      calls++;
      if (calls === 1) throw new Fail(code);
    });
    w.reconcile([pod('a')], namespaceOf);
    await w.idle();
    expect(calls).toBe(expectedCalls);
  });

  it('gives up after maxAttempts and drops a 404 (pod gone) at once', async () => {
    let failing = 0;
    const w1 = writer(async () => {
      failing++;
      throw new Fail(500);
    });
    w1.reconcile([pod('a')], namespaceOf);
    await w1.idle();
    expect(failing).toBe(3);
    let gone = 0;
    const w2 = writer(async () => {
      gone++;
      throw new Fail(404);
    });
    w2.reconcile([pod('a')], namespaceOf);
    await w2.idle();
    expect(gone).toBe(1);
  });

  it('the latest decision for a pod wins over a queued one', async () => {
    const written: string[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const captured = new Set<string>();
    const w = writer(async (_ns, name, annotations) => {
      if (name === 'blocker') await gate;
      written.push(`${name}=${annotations[REDIRECTION_ANNOTATION]}`);
    }, captured, 1);
    w.reconcile([pod('blocker'), pod('a')], namespaceOf);
    captured.add('uid-a');
    w.reconcile([pod('a')], namespaceOf);
    release();
    await w.idle();
    expect(written).toEqual(['blocker=pending', 'a=enabled']);
  });

  it('stop drops queued work: nothing is written after it', async () => {
    const written: string[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const w = writer(async (_ns, name) => {
      await gate;
      written.push(name);
    }, new Set(), 1);
    w.reconcile([pod('a'), pod('b')], namespaceOf);
    w.stop();
    w.reconcile([pod('c')], namespaceOf);
    release();
    await w.idle();
    expect(written).toEqual(['a']);
  });
});
