/**
 * What the waypoint status writer puts on Services (istio.io/WaypointBound) and Pods
 * (amesh.io/waypoint), when it writes at all, and the writer's "only when changed" behaviour with
 * fake patchers; plus the pure pieces of `amesh waypoint`.
 */
import { describe, expect, it } from 'vitest';
import type { WaypointBindingRecord } from '../../src/controller/mesh/compute-mesh-resources.js';
import { podAnnotationWrite, serviceConditionsWrite, WaypointStatusWriter, waypointAnnotation, waypointCondition } from '../../src/controller/status/waypoint-status.js';
import type { WaypointInfo } from '../../src/controller/translate/waypoint-binding.js';
import { boundServices, defaultWaypointName, describeProgress, formatWaypointTable, isProgrammed, parseWaypointFor, waypointGateway, waypointRow } from '../../src/cli/waypoint.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const info: WaypointInfo = { ref: { namespace: 'demo', name: 'waypoint' }, for: 'service', hostname: 'waypoint.demo.svc.cluster.local', identity: 'spiffe://cluster.local/ns/demo/sa/waypoint' };
const bound: WaypointBindingRecord = { kind: 'Service', namespace: 'demo', name: 'backend', binding: { waypoint: info, via: 'namespace' }, reason: 'Bound', detail: 'istio.io/use-waypoint on the namespace', relevant: true };
const missing: WaypointBindingRecord = { kind: 'Service', namespace: 'demo', name: 'backend', binding: { reason: 'waypoint demo/gone (istio.io/use-waypoint on the namespace) does not exist', via: 'namespace' }, reason: 'WaypointNotFound', detail: 'waypoint demo/gone (istio.io/use-waypoint on the namespace) does not exist', relevant: true };
const irrelevant: WaypointBindingRecord = { ...missing, binding: { reason: 'no label' }, reason: 'NotBound', detail: 'no label', relevant: false };
const now = new Date('2026-01-01T00:00:00Z');

describe('decisions', () => {
  it('the condition and the annotation say which waypoint, or why none', () => {
    expect(waypointCondition(bound)).toEqual({ type: 'istio.io/WaypointBound', status: 'True', reason: 'Bound', message: 'bound to waypoint demo/waypoint (istio.io/use-waypoint on the namespace)' });
    expect(waypointCondition(missing)).toEqual({ type: 'istio.io/WaypointBound', status: 'False', reason: 'WaypointNotFound', message: 'waypoint demo/gone (istio.io/use-waypoint on the namespace) does not exist' });
    expect(waypointCondition(irrelevant)).toBeUndefined();
    expect(waypointAnnotation(bound)).toBe('demo/waypoint');
    expect(waypointAnnotation(missing)).toBe('none: waypoint demo/gone (istio.io/use-waypoint on the namespace) does not exist');
    expect(waypointAnnotation(irrelevant)).toBeUndefined();
  });

  it.each<[string, Record<string, unknown> | undefined, WaypointBindingRecord | undefined, 'write' | 'none' | 'remove']>([
    ['a new binding is written', undefined, bound, 'write'],
    ['an unchanged condition is not', { conditions: [{ type: 'istio.io/WaypointBound', status: 'True', reason: 'Bound', message: 'bound to waypoint demo/waypoint (istio.io/use-waypoint on the namespace)', lastTransitionTime: 'x' }] }, bound, 'none'],
    ['a service no waypoint concerns is left alone', undefined, irrelevant, 'none'],
    ['our condition goes when it no longer applies', { conditions: [{ type: 'istio.io/WaypointBound', status: 'True', reason: 'Bound', message: 'm', lastTransitionTime: 'x' }] }, irrelevant, 'remove'],
  ])('service: %s', (_what, status, record, expected) => {
    const next = serviceConditionsWrite({ metadata: { name: 'backend', namespace: 'demo' }, ...(status ? { status } : {}) }, record, now);
    if (expected === 'none') expect(next).toBeUndefined();
    else if (expected === 'remove') expect(next).toEqual([]);
    else expect(next).toEqual([{ ...waypointCondition(record), lastTransitionTime: now.toISOString() }]);
  });

  it.each<[string, string | undefined, WaypointBindingRecord | undefined, string | null | undefined]>([
    ['written', undefined, bound, 'demo/waypoint'],
    ['unchanged', 'demo/waypoint', bound, undefined],
    ['changed', 'demo/waypoint', missing, 'none: waypoint demo/gone (istio.io/use-waypoint on the namespace) does not exist'],
    ['removed when it no longer applies', 'demo/waypoint', irrelevant, null],
    ['never added to unconcerned pods', undefined, irrelevant, undefined],
  ])('pod annotation: %s', (_what, current, record, expected) => {
    expect(podAnnotationWrite({ metadata: { ...(current ? { annotations: { 'amesh.io/waypoint': current } } : {}) } }, record)).toBe(expected);
  });
});

describe('WaypointStatusWriter', () => {
  it('writes each change once, even while the cache still shows the old object', async () => {
    const serviceWrites: string[] = [];
    const podWrites: Array<Record<string, string | null>> = [];
    const writer = new WaypointStatusWriter({
      log: silentLogger,
      now: () => now,
      patchServiceStatus: async (ns, name, status) => void serviceWrites.push(`${ns}/${name}:${status.conditions.map((c) => c.reason).join(',')}`),
      patchPodAnnotations: async (_ns, _name, annotations) => void podWrites.push(annotations),
    });
    const view = { services: [{ metadata: { name: 'backend', namespace: 'demo', resourceVersion: '1' } }], pods: [{ metadata: { name: 'backend-1', namespace: 'demo', resourceVersion: '1' } }] };
    const resources = { waypointBindings: new Map([['Service/demo/backend', bound], ['Pod/demo/backend-1', { ...bound, kind: 'Pod' as const, name: 'backend-1' }]]) };
    writer.reconcile(view, resources);
    await writer.idle();
    writer.reconcile(view, resources); // same resourceVersion: the watch event of our write has not arrived
    await writer.idle();
    expect(serviceWrites).toEqual(['demo/backend:Bound']);
    expect(podWrites).toEqual([{ 'amesh.io/waypoint': 'demo/waypoint' }]);
    writer.reconcile({ ...view, services: [{ metadata: { name: 'backend', namespace: 'demo', resourceVersion: '2' } }] }, { waypointBindings: new Map([['Service/demo/backend', missing]]) });
    await writer.idle();
    expect(serviceWrites).toEqual(['demo/backend:Bound', 'demo/backend:WaypointNotFound']);
    writer.stop();
  });
});

describe('amesh waypoint: pure pieces', () => {
  it('validates --for and picks names like istioctl (per-service-account: <sa>-waypoint)', () => {
    expect(parseWaypointFor('workload')).toBe('workload');
    expect(() => parseWaypointFor('services')).toThrow('--for services: expected one of service, workload, all, none');
    expect(defaultWaypointName(undefined)).toBe('waypoint');
    expect(defaultWaypointName('backend-sa')).toBe('backend-sa-waypoint');
  });

  it('the Gateway it applies', () => {
    expect(waypointGateway({ namespace: 'demo', name: 'w', for: 'all', serviceAccount: 'sa' })).toEqual({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'w', namespace: 'demo', labels: { 'istio.io/waypoint-for': 'all' }, annotations: { 'amesh.io/for-service-account': 'sa' } },
      spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    });
  });

  it('lists as a table', () => {
    const rows = [
      waypointRow({ metadata: { name: 'waypoint', namespace: 'demo' }, status: { conditions: [{ type: 'Programmed', status: 'True' }], addresses: [{ type: 'IPAddress', value: '10.96.0.9' }] } }),
      waypointRow({ metadata: { name: 'sa-waypoint', namespace: 'demo', labels: { 'istio.io/waypoint-for': 'workload' }, annotations: { 'amesh.io/for-service-account': 'sa' } } }),
    ];
    expect(formatWaypointTable(rows)).toEqual([
      'NAME          NAMESPACE   FOR        SERVICE-ACCOUNT   PROGRAMMED   ADDRESS',
      'waypoint      demo        service    -                 True         10.96.0.9',
      'sa-waypoint   demo        workload   sa                Unknown      -',
    ]);
  });

  it('describes progress and knows when it is done (for the current generation)', () => {
    expect(describeProgress(undefined)).toBe('the Gateway is not there yet');
    expect(describeProgress({ metadata: { generation: 1 } })).toBe('no status yet (is the amesh controller running?)');
    const pending = { metadata: { generation: 2 }, status: { conditions: [{ type: 'Accepted', status: 'True', observedGeneration: 2 }, { type: 'Programmed', status: 'False', reason: 'Pending', message: 'waiting', observedGeneration: 2 }] } };
    expect(describeProgress(pending)).toBe('Pending: waiting');
    expect(isProgrammed(pending)).toBe(false);
    const old = { metadata: { generation: 3 }, status: { conditions: [{ type: 'Programmed', status: 'True', observedGeneration: 2 }] } };
    expect(isProgrammed(old)).toBe(false);
    expect(describeProgress(old)).toBe('the controller has not seen the latest change yet');
    expect(isProgrammed({ metadata: { generation: 3 }, status: { conditions: [{ type: 'Programmed', status: 'True', observedGeneration: 3 }] } })).toBe(true);
  });

  it('finds the services bound to a waypoint from their conditions', () => {
    const svc = (ns: string, name: string, message: string, status = 'True') => ({ metadata: { name, namespace: ns }, status: { conditions: [{ type: 'istio.io/WaypointBound', status, message }] } });
    expect(
      boundServices([svc('demo', 'b', 'bound to waypoint demo/waypoint (x)'), svc('demo', 'a', 'bound to waypoint demo/waypoint (y)'), svc('demo', 'c', 'bound to waypoint demo/waypoint2 (x)'), svc('demo', 'd', 'waypoint demo/waypoint …', 'False')], 'demo', 'waypoint'),
    ).toEqual(['demo/a', 'demo/b']);
  });
});
