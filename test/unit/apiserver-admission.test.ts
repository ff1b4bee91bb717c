import { describe, expect, it } from 'vitest';
import { admit, type AdmissionContext } from '../../src/sandbox/apiserver/admission/index.js';
import { ApiError, type KubeObject, type ResourceType } from '../../src/sandbox/apiserver/types.js';

function resourceType(apiVersion: string, kind: string, namespaced = true): ResourceType {
  const group = apiVersion.includes('/') ? (apiVersion.split('/')[0] as string) : '';
  const plural = `${kind.toLowerCase()}s`;
  return { group, version: 'v1', kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), namespaced, shortNames: [], categories: [], verbs: ['create', 'get', 'update'], statusSubresource: true };
}

interface Pool {
  allocated: string[];
  released: string[];
  inUse: Set<string>;
}

function context(object: KubeObject, extra: Partial<AdmissionContext> = {}, pool: Pool = { allocated: [], released: [], inUse: new Set() }): AdmissionContext {
  let next = 20;
  return {
    operation: 'CREATE',
    resourceType: resourceType(object.apiVersion, object.kind, object.kind !== 'Namespace' && object.kind !== 'CustomResourceDefinition'),
    allocateClusterIp: () => {
      const ip = `10.96.0.${next++}`;
      pool.allocated.push(ip);
      return ip;
    },
    releaseClusterIp: (ip) => void pool.released.push(ip),
    isClusterIpInUse: (ip) => pool.inUse.has(ip),
    ...extra,
  };
}

function run(object: KubeObject, extra: Partial<AdmissionContext> = {}, pool?: Pool): KubeObject {
  return admit(object, context(object, extra, pool));
}

function rejection(object: KubeObject, extra: Partial<AdmissionContext> = {}, pool?: Pool): ApiError {
  try {
    run(object, extra, pool);
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error(`expected ${object.kind} to be rejected`);
}

const fields = (err: ApiError): string[] => (err.status.details?.causes ?? []).map((c) => c.field ?? '');

function pod(spec: Record<string, unknown> = {}, name = 'web-0'): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'demo', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'hashicorp/http-echo:1.0', ports: [{ containerPort: 5678 }] }], ...spec } };
}

function deployment(edit: (spec: Record<string, unknown>) => void = () => undefined): KubeObject {
  const spec: Record<string, unknown> = {
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'nginx' }] } },
  };
  edit(spec);
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'demo' }, spec };
}

function service(spec: Record<string, unknown>, name = 'web'): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec };
}

describe('admission: metadata', () => {
  it.each<[string, KubeObject, string, RegExp]>([
    ['a missing name', { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} }, 'metadata.name', /Required value: name or generateName is required/],
    ['an upper-case name', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'Bad' } }, 'metadata.name', /RFC 1123 subdomain/],
    ['a dotted namespace name', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a.b' } }, 'metadata.name', /RFC 1123 label/],
    ['a service name starting with a digit', { apiVersion: 'v1', kind: 'Service', metadata: { name: '1web' }, spec: { ports: [{ port: 80 }] } }, 'metadata.name', /DNS-1035 label/],
    ['a bad label key', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', labels: { 'bad key': 'x' } } }, 'metadata.labels', /name part must consist/],
    ['a bad label value', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', labels: { app: 'a b' } } }, 'metadata.labels', /a valid label must be an empty string/],
    ['a bad annotation key', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', annotations: { 'a/b/c': 'x' } } }, 'metadata.annotations', /qualified name/],
    ['an owner reference without uid', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'p', uid: '' }] } }, 'metadata.ownerReferences[0].uid', /uid must not be empty/],
  ])('rejects %s', (_name, object, field, message) => {
    const err = rejection(object);
    expect(err.code).toBe(422);
    expect(err.reason).toBe('Invalid');
    expect(fields(err)).toContain(field);
    expect(err.message).toMatch(message);
  });

  it('accepts generateName without a name, prefixed label keys and long annotation values', () => {
    expect(() => run({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'cfg-', labels: { 'app.kubernetes.io/name': 'x' }, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"a b": 1}'.repeat(100) } } })).not.toThrow();
  });

  it('never mutates its input', () => {
    const input = pod();
    const before = structuredClone(input);
    run(input);
    expect(input).toEqual(before);
  });
});

describe('admission: Namespace', () => {
  it('defaults status.phase to Active', () => {
    expect(run({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } })['status']).toEqual({ phase: 'Active' });
  });
});

describe('admission: Pod', () => {
  it('applies the Kubernetes defaults', () => {
    const out = run(pod({ containers: [{ name: 'app', image: 'curlimages/curl', env: [{ name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }] }, { name: 'pinned', image: 'nginx:1.27' }] }));
    const spec = out['spec'] as Record<string, unknown>;
    expect(spec).toMatchObject({ restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', serviceAccountName: 'default', serviceAccount: 'default', terminationGracePeriodSeconds: 30, schedulerName: 'default-scheduler', enableServiceLinks: true, securityContext: {} });
    const [first, second] = spec['containers'] as Array<Record<string, unknown>>;
    expect(first).toMatchObject({ imagePullPolicy: 'Always', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', env: [{ name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName', apiVersion: 'v1' } } }] });
    expect(second?.['imagePullPolicy']).toBe('IfNotPresent');
    expect(spec['tolerations']).toEqual([
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    ]);
    expect(out['status']).toMatchObject({ phase: 'Pending' });
  });

  it('keeps an explicit serviceAccountName and mirrors it', () => {
    const spec = run(pod({ serviceAccountName: 'reviews' }))['spec'] as Record<string, unknown>;
    expect([spec['serviceAccountName'], spec['serviceAccount']]).toEqual(['reviews', 'reviews']);
  });

  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ['no containers', { containers: [] }, 'spec.containers', /Required value/],
    ['a container without image', { containers: [{ name: 'app' }] }, 'spec.containers[0].image', /Required value/],
    ['a container without name', { containers: [{ image: 'nginx' }] }, 'spec.containers[0].name', /Required value/],
    ['duplicate container names', { containers: [{ name: 'a', image: 'x' }, { name: 'a', image: 'y' }] }, 'spec.containers[1].name', /Duplicate value: "a"/],
    ['an init container named like a container', { initContainers: [{ name: 'app', image: 'x' }] }, 'spec.containers[0].name', /Duplicate value: "app"/],
    ['port 0', { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 0 }] }] }, 'spec.containers[0].ports[0].containerPort', /Invalid value: 0: must be between 1 and 65535, inclusive/],
    ['port 70000', { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 70000 }] }] }, 'spec.containers[0].ports[0].containerPort', /between 1 and 65535/],
    ['a bad protocol', { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 80, protocol: 'HTTP' }] }] }, 'spec.containers[0].ports[0].protocol', /Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"/],
    ['an env entry without name', { containers: [{ name: 'a', image: 'x', env: [{ value: '1' }] }] }, 'spec.containers[0].env[0].name', /Required value/],
    ['a mount of an unknown volume', { containers: [{ name: 'a', image: 'x', volumeMounts: [{ name: 'data', mountPath: '/d' }] }] }, 'spec.containers[0].volumeMounts[0].name', /Not found: "data"/],
    ['a bad restartPolicy', { restartPolicy: 'Sometimes' }, 'spec.restartPolicy', /Unsupported value: "Sometimes"/],
  ])('rejects %s', (_name, spec, field, message) => {
    const err = rejection(pod(spec));
    expect(err.message).toMatch(/^Pod "web-0" is invalid: /);
    expect(fields(err)).toContain(field);
    expect(err.message).toMatch(message);
  });

  it('reports several errors in brackets, like kube-apiserver', () => {
    const err = rejection(pod({ containers: [{ name: 'a' }, { name: 'a', image: 'x' }] }));
    expect(err.message).toBe('Pod "web-0" is invalid: [spec.containers[0].image: Required value, spec.containers[1].name: Duplicate value: "a"]');
  });

  describe('updates', () => {
    const created = run(pod());
    const update = (edit: (spec: Record<string, unknown>) => void): KubeObject => {
      const next = structuredClone(created);
      edit(next['spec'] as Record<string, unknown>);
      return next;
    };
    const updateCtx = { operation: 'UPDATE' as const, oldObject: created };

    it('allows the image, tolerations additions, labels, and binding to a node once', () => {
      expect(() => run(update((s) => ((s['containers'] as Array<Record<string, unknown>>)[0]!['image'] = 'hashicorp/http-echo:2.0')), updateCtx)).not.toThrow();
      expect(() => run(update((s) => (s['tolerations'] as unknown[]).push({ key: 'x', operator: 'Exists' })), updateCtx)).not.toThrow();
      const relabelled = structuredClone(created);
      relabelled.metadata.labels = { app: 'web', version: 'v2' };
      expect(() => run(relabelled, updateCtx)).not.toThrow();
      const bound = run(update((s) => (s['nodeName'] = 'sandbox-node1')), updateCtx);
      expect(() => run(update((s) => (s['nodeName'] = 'sandbox-node2')), { operation: 'UPDATE', oldObject: bound })).toThrow(/pod updates may not change fields/);
    });

    it('accepts a PUT that omits defaulted fields', () => {
      expect(() => run(pod(), updateCtx)).not.toThrow();
    });

    it.each<[string, (spec: Record<string, unknown>) => void]>([
      ['a container port', (s) => ((s['containers'] as Array<Record<string, unknown>>)[0]!['ports'] = [{ containerPort: 80, protocol: 'TCP' }])],
      ['the restart policy', (s) => (s['restartPolicy'] = 'Never')],
      ['the service account', (s) => (s['serviceAccountName'] = 'other')],
    ])('forbids changing %s', (_name, edit) => {
      const err = rejection(update(edit), updateCtx);
      expect(fields(err)).toEqual(['spec']);
      expect(err.message).toContain('Forbidden: pod updates may not change fields other than `spec.containers[*].image`');
    });

    it('forbids removing a toleration', () => {
      expect(fields(rejection(update((s) => (s['tolerations'] = [])), updateCtx))).toEqual(['spec.tolerations']);
    });

    it('skips spec checks for status writes', () => {
      const statusWrite = update((s) => (s['restartPolicy'] = 'Never'));
      statusWrite['status'] = { phase: 'Running' };
      expect(run(statusWrite, { ...updateCtx, subresource: 'status' })['status']).toEqual({ phase: 'Running' });
    });
  });
});

describe('admission: Service', () => {
  it('defaults type, protocol, targetPort and allocates a ClusterIP', () => {
    const pool: Pool = { allocated: [], released: [], inUse: new Set() };
    const out = run(service({ selector: { app: 'web' }, ports: [{ port: 80 }] }), {}, pool);
    expect(out['spec']).toEqual({
      selector: { app: 'web' },
      ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }],
      type: 'ClusterIP',
      sessionAffinity: 'None',
      internalTrafficPolicy: 'Cluster',
      clusterIP: '10.96.0.20',
      clusterIPs: ['10.96.0.20'],
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
    });
    expect(pool.allocated).toEqual(['10.96.0.20']);
  });

  it('honours a free requested ClusterIP and headless None without allocating', () => {
    const pool: Pool = { allocated: [], released: [], inUse: new Set(['10.96.0.5']) };
    expect((run(service({ clusterIP: '10.96.0.1', ports: [{ port: 443, targetPort: 6443 }] }, 'kubernetes'), {}, pool)['spec'] as Record<string, unknown>)['clusterIPs']).toEqual(['10.96.0.1']);
    const headless = run(service({ clusterIP: 'None', selector: { app: 'db' } }), {}, pool)['spec'] as Record<string, unknown>;
    expect([headless['clusterIP'], headless['clusterIPs']]).toEqual(['None', ['None']]);
    expect(pool.allocated).toEqual([]);
  });

  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ['no ports', { selector: { app: 'web' } }, 'spec.ports', /Required value/],
    ['port 0', { ports: [{ port: 0 }] }, 'spec.ports[0].port', /must be between 1 and 65535/],
    ['unnamed ports when there are two', { ports: [{ port: 80, name: 'http' }, { port: 443 }] }, 'spec.ports[1].name', /Required value/],
    ['duplicate port names', { ports: [{ port: 80, name: 'http' }, { port: 81, name: 'http' }] }, 'spec.ports[1].name', /Duplicate value/],
    ['a bad type', { type: 'Magic', ports: [{ port: 80 }] }, 'spec.type', /Unsupported value: "Magic"/],
    ['a bad protocol', { ports: [{ port: 80, protocol: 'ICMP' }] }, 'spec.ports[0].protocol', /Unsupported value/],
    ['an allocated ClusterIP', { clusterIP: '10.96.0.5', ports: [{ port: 80 }] }, 'spec.clusterIPs', /failed to allocate IP 10.96.0.5: provided IP is already allocated/],
    ['a ClusterIP outside the range', { clusterIP: '192.168.1.1', ports: [{ port: 80 }] }, 'spec.clusterIPs', /not in the valid range. The range of valid IPs is 10.96.0.0\/16/],
    ['ExternalName without a name', { type: 'ExternalName' }, 'spec.externalName', /Required value/],
  ])('rejects %s (and allocates nothing)', (_name, spec, field, message) => {
    const pool: Pool = { allocated: [], released: [], inUse: new Set(['10.96.0.5']) };
    const err = rejection(service(spec), {}, pool);
    expect(fields(err)).toContain(field);
    expect(err.message).toMatch(message);
    expect(pool.allocated).toEqual([]);
  });

  it('keeps the ClusterIP on update when omitted and refuses to change it', () => {
    const created = run(service({ ports: [{ port: 80 }] }));
    const put = run(service({ ports: [{ port: 8080 }] }), { operation: 'UPDATE', oldObject: created });
    expect((put['spec'] as Record<string, unknown>)['clusterIP']).toBe('10.96.0.20');
    const err = rejection(service({ clusterIP: '10.96.0.99', ports: [{ port: 80 }] }), { operation: 'UPDATE', oldObject: created });
    expect(err.message).toBe('Service "web" is invalid: spec.clusterIP: Invalid value: "10.96.0.99": field is immutable');
  });

  it('releases the ClusterIP when a Service becomes ExternalName', () => {
    const pool: Pool = { allocated: [], released: [], inUse: new Set() };
    const created = run(service({ ports: [{ port: 80 }] }), {}, pool);
    const out = run(service({ type: 'ExternalName', externalName: 'example.com' }), { operation: 'UPDATE', oldObject: created }, pool);
    expect(pool.released).toEqual(['10.96.0.20']);
    expect((out['spec'] as Record<string, unknown>)['clusterIP']).toBeUndefined();
  });
});

describe('admission: Deployment, ReplicaSet, DaemonSet', () => {
  it('applies workload and template defaults', () => {
    const spec = run(deployment())['spec'] as Record<string, unknown>;
    expect(spec).toMatchObject({ replicas: 1, revisionHistoryLimit: 10, progressDeadlineSeconds: 600, strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } } });
    const template = (spec['template'] as { spec: Record<string, unknown> }).spec;
    expect(template).toMatchObject({ restartPolicy: 'Always', dnsPolicy: 'ClusterFirst' });
    expect(template['serviceAccountName']).toBeUndefined(); // only real Pods get the SA default
    const ds = run({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent' }, spec: deployment()['spec'] })['spec'] as Record<string, unknown>;
    expect(ds['replicas']).toBeUndefined();
    expect(ds['updateStrategy']).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
  });

  it.each<[string, (spec: Record<string, unknown>) => void, string, string]>([
    ['a missing selector', (s) => delete s['selector'], 'spec.selector', 'spec.selector: Required value'],
    ['an empty selector', (s) => (s['selector'] = {}), 'spec.selector', 'spec.selector: Invalid value: {}: empty selector is invalid for deployment'],
    ['a selector that misses the template', (s) => (s['selector'] = { matchLabels: { app: 'other' } }), 'spec.template.metadata.labels', 'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match template `labels`'],
    ['negative replicas', (s) => (s['replicas'] = -1), 'spec.replicas', 'spec.replicas: Invalid value: -1: must be greater than or equal to 0'],
    ['a template container without image', (s) => ((s['template'] as { spec: { containers: Array<Record<string, unknown>> } }).spec.containers = [{ name: 'app' }]), 'spec.template.spec.containers[0].image', 'spec.template.spec.containers[0].image: Required value'],
    ['restartPolicy Never', (s) => ((s['template'] as { spec: Record<string, unknown> }).spec['restartPolicy'] = 'Never'), 'spec.template.spec.restartPolicy', 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'],
    ['Recreate with rollingUpdate', (s) => (s['strategy'] = { type: 'Recreate', rollingUpdate: { maxSurge: 1 } }), 'spec.strategy.rollingUpdate', "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"],
  ])('rejects %s', (_name, edit, field, message) => {
    const err = rejection(deployment(edit));
    expect(fields(err)).toEqual([field]);
    expect(err.message).toBe(`Deployment.apps "web" is invalid: ${message}`);
  });

  it('matches matchExpressions selectors', () => {
    expect(() => run(deployment((s) => (s['selector'] = { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] })))).not.toThrow();
    expect(fields(rejection(deployment((s) => (s['selector'] = { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }))))).toEqual(['spec.template.metadata.labels']);
    expect(fields(rejection(deployment((s) => (s['selector'] = { matchExpressions: [{ key: 'app', operator: 'Near' }] }))))).toEqual(['spec.selector.matchExpressions[0].operator']);
  });

  it('keeps the selector immutable on update', () => {
    const created = run(deployment());
    const changed = deployment((s) => {
      s['selector'] = { matchLabels: { app: 'web', tier: 'x' } };
      (s['template'] as { metadata: { labels: Record<string, string> } }).metadata.labels = { app: 'web', tier: 'x' };
    });
    const err = rejection(changed, { operation: 'UPDATE', oldObject: created });
    expect(fields(err)).toEqual(['spec.selector']);
    expect(err.message).toContain('field is immutable');
    expect(() => run(deployment((s) => (s['replicas'] = 5)), { operation: 'UPDATE', oldObject: created })).not.toThrow();
  });
});

describe('admission: ConfigMap and Secret', () => {
  it('folds Secret stringData into base64 data and defaults the type', () => {
    const out = run({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { a: Buffer.from('x').toString('base64') }, stringData: { token: 'hunter2' } });
    expect(out['data']).toEqual({ a: 'eA==', token: Buffer.from('hunter2').toString('base64') });
    expect(out['stringData']).toBeUndefined();
    expect(out['type']).toBe('Opaque');
  });

  it.each<[string, KubeObject, string]>([
    ['a bad ConfigMap key', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { 'a/b': 'x' } }, 'data[a/b]'],
    ['a non-string ConfigMap value', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: 1 } }, 'data[a]'],
    ['a key in data and binaryData', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: 'x' }, binaryData: { a: 'eA==' } }, 'data[a]'],
    ['Secret data that is not base64', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { a: 'not base64!' } }, 'data[a]'],
    ['a TLS Secret without a key', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'eA==' } }, 'data[tls.key]'],
  ])('rejects %s', (_name, object, field) => {
    const err = rejection(object);
    expect(fields(err)).toContain(field);
    expect(err.message).not.toContain('not base64!');
  });
});

describe('admission: EndpointSlice and minimal kinds', () => {
  it('requires addressType and checks addresses', () => {
    const slice = (extra: Record<string, unknown>): KubeObject => ({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-abc' }, ...extra });
    expect(fields(rejection(slice({ endpoints: [] })))).toEqual(['addressType']);
    expect(fields(rejection(slice({ addressType: 'IPv4', endpoints: [{ addresses: ['nope'] }] })))).toEqual(['endpoints[0].addresses[0]']);
    expect((run(slice({ addressType: 'IPv4', endpoints: [{ addresses: ['10.244.1.5'] }], ports: [{ port: 80 }] }))['ports'] as unknown[])[0]).toEqual({ port: 80, protocol: 'TCP' });
  });

  it.each<KubeObject>([
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } },
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'sandbox-node1' }, spec: { podCIDR: '10.244.1.0/24' } },
    { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'amesh-controller' }, spec: { holderIdentity: 'x' } },
    { apiVersion: 'v1', kind: 'Event', metadata: { name: 'web.17a' }, reason: 'Started' },
    { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'web' }, subsets: [] },
  ])('admits a $kind with metadata checks only', (object) => {
    expect(run(object)).toEqual(object);
  });
});

describe('admission: CustomResourceDefinition', () => {
  const crd = (spec: Record<string, unknown>, name = 'widgets.example.com'): KubeObject => ({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name }, spec });
  const valid = { group: 'example.com', scope: 'Namespaced', names: { plural: 'widgets', kind: 'Widget' }, versions: [{ name: 'v1', served: true, storage: true }] };

  it('accepts a valid CRD and defaults names', () => {
    const spec = run(crd(valid))['spec'] as { names: Record<string, unknown> };
    expect(spec.names).toEqual({ plural: 'widgets', kind: 'Widget', singular: 'widget', listKind: 'WidgetList' });
  });

  it.each<[string, KubeObject, string]>([
    ['a name that is not plural.group', crd(valid, 'widget.example.com'), 'metadata.name'],
    ['no group', crd({ ...valid, group: undefined }), 'spec.group'],
    ['no plural', crd({ ...valid, names: { kind: 'Widget' } }), 'spec.names.plural'],
    ['no kind', crd({ ...valid, names: { plural: 'widgets' } }), 'spec.names.kind'],
    ['a bad scope', crd({ ...valid, scope: 'Global' }), 'spec.scope'],
    ['two storage versions', crd({ ...valid, versions: [{ name: 'v1', served: true, storage: true }, { name: 'v2', served: true, storage: true }] }), 'spec.versions'],
    ['no versions', crd({ ...valid, versions: [] }), 'spec.versions'],
  ])('rejects %s', (_name, object, field) => {
    expect(fields(rejection(object))).toContain(field);
  });
});

describe('admission: custom resources (Istio, Gateway API, CRD kinds)', () => {
  it('accepts any object spec and rejects a non-object spec', () => {
    const vs: KubeObject = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r' }, spec: { hosts: ['a'], http: [{ route: [{ destination: { host: 'a' } }] }] } };
    expect(run(vs)).toEqual(vs);
    expect(fields(rejection({ ...vs, spec: 'oops' }))).toEqual(['spec']);
  });

  it('checks PeerAuthentication mtls.mode and AuthorizationPolicy action', () => {
    const pa = (mode: string): KubeObject => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default' }, spec: { mtls: { mode } } });
    expect(() => run(pa('STRICT'))).not.toThrow();
    expect(rejection(pa('STRCT')).message).toBe('PeerAuthentication.security.istio.io "default" is invalid: spec.mtls.mode: Unsupported value: "STRCT": supported values: "DISABLE", "PERMISSIVE", "STRICT", "UNSET"');
    const ap: KubeObject = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny' }, spec: { action: 'BLOCK' } };
    expect(fields(rejection(ap))).toEqual(['spec.action']);
  });
});
