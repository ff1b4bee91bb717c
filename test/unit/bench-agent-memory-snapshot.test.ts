import { describe, expect, it } from 'vitest';
import { perConnection, totalsByKind, type HeapSnapshot } from '../../bench/agent-memory-snapshot.js';

/** A snapshot with the given nodes as [type index, name, self size]. */
function snapshot(nodes: Array<[number, string, number]>): HeapSnapshot {
  const strings: string[] = [];
  const flat = nodes.flatMap(([type, name, size]) => {
    if (!strings.includes(name)) strings.push(name);
    return [type, strings.indexOf(name), size, 0];
  });
  return { snapshot: { meta: { node_fields: ['type', 'name', 'self_size', 'edge_count'], node_types: [['hidden', 'object', 'closure', 'string', 'code']] } }, nodes: flat, strings };
}

describe('agent memory snapshot diff', () => {
  it('groups by kind and divides the growth by the connections held', () => {
    const idle = totalsByKind(snapshot([[1, 'Socket', 200], [3, 'a', 20]]));
    const held = totalsByKind(snapshot([[1, 'Socket', 200], [1, 'Socket', 200], [1, 'Socket', 200], [2, 'onData', 56], [2, 'onData', 56], [3, 'b', 30], [3, 'c', 30], [4, 'x', 8]]));
    const rows = perConnection(idle, held, 2);
    expect(rows[0]).toEqual({ kind: 'object:Socket', bytesPerConnection: 200, objectsPerConnection: 1 });
    expect(rows.find((r) => r.kind === 'closure:onData')).toEqual({ kind: 'closure:onData', bytesPerConnection: 56, objectsPerConnection: 1 });
    expect(rows.find((r) => r.kind === '(string)')).toEqual({ kind: '(string)', bytesPerConnection: 20, objectsPerConnection: 0.5 });
    expect(rows.find((r) => r.kind === '(code)')?.bytesPerConnection).toBe(4);
  });

  it('rejects a file that is not a heap snapshot and a count of zero', () => {
    expect(() => totalsByKind({ snapshot: { meta: { node_fields: ['id'], node_types: [[]] } }, nodes: [], strings: [] })).toThrow(/not a V8 heap snapshot/);
    expect(() => perConnection(new Map(), new Map(), 0)).toThrow(RangeError);
  });
});
