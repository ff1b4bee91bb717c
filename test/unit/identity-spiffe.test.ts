import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import {
  identityFromPeerCertificate,
  isValidTrustDomain,
  isValidWorkloadIdentity,
  parseSpiffeId,
  parseSpiffeUri,
  sameIdentity,
  toSpiffeUri,
} from '../../src/identity/spiffe.js';
import { createTestCa, workload } from '../helpers/pki.js';

describe('toSpiffeUri / parseSpiffeUri', () => {
  const good: Array<[string, { trustDomain: string; namespace: string; serviceAccount: string }]> = [
    ['spiffe://cluster.local/ns/default/sa/default', { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'default' }],
    ['spiffe://cluster.local/ns/default/sa/bookinfo-productpage', { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'bookinfo-productpage' }],
    ['spiffe://example.org/ns/team-a/sa/reviews-v1', { trustDomain: 'example.org', namespace: 'team-a', serviceAccount: 'reviews-v1' }],
    ['spiffe://td_1-x/ns/kube-system/sa/default', { trustDomain: 'td_1-x', namespace: 'kube-system', serviceAccount: 'default' }],
    ['spiffe://td_1/ns/n.s/sa/A_b-c.d', { trustDomain: 'td_1', namespace: 'n.s', serviceAccount: 'A_b-c.d' }],
  ];
  it.each(good)('%s round-trips', (uri, id) => {
    expect(parseSpiffeUri(uri)).toEqual(id);
    expect(toSpiffeUri(id)).toBe(uri);
    expect(isValidWorkloadIdentity(id)).toBe(true);
  });

  const bad = [
    '',
    'cluster.local/ns/a/sa/b',
    'spiffe://',
    'spiffe:///ns/a/sa/b',
    'spiffe://cluster.local',
    'spiffe://cluster.local/',
    'spiffe://cluster.local/ns/default',
    'spiffe://cluster.local/ns/default/sa',
    'spiffe://cluster.local/ns/default/sa/',
    'spiffe://cluster.local/ns//sa/default',
    'spiffe://cluster.local/ns/default/sa/default/',
    'spiffe://cluster.local/ns/default/sa/default/extra',
    'spiffe://cluster.local/sa/default/ns/default',
    'spiffe://cluster.local/NS/default/sa/default',
    'spiffe://Cluster.Local/ns/default/sa/default', // trust domains are lower case
    'spiffe://cluster.local:8080/ns/default/sa/default',
    'spiffe://user@cluster.local/ns/default/sa/default',
    'spiffe://cluster.local/ns/./sa/default',
    'spiffe://cluster.local/ns/../sa/default',
    'spiffe://cluster.local/ns/de fault/sa/default',
    'spiffe://cluster.local/ns/de%20fault/sa/default',
    'spiffe://cluster.local/ns/%61/sa/b',
    'spiffe://cluster.local/ns/default/sa/default?x=1',
    'spiffe://cluster.local/ns/default/sa/default#frag',
    'SPIFFE://cluster.local/ns/default/sa/default',
    'https://cluster.local/ns/default/sa/default',
    ' spiffe://cluster.local/ns/default/sa/default',
    `spiffe://cluster.local/ns/default/sa/${'a'.repeat(2100)}`,
  ];
  it.each(bad)('rejects %j', (uri) => {
    expect(parseSpiffeUri(uri)).toBeNull();
  });

  it('tells invalid identities apart', () => {
    expect(isValidWorkloadIdentity({ trustDomain: 'cluster.local', namespace: 'a/b', serviceAccount: 'x' })).toBe(false);
    expect(isValidWorkloadIdentity({ trustDomain: 'UPPER', namespace: 'a', serviceAccount: 'x' })).toBe(false);
    expect(isValidWorkloadIdentity({ trustDomain: 'cluster.local', namespace: '', serviceAccount: 'x' })).toBe(false);
  });

  it('validates trust domains', () => {
    expect(isValidTrustDomain('cluster.local')).toBe(true);
    expect(isValidTrustDomain('')).toBe(false);
    expect(isValidTrustDomain('a'.repeat(256))).toBe(false);
    expect(isValidTrustDomain('has space')).toBe(false);
  });

  it('compares identities field by field', () => {
    expect(sameIdentity(workload('a', 'b'), workload('a', 'b'))).toBe(true);
    expect(sameIdentity(workload('a', 'b'), workload('a', 'b', 'other.td'))).toBe(false);
  });
});

describe('parseSpiffeId', () => {
  it('accepts SPIFFE IDs outside the ns/sa form, which are no workload identities', () => {
    expect(parseSpiffeId('spiffe://example.org/workload/x')).toEqual({ trustDomain: 'example.org', path: '/workload/x' });
    expect(parseSpiffeId('spiffe://example.org')).toEqual({ trustDomain: 'example.org', path: '' });
    expect(parseSpiffeUri('spiffe://example.org/workload/x')).toBeNull();
  });

  it('rejects empty segments and bad trust domains', () => {
    expect(parseSpiffeId('spiffe://example.org/a//b')).toBeNull();
    expect(parseSpiffeId('spiffe://exa mple.org/a')).toBeNull();
    expect(parseSpiffeId(`spiffe://${'a'.repeat(256)}/a`)).toBeNull();
  });
});

describe('identityFromPeerCertificate', () => {
  it('reads the URI SAN of a workload certificate (crypto.X509Certificate and TLS peer form)', async () => {
    const ca = await createTestCa();
    const issued = await ca.issue(workload('shop', 'cart'));
    const leaf = new X509Certificate(issued.chainPem[0] as string);
    expect(identityFromPeerCertificate(leaf)).toEqual(['spiffe://cluster.local/ns/shop/sa/cart']);
    const peer = { raw: leaf.raw } as PeerCertificate;
    expect(identityFromPeerCertificate(peer)).toEqual(['spiffe://cluster.local/ns/shop/sa/cart']);
  });

  it('returns nothing for a missing or unparsable certificate, or one without URI SANs', async () => {
    expect(identityFromPeerCertificate(undefined)).toEqual([]);
    expect(identityFromPeerCertificate({} as PeerCertificate)).toEqual([]);
    expect(identityFromPeerCertificate({ raw: Buffer.from('not a certificate') } as PeerCertificate)).toEqual([]);
    const ca = await createTestCa();
    expect(identityFromPeerCertificate(new X509Certificate(ca.ca.certPem))).toEqual([]);
  });
});
