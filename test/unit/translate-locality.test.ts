import { describe, expect, it } from 'vitest';
import type { PodObject } from '../../src/controller/translate/enrolment.js';
import { labelLocality, nodeLocality, workloadLocality, type NodeObject } from '../../src/controller/translate/locality.js';
import { translateWorkload } from '../../src/controller/translate/workload.js';

const pod = (labels: Record<string, string> = {}): PodObject => ({
  metadata: { name: 'p', namespace: 'demo', uid: 'u', labels },
  spec: { nodeName: 'n1' },
  status: { phase: 'Running', podIP: '10.244.0.9' },
});
const node = (labels: Record<string, string>): NodeObject => ({ metadata: { name: 'n1', labels } });
const ZONED = node({ 'topology.kubernetes.io/region': 'eu-west', 'topology.kubernetes.io/zone': 'eu-west-1a', 'topology.istio.io/subzone': 'rack-7' });

describe('workloadLocality (Istio: the pod label wins, else the node topology labels)', () => {
  it.each([
    ['no label, no node', pod(), undefined, undefined],
    ['no label, node without topology labels', pod(), node({ 'kubernetes.io/hostname': 'n1' }), undefined],
    ['node region/zone/subzone', pod(), ZONED, { region: 'eu-west', zone: 'eu-west-1a', subzone: 'rack-7' }],
    ['node zone only', pod(), node({ 'topology.kubernetes.io/zone': 'z1' }), { zone: 'z1' }],
    ['deprecated failure-domain labels', pod(), node({ 'failure-domain.beta.kubernetes.io/region': 'r0', 'failure-domain.beta.kubernetes.io/zone': 'z0' }), { region: 'r0', zone: 'z0' }],
    ['GA label beats the deprecated one', pod(), node({ 'topology.kubernetes.io/zone': 'ga', 'failure-domain.beta.kubernetes.io/zone': 'old' }), { zone: 'ga' }],
    ['pod label wins over the node', pod({ 'topology.istio.io/locality': 'us-east.us-east-1b.r9' }), ZONED, { region: 'us-east', zone: 'us-east-1b', subzone: 'r9' }],
    ['pod label region only leaves zone and subzone out', pod({ 'topology.istio.io/locality': 'us-east' }), ZONED, { region: 'us-east' }],
    ['pod label with slashes', pod({ 'topology.istio.io/locality': 'r/z/s' }), undefined, { region: 'r', zone: 'z', subzone: 's' }],
    ['subzone keeps further dots', pod({ 'topology.istio.io/locality': 'r.z.s.t' }), undefined, { region: 'r', zone: 'z', subzone: 's.t' }],
    ['legacy istio-locality label', pod({ 'istio-locality': 'r1.z1' }), ZONED, { region: 'r1', zone: 'z1' }],
    ['an empty pod label falls back to the node', pod({ 'topology.istio.io/locality': ' ' }), ZONED, { region: 'eu-west', zone: 'eu-west-1a', subzone: 'rack-7' }],
  ])('%s', (_what, p, n, expected) => {
    expect(workloadLocality(p, n)).toEqual(expected);
  });

  it('labelLocality and nodeLocality alone', () => {
    expect(labelLocality(undefined)).toBeUndefined();
    expect(nodeLocality(undefined)).toBeUndefined();
    expect(nodeLocality(node({ 'topology.istio.io/subzone': 's' }))).toEqual({ subzone: 's' });
  });

  it('translateWorkload carries it, and leaves it out when there is none', () => {
    const ctx = { namespace: undefined, services: [], trustDomain: 'cluster.local' };
    expect(translateWorkload(pod(), { ...ctx, node: ZONED }).locality).toEqual({ region: 'eu-west', zone: 'eu-west-1a', subzone: 'rack-7' });
    expect('locality' in translateWorkload(pod(), ctx)).toBe(false);
  });
});
