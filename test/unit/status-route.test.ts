/**
 * Route status: IstioStatus (conditions + validationMessages) on VirtualService /
 * DestinationRule, Gateway API `status.parents` on HTTPRoute / GRPCRoute, written only when
 * something changed and without touching other controllers' entries.
 */
import { describe, expect, it } from 'vitest';
import type { ConditionSpec } from '../../src/controller/status/policy-status.js';
import { nextIstioStatus, nextRouteParents, RouteStatusWriter, validationMessages, WAYPOINT_CONTROLLER_NAME } from '../../src/controller/status/route-status.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { demoView, httpRoute, virtualService, waypointGateway } from '../helpers/route-fixtures.js';

const now = new Date('2026-03-01T00:00:00.000Z');
const rejected: ConditionSpec[] = [{ type: 'Accepted', status: 'False', reason: 'InvalidDestination', message: 'spec.http[0].route[0].destination.subset: subset "v3" not defined in DestinationRule demo/backend; nothing of it is applied (no earlier valid version)' }];
const accepted: ConditionSpec[] = [
  { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' },
  { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: 'spec.http[0].retries: not supported yet (issue #7)' },
];

describe('IstioStatus', () => {
  it('validationMessages: the problem as an ERROR with Istio’s code, ignored fields as a WARNING', () => {
    expect(validationMessages(rejected)).toEqual([{ level: 'ERROR', type: { code: 'IST0101', name: 'InvalidDestination' }, description: rejected[0]?.message }]);
    expect(validationMessages([{ type: 'Accepted', status: 'False', reason: 'InvalidRegex', message: 'x' }])[0]?.type).toEqual({ code: 'IST0106', name: 'InvalidRegex' });
    expect(validationMessages(accepted)).toEqual([{ level: 'WARNING', type: { name: 'IgnoredFields' }, description: 'spec.http[0].retries: not supported yet (issue #7)' }]);
  });

  it('writes once; the same status again is no change; others’ conditions are kept', () => {
    const vs = virtualService({}, 'backend', { generation: 4 });
    vs.status = { conditions: [{ type: 'Reconciled', status: 'True', reason: 'x', message: 'not ours', lastTransitionTime: '2025-01-01T00:00:00Z' }] };
    const next = nextIstioStatus(vs, rejected, now);
    expect(next?.conditions.map((c) => [c.type, c.status, c.observedGeneration])).toEqual([
      ['Reconciled', 'True', undefined],
      ['Accepted', 'False', 4],
    ]);
    vs.status = next;
    expect(nextIstioStatus(vs, rejected, new Date('2026-03-02T00:00:00Z'))).toBeUndefined();
    expect(nextIstioStatus(vs, accepted, now)?.validationMessages.map((m) => m.level)).toEqual(['WARNING']);
  });
});

describe('Gateway API route status', () => {
  const waypoints = new Set(['demo/waypoint']);
  const route = () =>
    httpRoute({
      parentRefs: [{ group: '', kind: 'Service', name: 'backend' }, { name: 'waypoint' }, { name: 'ingress', namespace: 'gw' }],
      rules: [],
    });
  const resolved: ConditionSpec[] = [
    { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' },
    { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all references resolved' },
  ];

  it('one entry per mesh parent under our controller name; ingress entries of others are kept', () => {
    const r = route();
    const ingress = { parentRef: { name: 'ingress', namespace: 'gw' }, controllerName: 'example.com/ingress', conditions: [] };
    r.status = { parents: [ingress] };
    const next = nextRouteParents(r, resolved, waypoints, now);
    expect(next?.parents.map((p) => [p.controllerName, p.parentRef.name, p.conditions.map((c) => `${c.type}=${c.status}`).join(',')])).toEqual([
      ['example.com/ingress', 'ingress', ''],
      [WAYPOINT_CONTROLLER_NAME, 'backend', 'Accepted=True,ResolvedRefs=True'],
      [WAYPOINT_CONTROLLER_NAME, 'waypoint', 'Accepted=True,ResolvedRefs=True'],
    ]);
    r.status = next;
    expect(nextRouteParents(r, resolved, waypoints, new Date('2026-03-02T00:00:00Z'))).toBeUndefined();
    const changed = nextRouteParents(r, [{ type: 'Accepted', status: 'False', reason: 'InvalidDestination', message: 'bad' }, { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: 'bad' }], waypoints, now);
    expect(changed?.parents[1]?.conditions[0]).toMatchObject({ type: 'Accepted', status: 'False', reason: 'InvalidDestination', observedGeneration: 1 });
  });
});

describe('RouteStatusWriter', () => {
  it('patches each object with conditions through its status subresource, once', async () => {
    const patches: Array<[string, string, string, unknown]> = [];
    const writer = new RouteStatusWriter({ log: silentLogger, now: () => now, patch: async (resource, namespace, name, status) => void patches.push([resource.plural, namespace, name, status]) });
    const vs = virtualService({});
    const hr = httpRoute({ parentRefs: [{ group: '', kind: 'Service', name: 'backend' }] });
    const view = demoView({ virtualServices: [vs], httpRoutes: [hr], gateways: [waypointGateway()] });
    writer.reconcile(view, new Map([
      ['VirtualService/demo/backend', rejected],
      ['HTTPRoute/demo/backend', [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' }]],
    ]));
    await writer.idle();
    expect(patches.map(([plural, ns, name]) => `${plural} ${ns}/${name}`)).toEqual(['virtualservices demo/backend', 'httproutes demo/backend']);
    expect(patches[0]?.[3]).toMatchObject({ conditions: [{ type: 'Accepted', status: 'False' }], validationMessages: [{ level: 'ERROR' }] });
    expect(patches[1]?.[3]).toMatchObject({ parents: [{ controllerName: WAYPOINT_CONTROLLER_NAME, parentRef: { name: 'backend' } }] });
    vs.status = patches[0]?.[3];
    hr.status = patches[1]?.[3];
    writer.reconcile(view, new Map([
      ['VirtualService/demo/backend', rejected],
      ['HTTPRoute/demo/backend', [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' }]],
    ]));
    await writer.idle();
    expect(patches).toHaveLength(2);
    writer.stop();
  });

  it('a 404 from the status subresource is skipped, not thrown', async () => {
    const writer = new RouteStatusWriter({ log: silentLogger, patch: async () => Promise.reject(Object.assign(new Error('gone'), { statusCode: 404 })) });
    writer.reconcile(demoView({ virtualServices: [virtualService({})] }), new Map([['VirtualService/demo/backend', rejected]]));
    await expect(writer.idle()).resolves.toBeUndefined();
  });
});
