import { describe, expect, it } from 'vitest';
import { planClusterNetwork, podNames, renderHosts, renderNsswitch, renderResolvConf } from '../../src/sandbox/network/cluster-network.js';
import { isAmeshError } from '../../src/errors/amesh-error.js';

describe('planClusterNetwork', () => {
  it('numbers nodes from 1 and derives addresses, CIDRs and the fabric', () => {
    const plan = planClusterNetwork({ prefix: 'ams', nodes: ['sandbox-node1', 'sandbox-node2'] });
    expect(plan).toMatchObject({
      fabricNetns: 'ams-net',
      fabricNetnsPath: '/run/netns/ams-net',
      fabricIp: '10.250.0.254',
      serviceCidr: '10.96.0.0/16',
      clusterDnsIp: '10.96.0.10',
      apiServiceIp: '10.96.0.1',
    });
    expect(plan.nodes).toEqual([
      { name: 'sandbox-node1', netns: 'ams-node1', netnsPath: '/run/netns/ams-node1', ip: '10.250.0.1', podCidr: '10.244.1.0/24' },
      { name: 'sandbox-node2', netns: 'ams-node2', netnsPath: '/run/netns/ams-node2', ip: '10.250.0.2', podCidr: '10.244.2.0/24' },
    ]);
  });

  it.each([
    ['fits as is', 'ams', 'n1', 'ams-n1'],
    ['already carries the prefix', 'amesh', 'amesh-worker2', 'amesh-worker2'],
    ['sandbox- dropped to fit', 'ams', 'sandbox-node12', 'ams-node12'],
    ['indexed when nothing else fits', 'ams', 'a-very-long-node-name', 'ams-n1'],
    ['indexed when it would look like a pod namespace', 'ams', 'pabc123', 'ams-n1'],
    ['indexed when it would take the fabric name', 'ams', 'net', 'ams-n1'],
  ])('node netns name: %s', (_what, prefix, node, netns) => {
    expect(planClusterNetwork({ prefix, nodes: [node] }).nodes[0]?.netns).toBe(netns);
  });

  it.each([
    ['an empty prefix', { prefix: '', nodes: ['a'] }, /prefix/],
    ['a prefix too long for pod names', { prefix: 'abcdefgh', nodes: ['a'] }, /too long/],
    ['no nodes', { prefix: 'ams', nodes: [] }, /at least one node/],
    ['a duplicate node', { prefix: 'ams', nodes: ['a', 'a'] }, /used twice/],
    ['a bad node name', { prefix: 'ams', nodes: ['a b'] }, /node name/],
    ['a fabric address off the fabric', { prefix: 'ams', nodes: ['a'], fabricIp: '10.1.0.1' }, /fabricIp/],
    ['a fabric address equal to a node', { prefix: 'ams', nodes: ['a'], fabricIp: '10.250.0.1' }, /collides/],
  ])('rejects %s with AMESH_CONFIG_INVALID', (_what, layout, message) => {
    let error: unknown;
    try {
      planClusterNetwork(layout);
    } catch (err) {
      error = err;
    }
    expect(isAmeshError(error, 'AMESH_CONFIG_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(message);
  });
});

describe('podNames', () => {
  it('is stable per uid, distinct across uids and within 15 characters', () => {
    const a = podNames('ams', '6b0f4c2e-1111-4222-8333-944455556666');
    expect(a).toEqual(podNames('ams', '6b0f4c2e-1111-4222-8333-944455556666'));
    expect(a.netns).toMatch(/^ams-p[0-9a-f]{10}$/);
    expect(a.hostVeth).toMatch(/^ap[0-9a-f]{10}$/);
    expect(podNames('ams', 'other').netns).not.toBe(a.netns);
    const long = podNames('amesh77', 'x');
    expect(long.netns.length).toBeLessThanOrEqual(15);
    expect(long.netns).toMatch(/^amesh77-p[0-9a-f]{6}$/);
  });
});

describe('pod DNS files', () => {
  it('renders resolv.conf the way the kubelet does for ClusterFirst', () => {
    expect(renderResolvConf({ nameserver: '10.96.0.10', searches: ['demo.svc.cluster.local', 'svc.cluster.local', 'cluster.local'], ndots: 5 })).toBe(
      'nameserver 10.96.0.10\nsearch demo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n',
    );
    expect(renderResolvConf({ nameserver: '10.96.0.10', searches: [], ndots: 1 })).toBe('nameserver 10.96.0.10\noptions ndots:1\n');
  });

  it('renders hosts with the pod hostname', () => {
    expect(renderHosts('10.244.1.2', 'web-0')).toContain('10.244.1.2\tweb-0\n');
    expect(renderHosts('10.244.1.2', 'web-0')).toContain('127.0.0.1\tlocalhost');
  });

  it('forces hosts: files dns and keeps the rest of the host nsswitch.conf', () => {
    const out = renderNsswitch('passwd: files systemd\nhosts: files resolve [!UNAVAIL=return] dns myhostname\nnetworks: files\n');
    expect(out).toBe('passwd: files systemd\nnetworks: files\nhosts: files dns\n');
    expect(renderNsswitch('')).toBe('passwd: files\ngroup: files\nhosts: files dns\n');
  });
});
