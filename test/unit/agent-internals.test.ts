// amesh internals on a registry from a fake source: values are read at scrape time (no timers),
// counters mirror the source's totals without double counting, xDS families exist only with an
// xDS source, BPF reasons only when the capture counts them, and a failing source never fails
// the scrape.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { CertificateSnapshot } from '../../src/identity/certificate-manager.js';
import { registerInternals, xdsTypeLabel, type InternalsSource, type XdsInternals } from '../../src/node-agent/telemetry/internals.js';

const NOW = Date.parse('2030-01-01T00:00:00Z');

function fake(over: Partial<InternalsSource> = {}): InternalsSource & { bpf: Record<string, number> | undefined; certs: CertificateSnapshot[] } {
  const s = {
    bpf: { REDIRECT_OUTBOUND: 5, PASS_NOT_ENROLLED: 100, DROP_NO_LISTENER: 0 } as Record<string, number> | undefined,
    certs: [
      { identity: 'spiffe://cluster.local/ns/demo/sa/a', state: 'Available', notAfter: '2030-01-01T01:00:00.000Z', chain: [], roots: [], failures: 0 },
      { identity: 'spiffe://cluster.local/ns/demo/sa/b', state: 'Initializing', chain: [], roots: [], failures: 0 },
    ] as CertificateSnapshot[],
    bpfReasons(): Record<string, number> | undefined {
      return s.bpf;
    },
    pool: () => ({ connections: 2, dialing: 1, streams: 7, dials: 9, keys: [] }),
    hboneServer: () => ({ sessions: 3, handshaking: 0, streams: 4, acceptedStreams: 40, refusedStreams: 2, rejectedConnections: 1 }),
    connections: () => ({ live: 6, inbound: 4 }),
    certificates: (): CertificateSnapshot[] => s.certs,
    enrolledPods: () => 3,
    now: () => NOW,
    ...over,
  };
  return s;
}

function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('registerInternals', () => {
  it('exports pool, server, connections, certificates and enrolment from the source at scrape time', async () => {
    const registry = new Registry();
    const source = fake();
    registerInternals(registry, source);
    const text = await registry.metrics();
    expect(sample(text, 'amesh_hbone_pool_connections')).toBe(2);
    expect(sample(text, 'amesh_hbone_pool_dialing')).toBe(1);
    expect(sample(text, 'amesh_hbone_pool_streams')).toBe(7);
    expect(sample(text, 'amesh_hbone_pool_dials_total')).toBe(9);
    expect(sample(text, 'amesh_hbone_server_sessions')).toBe(3);
    expect(sample(text, 'amesh_hbone_server_streams_accepted_total')).toBe(40);
    expect(sample(text, 'amesh_hbone_server_streams_refused_total')).toBe(2);
    expect(sample(text, 'amesh_hbone_server_connections_rejected_total')).toBe(1);
    expect(sample(text, 'amesh_connections_live')).toBe(6);
    expect(sample(text, 'amesh_inbound_connections_live')).toBe(4);
    expect(sample(text, 'amesh_enrolled_pods')).toBe(3);
    expect(sample(text, 'amesh_certificate_expiry_seconds', '{identity="spiffe://cluster.local/ns/demo/sa/a"}')).toBe(3600);
    expect(text).not.toContain('amesh_certificate_expiry_seconds{identity="spiffe://cluster.local/ns/demo/sa/b"}');
    expect(sample(text, 'amesh_certificates', '{state="Available"}')).toBe(1);
    expect(sample(text, 'amesh_certificates', '{state="Initializing"}')).toBe(1);
    expect(sample(text, 'amesh_certificates', '{state="Unavailable"}')).toBe(0);
  });

  it('mirrors the BPF reason counters (no double counting across scrapes) and drops them when the capture has none', async () => {
    const registry = new Registry();
    const source = fake();
    registerInternals(registry, source);
    expect(sample(await registry.metrics(), 'amesh_bpf_redirects_total', '{reason="REDIRECT_OUTBOUND"}')).toBe(5);
    source.bpf = { REDIRECT_OUTBOUND: 8, PASS_NOT_ENROLLED: 100, DROP_NO_LISTENER: 1 };
    const second = await registry.metrics();
    expect(sample(second, 'amesh_bpf_redirects_total', '{reason="REDIRECT_OUTBOUND"}')).toBe(8);
    expect(sample(second, 'amesh_bpf_redirects_total', '{reason="DROP_NO_LISTENER"}')).toBe(1);
    expect(sample(second, 'amesh_bpf_redirects_total', '{reason="PASS_NOT_ENROLLED"}')).toBe(100);
    source.bpf = undefined; // nftables
    expect(await registry.metrics()).not.toMatch(/^amesh_bpf_redirects_total\{/m);
  });

  it('never fails the scrape when a source throws (a BPF map gone after close)', async () => {
    const registry = new Registry();
    registerInternals(
      registry,
      fake({
        bpfReasons: () => {
          throw new Error('map closed');
        },
      }),
    );
    const text = await registry.metrics();
    expect(text).not.toMatch(/^amesh_bpf_redirects_total\{/m);
    expect(sample(text, 'amesh_enrolled_pods')).toBe(3);
  });

  it('has xDS families only with an xDS source: connection, readiness, per-type resources, ACK/NACK counts, last ACKed nonce', async () => {
    const without = new Registry();
    registerInternals(without, fake());
    expect(await without.metrics()).not.toContain('amesh_xds_');

    let status: XdsInternals = {
      connected: true,
      ready: true,
      reconnects: 2,
      disconnects: 1,
      updates: 5,
      types: {
        'type.googleapis.com/istio.workload.Address': { resources: 12, acks: 4, nacks: 1, lastAckedNonce: 'n7', lastNonce: 'n8', lastNack: 'demo/x: bad' },
        'type.googleapis.com/istio.security.Authorization': { resources: 2, acks: 2, nacks: 0 },
      },
    };
    const registry = new Registry();
    registerInternals(registry, fake({ xds: () => status }));
    const text = await registry.metrics();
    expect(sample(text, 'amesh_xds_connected')).toBe(1);
    expect(sample(text, 'amesh_xds_ready')).toBe(1);
    expect(sample(text, 'amesh_xds_reconnects_total')).toBe(2);
    expect(sample(text, 'amesh_xds_disconnects_total')).toBe(1);
    expect(sample(text, 'amesh_xds_updates_total')).toBe(5);
    expect(sample(text, 'amesh_xds_resources', '{type="istio.workload.Address"}')).toBe(12);
    expect(sample(text, 'amesh_xds_acks_total', '{type="istio.workload.Address"}')).toBe(4);
    expect(sample(text, 'amesh_xds_nacks_total', '{type="istio.workload.Address"}')).toBe(1);
    expect(sample(text, 'amesh_xds_nacks_total', '{type="istio.security.Authorization"}')).toBe(0);
    expect(sample(text, 'amesh_xds_last_ack_info', '{type="istio.workload.Address",nonce="n7"}')).toBe(1);
    expect(text).not.toContain('amesh_xds_last_ack_info{type="istio.security.Authorization"');

    // The stream drops: connected goes to 0 on the next scrape, the old nonce series is replaced.
    status = { ...status, connected: false, types: { 'type.googleapis.com/istio.workload.Address': { resources: 12, acks: 5, nacks: 1, lastAckedNonce: 'n9' } } };
    const after = await registry.metrics();
    expect(sample(after, 'amesh_xds_connected')).toBe(0);
    expect(after).not.toContain('nonce="n7"');
    expect(sample(after, 'amesh_xds_last_ack_info', '{type="istio.workload.Address",nonce="n9"}')).toBe(1);
  });

  it('labels a type by the last segment of its URL', () => {
    expect(xdsTypeLabel('type.googleapis.com/amesh.telemetry.v1.Telemetry')).toBe('amesh.telemetry.v1.Telemetry');
    expect(xdsTypeLabel('plain')).toBe('plain');
  });
});
