import { X509Certificate, createPrivateKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';

describe('createServingCertificates', () => {
  it('issues a CA and a serving certificate with the requested SANs, signed by the CA', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const m = await createServingCertificates({ ipAddresses: ['127.0.0.1', '10.96.0.1', '10.250.0.254'], dnsNames: ['kubernetes', 'kubernetes.default.svc'], days: 10, now });
    const ca = new X509Certificate(m.caCertPem);
    const leaf = new X509Certificate(m.certPem);
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.checkIP('10.96.0.1')).toBe('10.96.0.1');
    expect(leaf.checkIP('10.250.0.254')).toBe('10.250.0.254');
    expect(leaf.checkIP('10.0.0.1')).toBeUndefined();
    expect(leaf.checkHost('kubernetes.default.svc')).toBe('kubernetes.default.svc');
    expect(leaf.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
    expect(new Date(leaf.validTo).getTime()).toBe(now.getTime() + 10 * 86_400_000);
    expect(leaf.checkPrivateKey(createPrivateKey(m.keyPem))).toBe(true);
  });

  it.each([
    [{ ipAddresses: ['not-an-ip'], dnsNames: [] }, /not an IP address/],
    [{ ipAddresses: [], dnsNames: [] }, /at least one/],
    [{ ipAddresses: ['127.0.0.1'], dnsNames: [], days: 0 }, /positive/],
  ])('rejects invalid options %j', async (options, message) => {
    await expect(createServingCertificates(options)).rejects.toThrow(message);
  });
});
