import { describe, expect, it } from 'vitest';
import { PodIpam, cidrContains, intToIpv4, ipv4ToInt, parseIpv4Cidr } from '../../src/sandbox/network/ipam.js';
import { isAmeshError } from '../../src/errors/amesh-error.js';

describe('PodIpam', () => {
  it('hands out the lowest free address, never .0, .1 or the broadcast', () => {
    const ipam = new PodIpam('10.244.1.0/24');
    expect(ipam.allocate()).toBe('10.244.1.2');
    expect(ipam.allocate()).toBe('10.244.1.3');
    ipam.release('10.244.1.2');
    expect(ipam.allocate()).toBe('10.244.1.2');
    expect(ipam.isAssignable('10.244.1.1')).toBe(false);
    expect(ipam.isAssignable('10.244.1.255')).toBe(false);
    expect(ipam.isAssignable('10.244.1.254')).toBe(true);
  });

  it.each([
    ['free and inside', '10.244.1.77', '10.244.1.77'],
    ['reserved .1', '10.244.1.1', '10.244.1.2'],
    ['outside the CIDR', '10.244.2.9', '10.244.1.2'],
    ['not an address', 'nope', '10.244.1.2'],
  ])('requested address %s', (_what, requested, expected) => {
    expect(new PodIpam('10.244.1.0/24').allocate(requested)).toBe(expected);
  });

  it('does not honour a requested address that is taken', () => {
    const ipam = new PodIpam('10.244.1.0/24');
    expect(ipam.allocate('10.244.1.5')).toBe('10.244.1.5');
    expect(ipam.allocate('10.244.1.5')).toBe('10.244.1.2');
  });

  it('fails with a coded error when the CIDR is full', () => {
    const ipam = new PodIpam('10.244.1.0/29');
    const got = Array.from({ length: 5 }, () => ipam.allocate());
    expect(got).toEqual(['10.244.1.2', '10.244.1.3', '10.244.1.4', '10.244.1.5', '10.244.1.6']);
    let error: unknown;
    try {
      ipam.allocate();
    } catch (err) {
      error = err;
    }
    expect(isAmeshError(error, 'AMESH_SANDBOX_FAILED')).toBe(true);
    expect((error as Error).message).toContain('10.244.1.0/29');
  });

  it('records adopted addresses and lists what is used', () => {
    const ipam = new PodIpam('10.244.3.0/24');
    ipam.markUsed('10.244.3.9');
    expect(ipam.isUsed('10.244.3.9')).toBe(true);
    expect(ipam.allocate('10.244.3.9')).toBe('10.244.3.2');
    expect(ipam.used()).toEqual(['10.244.3.2', '10.244.3.9']);
    expect(() => ipam.markUsed('10.244.4.2')).toThrow(/not assignable/);
  });

  it('rejects CIDRs that are malformed or too small', () => {
    expect(() => new PodIpam('10.244.1.0')).toThrow(/not an IPv4 CIDR/);
    expect(() => new PodIpam('10.244.1.0/33')).toThrow(/not an IPv4 CIDR/);
    expect(() => new PodIpam('10.244.1.0/30')).toThrow(/too small/);
  });
});

describe('IPv4 helpers', () => {
  it('round-trips addresses and tests membership', () => {
    expect(intToIpv4(ipv4ToInt('255.1.2.3'))).toBe('255.1.2.3');
    const cidr = parseIpv4Cidr('10.96.7.9/16');
    expect(intToIpv4(cidr.base)).toBe('10.96.0.0');
    expect(cidrContains(cidr, '10.96.255.1')).toBe(true);
    expect(cidrContains(cidr, '10.97.0.1')).toBe(false);
    expect(cidrContains(parseIpv4Cidr('0.0.0.0/0'), '1.2.3.4')).toBe(true);
  });
});
