/**
 * What the HBONE ends read from a peer's certificate, and that each distinct certificate is
 * parsed once: a handshake per connection must not parse the same leaf in JavaScript again.
 */
import { X509Certificate } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type tls from 'node:tls';
import { clearLeafFacts, connectionNotAfterMs, leafFacts, peerCertificateFacts, x509Facts } from '../../src/hbone/peer.js';
import { createTestCa, type TestCa } from '../helpers/pki.js';

let ca: TestCa;
let leaf: X509Certificate;
beforeAll(async () => {
  ca = await createTestCa();
  leaf = new X509Certificate((await ca.issue('spiffe://cluster.local/ns/shop/sa/cart')).chainPem[0]!);
});
afterEach(() => clearLeafFacts());

describe('leaf certificate facts', () => {
  it('reads the SPIFFE IDs and notAfter of a certificate', () => {
    const facts = x509Facts(leaf);
    expect(facts.spiffeIds).toEqual(['spiffe://cluster.local/ns/shop/sa/cart']);
    expect(facts.notAfterMs).toBe(Date.parse(leaf.validTo));
  });

  it('parses a certificate once, then answers from the cache by its fingerprint', () => {
    let reads = 0;
    const read = () => {
      reads++;
      return { der: leaf.raw, validTo: leaf.validTo };
    };
    const first = leafFacts(leaf.fingerprint256, read);
    expect(leafFacts(leaf.fingerprint256, read)).toBe(first);
    // The object Node hands to checkServerIdentity carries the same fingerprint format.
    expect(peerCertificateFacts({ fingerprint256: leaf.fingerprint256, raw: leaf.raw, valid_to: leaf.validTo } as never)).toBe(first);
    expect(reads).toBe(1);
  });

  it('keeps at most 1024 certificates, forgetting the oldest first', () => {
    let reads = 0;
    // No DER: the bookkeeping is under test, not 1 025 parses.
    const read = () => {
      reads++;
      return { der: undefined, validTo: leaf.validTo };
    };
    for (let i = 0; i <= 1024; i++) leafFacts(`fp-${i}`, read);
    expect(reads).toBe(1025);
    leafFacts('fp-1024', read);
    leafFacts('fp-1', read);
    expect(reads).toBe(1025);
    leafFacts('fp-0', read);
    expect(reads).toBe(1026);
  });

  it('never caches under an empty fingerprint, and gives no identity without a certificate', () => {
    let reads = 0;
    const read = () => {
      reads++;
      return { der: leaf.raw, validTo: leaf.validTo };
    };
    leafFacts('', read);
    leafFacts('', read);
    expect(reads).toBe(2);
    expect(peerCertificateFacts(undefined)).toEqual({ spiffeIds: [], notAfterMs: Infinity });
  });

  it('reads our own certificate once per secure context, and takes the earlier notAfter of the two ends', () => {
    let ownReads = 0;
    const socket = {
      getX509Certificate: () => {
        ownReads++;
        return leaf;
      },
      getPeerCertificate: () => ({}),
    } as unknown as tls.TLSSocket;
    const context = {} as tls.SecureContext;
    expect(connectionNotAfterMs(socket, context)).toBe(Date.parse(leaf.validTo));
    expect(connectionNotAfterMs(socket, context)).toBe(Date.parse(leaf.validTo));
    expect(ownReads).toBe(1);
    const earlier = { raw: leaf.raw, fingerprint256: 'earlier', valid_to: 'Jan  1 00:00:00 2020 GMT' } as tls.PeerCertificate;
    expect(connectionNotAfterMs(socket, {} as tls.SecureContext, earlier)).toBe(Date.parse('2020-01-01T00:00:00Z'));
    expect(ownReads).toBe(2);
  });
});
