import { describe, expect, it } from 'vitest';
import { formatProxyStatus, readSyncz, shortTypeName, typeState } from '../../src/cli/inspect/proxy-status-format.js';

const ADDRESS = 'type.googleapis.com/istio.workload.Address';
const AUTHZ = 'type.googleapis.com/istio.security.Authorization';
const WAYPOINT = 'type.googleapis.com/amesh.l7.v1.WaypointConfig';
const TELEMETRY = 'type.googleapis.com/amesh.telemetry.v1.Telemetry';
const NOW = Date.parse('2026-12-02T16:00:00Z');

const syncz = [
  {
    node: 'w1',
    pod: 'amesh-system/amesh-node-a',
    role: 'node-agent',
    connectedAt: '2026-12-02T15:59:00Z',
    types: { [ADDRESS]: { sent: '7', acked: '7', resources: 12 }, [AUTHZ]: { sent: '3', acked: '3', resources: 1 }, [TELEMETRY]: { sent: '2', acked: '1', resources: 1 } },
    status: 'STALE',
  },
  {
    node: 'w2',
    pod: 'demo/waypoint-5d-x',
    role: 'waypoint',
    connectedAt: '2026-12-02T14:00:00Z',
    types: { [WAYPOINT]: { sent: '4', acked: '3', nacked: 'route r1: unknown filter', resources: 1 } },
    status: 'NACKED',
  },
];

describe('proxy-status', () => {
  it('type state: NACKED wins, SYNCED when the sent version was acknowledged, else STALE', () => {
    expect(typeState({ sent: '1', acked: '1' })).toBe('SYNCED');
    expect(typeState({ sent: '2', acked: '1' })).toBe('STALE');
    expect(typeState({ sent: '2', acked: '2', nacked: 'bad' })).toBe('NACKED');
    expect(typeState({})).toBe('STALE');
    expect(typeState({ sent: '2', acked: '1', status: 'SYNCED' })).toBe('SYNCED');
  });
  it('short type names', () => {
    expect([ADDRESS, AUTHZ, WAYPOINT, TELEMETRY].map(shortTypeName)).toEqual(['ADDRESS', 'AUTHORIZATION', 'WAYPOINT', 'TELEMETRY']);
  });
  it('one column per type, reasons below, and pods without a stream', () => {
    const expected = [
      { pod: 'amesh-system/amesh-node-a', node: 'w1', role: 'node-agent' },
      { pod: 'amesh-system/amesh-node-b', node: 'w2', role: 'node-agent' },
      { pod: 'demo/waypoint-5d-x', node: 'w2', role: 'waypoint' },
    ];
    const r = formatProxyStatus(readSyncz(syncz), expected, NOW);
    const lines = r.text.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+ROLE\s+NODE\s+ADDRESS\s+AUTHORIZATION\s+TELEMETRY\s+WAYPOINT\s+CONNECTED$/);
    expect(lines[1]?.split(/\s{3,}/)).toEqual(['amesh-system/amesh-node-a', 'node-agent', 'w1', 'SYNCED', 'SYNCED', 'STALE', '-', '60s']);
    expect(lines[2]?.split(/\s{3,}/)).toEqual(['demo/waypoint-5d-x', 'waypoint', 'w2', '-', '-', '-', 'NACKED', '2h']);
    expect(lines[3]?.split(/\s{3,}/)).toEqual(['amesh-system/amesh-node-b', 'node-agent', 'w2', '-', '-', '-', '-', 'NOT CONNECTED']);
    expect(r.text).toContain('demo/waypoint-5d-x NACKED WAYPOINT: route r1: unknown filter');
    expect(r.text).toContain('1 mesh pod running without an xDS stream to the controller: amesh-system/amesh-node-b');
    expect(r.problems).toBe(3);
  });
  it('all synced: no problems; tolerates {proxies: []} and junk', () => {
    const ok = [{ ...syncz[0], types: { [ADDRESS]: { sent: 'a', acked: 'a' } } }];
    expect(formatProxyStatus(readSyncz({ proxies: ok }), [{ pod: 'amesh-system/amesh-node-a', node: 'w1', role: 'node-agent' }], NOW).problems).toBe(0);
    expect(readSyncz('nonsense')).toEqual([]);
  });
});
