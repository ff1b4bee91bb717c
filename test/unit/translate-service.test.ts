import { describe, expect, it } from 'vitest';
import { clusterAddresses, numericTargetPort, serviceHostname, serviceKey, translateService, type ServiceObject } from '../../src/controller/translate/service.js';

const svc = (spec: ServiceObject['spec'], name = 'web', namespace = 'demo'): ServiceObject => ({ metadata: { name, namespace }, spec });

describe('translateService', () => {
  it('publishes a ClusterIP service with its hostname and TCP ports', () => {
    expect(
      translateService(
        svc({
          clusterIP: '10.96.0.10',
          selector: { app: 'web' },
          ports: [
            { name: 'http', port: 80, targetPort: 8080 },
            { name: 'dns', port: 53, protocol: 'UDP' },
            { name: 'named', port: 81, targetPort: 'http' },
            { name: 'digits', port: 82, targetPort: '9090' },
            { name: 'same', port: 83 },
          ],
        }),
      ),
    ).toEqual({
      name: 'web',
      namespace: 'demo',
      hostname: 'web.demo.svc.cluster.local',
      addresses: ['10.96.0.10'],
      ports: [
        { servicePort: 80, targetPort: 8080 },
        { servicePort: 81, targetPort: 0 },
        { servicePort: 82, targetPort: 9090 },
        { servicePort: 83, targetPort: 83 },
      ],
    });
  });

  it.each([
    ['headless', { clusterIP: 'None', ports: [{ port: 80 }] }],
    ['no address yet', { ports: [{ port: 80 }] }],
    ['headless dual-stack', { clusterIP: 'None', clusterIPs: ['None'], ports: [{ port: 80 }] }],
  ])('skips a %s service', (_what, spec) => {
    expect(translateService(svc(spec))).toBeUndefined();
  });

  it('lists every family of a dual-stack service and honours the cluster domain', () => {
    const s = translateService(svc({ clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00::a'], ports: [] }), 'example.org');
    expect(s?.addresses).toEqual(['10.96.0.10', 'fd00::a']);
    expect(s?.hostname).toBe('web.demo.svc.example.org');
  });

  it('names services and keys', () => {
    expect(serviceHostname('a', 'b')).toBe('a.b.svc.cluster.local');
    expect(serviceKey('b', 'a.b.svc.cluster.local')).toBe('b/a.b.svc.cluster.local');
    expect(numericTargetPort({ port: 1, targetPort: 'x1' })).toBe(0);
    expect(clusterAddresses(svc({ clusterIP: '' }))).toEqual([]);
  });
});
