/**
 * The controller's xDS resource store: versions are content hashes, replaceAll computes upserts
 * and removals against the previous set and emits one event per effective change; the pure push
 * planning and NACK reading the ADS server builds on (delta-plan.ts).
 */
import { describe, expect, it } from 'vitest';
import { planPush, rejectedNames, type ClientView } from '../../src/controller/xds/delta-plan.js';
import { ResourceStore, resourceVersion, type ResourceChange, type StoredResource } from '../../src/controller/xds/resource-store.js';

const T = 'type.googleapis.com/istio.workload.Address';
const U = 'type.googleapis.com/istio.security.Authorization';
const b = (text: string): Uint8Array => new TextEncoder().encode(text);

function recording(store: ResourceStore): ResourceChange[] {
  const events: ResourceChange[] = [];
  store.onChange((c) => events.push(c));
  return events;
}

describe('ResourceStore', () => {
  it('versions are short content hashes: equal bytes, equal version', () => {
    expect(resourceVersion(b('a'))).toBe(resourceVersion(b('a')));
    expect(resourceVersion(b('a'))).not.toBe(resourceVersion(b('b')));
    expect(resourceVersion(b('a'))).toMatch(/^[0-9a-f]{16}$/);
  });

  it('replaceAll lists upserts and removals against the previous set, in one event', () => {
    const store = new ResourceStore();
    const events = recording(store);
    store.replaceAll(
      T,
      new Map([
        ['w1', b('one')],
        ['w2', b('two')],
        ['w3', b('three')],
      ]),
    );
    const v1 = store.get(T, 'w1')?.version;
    const change = store.replaceAll(
      T,
      new Map([
        ['w1', b('one')],
        ['w2', b('two, changed')],
        ['w4', b('four')],
      ]),
    );
    expect(change).toEqual({ typeUrl: T, upserted: ['w2', 'w4'], removed: ['w3'] });
    expect(events).toEqual([{ typeUrl: T, upserted: ['w1', 'w2', 'w3'], removed: [] }, change]);
    expect(store.get(T, 'w1')?.version).toBe(v1);
    expect(store.get(T, 'w2')?.version).toBe(resourceVersion(b('two, changed')));
    expect([...store.resources(T).keys()].sort()).toEqual(['w1', 'w2', 'w4']);
  });

  it('an unchanged set emits nothing and keeps the snapshot', () => {
    const store = new ResourceStore();
    store.replaceAll(T, new Map([['w1', b('one')]]));
    const before = store.resources(T);
    const events = recording(store);
    expect(store.replaceAll(T, new Map([['w1', b('one')]]))).toBeUndefined();
    expect(store.upsert(T, 'w1', b('one'))).toBeUndefined();
    expect(store.remove(T, 'nope')).toBeUndefined();
    expect(events).toEqual([]);
    expect(store.resources(T)).toBe(before);
  });

  it('snapshots are immutable; types are independent', () => {
    const store = new ResourceStore();
    store.upsert(T, 'w1', b('one'));
    const snapshot = store.resources(T);
    store.upsert(T, 'w2', b('two'));
    store.remove(T, 'w1');
    store.upsert(U, 'ns/p', b('policy'));
    expect([...snapshot.keys()]).toEqual(['w1']);
    expect([...store.resources(T).keys()]).toEqual(['w2']);
    expect([...store.resources(U).keys()]).toEqual(['ns/p']);
    expect(store.resources('type.googleapis.com/other').size).toBe(0);
  });

  it('upsert and remove emit single-name changes; unsubscribe stops events', () => {
    const store = new ResourceStore();
    const events: ResourceChange[] = [];
    const off = store.onChange((c) => events.push(c));
    store.upsert(T, 'w1', b('one'));
    store.remove(T, 'w1');
    off();
    store.upsert(T, 'w2', b('two'));
    expect(events).toEqual([
      { typeUrl: T, upserted: ['w1'], removed: [] },
      { typeUrl: T, upserted: [], removed: ['w1'] },
    ]);
  });
});

describe('planPush (what a delta push sends)', () => {
  const r = (version: string): StoredResource => ({ version, bytes: new Uint8Array() });
  const current = new Map([
    ['a', r('1')],
    ['b', r('2')],
    ['c', r('3')],
  ]);
  const wildcard = (held: Record<string, string>): ClientView => ({ wildcard: true, names: new Set(), held: new Map(Object.entries(held)) });

  it.each<[string, ClientView, { send: string[]; remove: string[]; forget: string[] }]>([
    ['a new wildcard client gets everything', wildcard({}), { send: ['a', 'b', 'c'], remove: [], forget: [] }],
    ['a client in sync gets nothing', wildcard({ a: '1', b: '2', c: '3' }), { send: [], remove: [], forget: [] }],
    ['a reconnecting client gets what differs and removals', wildcard({ a: '1', b: 'old', gone: '9' }), { send: ['b', 'c'], remove: ['gone'], forget: [] }],
    ['explicit names filter', { wildcard: false, names: new Set(['b', 'missing']), held: new Map() }, { send: ['b'], remove: [], forget: [] }],
    ['an unsubscribed name is forgotten, a deleted one removed', { wildcard: false, names: new Set(['a']), held: new Map([['b', '2'], ['x', '1']]) }, { send: ['a'], remove: ['x'], forget: ['b'] }],
  ])('%s', (_name, view, expected) => {
    expect(planPush(current, view)).toEqual(expected);
  });
});

describe('rejectedNames (reading a NACK)', () => {
  it.each<[string, string, string[], string[]]>([
    ['our client names each resource', 'b: bad address; c: empty uid', ['a', 'b', 'c'], ['b', 'c']],
    ['a reason containing "; " still finds the names', 'b: x; y: z', ['a', 'b'], ['b']],
    ['a whole-response message rejects everything', 'cannot apply update', ['a', 'b'], ['a', 'b']],
    ['unknown names reject everything', 'zz: what', ['a'], ['a']],
  ])('%s', (_name, message, sent, expected) => {
    expect([...rejectedNames(message, sent)].sort()).toEqual(expected);
  });
});
