import { describe, expect, it } from 'vitest';
import { renderNftRuleset } from '../../src/node-agent/capture/nft-capture.js';
import { exemptCidrs } from '../../src/node-agent/capture/redirection-manager.js';

const opts = { captureMark: 0x111, captureMask: 0xfff, socketMark: 0x539, failOpen: false, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 }, listenAddress4: '127.0.0.1', listenAddress6: '::1' };

describe('renderNftRuleset', () => {
  const text = renderNftRuleset({ enrolledIps: ['10.244.1.2', 'fd00::2'], interfaces: ['veth1', 'up0'], exemptCidrs: ['10.250.0.1/32', '169.254.0.0/16', 'fe80::/10'] }, opts);
  it('replaces the table atomically and lists the sets', () => {
    expect(text).toMatch(/^table inet amesh \{\}\ndelete table inet amesh\ntable inet amesh \{/);
    expect(text).toContain('set enrolled4 { type ipv4_addr; elements = { 10.244.1.2 } }');
    expect(text).toContain('set enrolled6 { type ipv6_addr; elements = { fd00::2 } }');
    expect(text).toContain('elements = { 10.250.0.1/32, 169.254.0.0/16 }');
  });
  it('redirects per DESIGN ports, HBONE before plaintext, and fails closed', () => {
    const i15008 = text.indexOf('tcp dport 15008 meta mark set 0x111 ct mark set ct mark & 0xfffff000 | 0x111 tproxy ip to 127.0.0.1:15008');
    const i15006 = text.indexOf('tproxy ip to 127.0.0.1:15006');
    expect(text).toContain('ip saddr @enrolled4 meta l4proto tcp meta mark set 0x111 ct mark set ct mark & 0xfffff000 | 0x111 tproxy ip to 127.0.0.1:15001 accept');
    expect(i15008).toBeGreaterThan(0);
    expect(i15006).toBeGreaterThan(i15008);
    expect(text).toContain('ip saddr @enrolled4 meta l4proto tcp drop');
    expect(text).toContain('tproxy ip6 to [::1]:15001');
    expect(text).toContain('iifname != { "veth1", "up0" } return');
  });
  it('remembers captured flows in conntrack and sends all their later packets to the local stack first', () => {
    const pre = chain(text, 'prerouting');
    expect(pre.slice(0, 3)).toEqual([
      'type filter hook prerouting priority mangle; policy accept;',
      'iifname != { "veth1", "up0" } return',
      'tcp flags & syn == 0 ct mark & 0xfff == 0x111 meta mark set 0x111 accept',
    ]);
    // Every tproxy rule sets the ct mark; the agent's own new connections get it on the way out.
    expect(pre.filter((l) => l.includes('tproxy')).every((l) => l.includes('ct mark set ct mark & 0xfffff000 | 0x111 tproxy'))).toBe(true);
    expect(chain(text, 'output')).toEqual(['type filter hook output priority mangle; policy accept;', 'meta l4proto tcp meta mark & 0xfff == 0x539 ct state new ct mark set ct mark & 0xfffff000 | 0x111']);
  });
  it('omits the drops when failing open', () => {
    expect(renderNftRuleset({ enrolledIps: ['10.244.1.2'], interfaces: ['v'], exemptCidrs: [] }, { ...opts, failOpen: true })).not.toContain('drop');
  });
  it('captures nothing before DNAT without interfaces', () => {
    const empty = renderNftRuleset({ enrolledIps: [], interfaces: [], exemptCidrs: [] }, opts);
    expect(empty.slice(0, empty.indexOf('chain service-dnat'))).not.toContain('tproxy');
  });
});

/** The lines of one chain, trimmed, from `chain <name> {` to its closing brace. */
function chain(text: string, name: string): string[] {
  const lines = text.split('\n').map((l) => l.trim());
  const start = lines.indexOf(`chain ${name} {`);
  expect(start, `chain ${name} present`).toBeGreaterThanOrEqual(0);
  return lines.slice(start + 1, lines.indexOf('}', start));
}

describe('renderNftRuleset: Service traffic after DNAT', () => {
  const targets = { enrolledIps: ['10.244.1.2', 'fd00::2'], interfaces: ['veth1', 'up0'], exemptCidrs: ['10.250.0.1/32'] };
  const dnatOnly = renderNftRuleset(targets, opts, 'service-dnat');
  const post = chain(dnatOnly, 'service-dnat');
  const toPod = chain(dnatOnly, 'service-dnat-to-pod');

  it('next to eBPF: the same table and sets, only the post-DNAT chain', () => {
    expect(dnatOnly).toMatch(/^table inet amesh \{\}\ndelete table inet amesh\ntable inet amesh \{/);
    expect(dnatOnly).toContain('set enrolled4 { type ipv4_addr; elements = { 10.244.1.2 } }');
    expect(dnatOnly).not.toContain('chain prerouting');
    expect(dnatOnly).not.toContain(':15001');
    expect(dnatOnly).not.toContain('chain output');
  });

  it('runs after the DNAT, on original-direction DNATed TCP flows to local enrolled pods not captured before it', () => {
    expect(post).toEqual([
      'type filter hook prerouting priority dstnat + 10; policy accept;',
      'ct direction reply return',
      'ct status & dnat == 0 return',
      'meta mark & 0xfff == 0x111 return',
      'ip daddr @enrolled4 meta l4proto tcp goto service-dnat-to-pod',
      'ip6 daddr @enrolled6 meta l4proto tcp goto service-dnat-to-pod',
    ]);
  });

  it('keeps established flows on the transparent socket, then sends SYNs to the inbound listeners and fails closed', () => {
    const remember = 'meta mark set 0x111 ct mark set ct mark & 0xfffff000 | 0x111';
    expect(toPod).toEqual([
      'tcp flags & syn == 0 ct mark & 0xfff == 0x111 meta mark set 0x111 accept',
      'meta l4proto tcp tcp flags & (syn | ack) != syn socket transparent 1 meta mark set 0x111 accept',
      'meta l4proto tcp tcp flags & (syn | ack) != syn return',
      'ip daddr @exempt4 return',
      'ip6 daddr @exempt6 return',
      `ip daddr @enrolled4 tcp dport 15008 ${remember} tproxy ip to 127.0.0.1:15008 accept`,
      `ip daddr @enrolled4 meta l4proto tcp ${remember} tproxy ip to 127.0.0.1:15006 accept`,
      'ip daddr @enrolled4 meta l4proto tcp drop',
      `ip6 daddr @enrolled6 tcp dport 15008 ${remember} tproxy ip6 to [::1]:15008 accept`,
      `ip6 daddr @enrolled6 meta l4proto tcp ${remember} tproxy ip6 to [::1]:15006 accept`,
      'ip6 daddr @enrolled6 meta l4proto tcp drop',
    ]);
    // the same inbound rule text as the fallback's pre-DNAT chain
    const pre = chain(renderNftRuleset(targets, opts), 'prerouting');
    expect(pre).toEqual(expect.arrayContaining(toPod));
  });

  it('the fallback has the same post-DNAT chain after its pre-DNAT one, and honours mark, mask and fail-open', () => {
    const all = renderNftRuleset(targets, opts);
    expect(all.indexOf('chain prerouting {')).toBeLessThan(all.indexOf('chain service-dnat {'));
    expect(chain(all, 'service-dnat')).toEqual(post);
    expect(chain(all, 'service-dnat-to-pod')).toEqual(toPod);
    const custom = renderNftRuleset(targets, { ...opts, captureMark: 0x10222, captureMask: 0xff00, failOpen: true }, 'service-dnat');
    expect(chain(custom, 'service-dnat')).toContain('meta mark & 0xff00 == 0x200 return');
    expect(chain(custom, 'service-dnat-to-pod')).toContain('ip daddr @enrolled4 meta l4proto tcp meta mark set 0x10222 ct mark set ct mark & 0xffff00ff | 0x200 tproxy ip to 127.0.0.1:15006 accept');
    expect(chain(custom, 'service-dnat-to-pod')).toContain('tcp flags & syn == 0 ct mark & 0xff00 == 0x200 meta mark set 0x10222 accept');
    expect(custom).not.toContain('drop');
  });
});

describe('exemptCidrs', () => {
  it('exempts node addresses, link-local and extras without duplicates', () => {
    expect(exemptCidrs(['10.250.0.1', 'fd00::1'], ['10.0.0.0/8', '169.254.0.0/16'])).toEqual(['10.250.0.1/32', 'fd00::1/128', '169.254.0.0/16', 'fe80::/10', '10.0.0.0/8']);
  });
});
