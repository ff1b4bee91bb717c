import { describe, expect, it } from 'vitest';
import { renderNftRuleset } from '../../src/node-agent/capture/nft-capture.js';
import { exemptCidrs } from '../../src/node-agent/capture/redirection-manager.js';

const opts = { captureMark: 0x111, failOpen: false, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 }, listenAddress4: '127.0.0.1', listenAddress6: '::1' };

describe('renderNftRuleset', () => {
  const text = renderNftRuleset({ enrolledIps: ['10.244.1.2', 'fd00::2'], interfaces: ['veth1', 'up0'], exemptCidrs: ['10.250.0.1/32', '169.254.0.0/16', 'fe80::/10'] }, opts);
  it('replaces the table atomically and lists the sets', () => {
    expect(text).toMatch(/^table inet amesh \{\}\ndelete table inet amesh\ntable inet amesh \{/);
    expect(text).toContain('set enrolled4 { type ipv4_addr; elements = { 10.244.1.2 } }');
    expect(text).toContain('set enrolled6 { type ipv6_addr; elements = { fd00::2 } }');
    expect(text).toContain('elements = { 10.250.0.1/32, 169.254.0.0/16 }');
  });
  it('redirects per DESIGN ports, HBONE before plaintext, and fails closed', () => {
    const i15008 = text.indexOf('tcp dport 15008 meta mark set 0x111 tproxy ip to 127.0.0.1:15008');
    const i15006 = text.indexOf('tproxy ip to 127.0.0.1:15006');
    expect(text).toContain('ip saddr @enrolled4 meta l4proto tcp meta mark set 0x111 tproxy ip to 127.0.0.1:15001 accept');
    expect(i15008).toBeGreaterThan(0);
    expect(i15006).toBeGreaterThan(i15008);
    expect(text).toContain('ip saddr @enrolled4 meta l4proto tcp drop');
    expect(text).toContain('tproxy ip6 to [::1]:15001');
    expect(text).toContain('iifname != { "veth1", "up0" } return');
  });
  it('omits the drops when failing open', () => {
    expect(renderNftRuleset({ enrolledIps: ['10.244.1.2'], interfaces: ['v'], exemptCidrs: [] }, { ...opts, failOpen: true })).not.toContain('drop');
  });
  it('captures nothing without interfaces', () => {
    expect(renderNftRuleset({ enrolledIps: [], interfaces: [], exemptCidrs: [] }, opts)).not.toContain('tproxy');
  });
});

describe('exemptCidrs', () => {
  it('exempts node addresses, link-local and extras without duplicates', () => {
    expect(exemptCidrs(['10.250.0.1', 'fd00::1'], ['10.0.0.0/8', '169.254.0.0/16'])).toEqual(['10.250.0.1/32', 'fd00::1/128', '169.254.0.0/16', 'fe80::/10', '10.0.0.0/8']);
  });
});
