import { describe, expect, it } from 'vitest';
import { decodeKubeProtobuf, isKubeProtobuf } from '../../src/sandbox/apiserver/protobuf-decode.js';
import { ApiError } from '../../src/sandbox/apiserver/types.js';

// Request bodies captured from kubectl v1.32.4 (`kubectl create ns demo2`, `kubectl create service clusterip svc1 --tcp=80:8080`).
const NAMESPACE = '6b3873000a0f0a02763112094e616d657370616365121d0a150a0564656d6f3212001a0022002a0032003800420012001a020a001a002200';
const SERVICE =
  '6b3873000a0d0a027631120753657276696365126c0a210a047376633112001a0022002a003200380042005a0b0a0361707012047376633112430a1b0a0738302d38303830120354435018502207080010903f1a002800120b0a036170701204737663311a002209436c757374657249503a00420052005a00600068001a020a001a002200';

describe('Kubernetes protobuf request bodies', () => {
  it('decodes kubectl create namespace', () => {
    expect(decodeKubeProtobuf(Buffer.from(NAMESPACE, 'hex'))).toEqual({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo2' } });
  });

  it('decodes kubectl create service, dropping Go zero values like JSON omitempty', () => {
    expect(decodeKubeProtobuf(Buffer.from(SERVICE, 'hex'))).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'svc1', labels: { app: 'svc1' } },
      spec: { ports: [{ name: '80-8080', protocol: 'TCP', port: 80, targetPort: 8080 }], selector: { app: 'svc1' }, type: 'ClusterIP' },
    });
  });

  /** Length-delimited field `n` (wire type 2); enough protobuf to build envelopes by hand. */
  const ld = (n: number, body: Buffer | string): Buffer => {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
    return Buffer.concat([Buffer.from([(n << 3) | 2, bytes.length]), bytes]);
  };
  const envelope = (apiVersion: string, kind: string, raw: Buffer): Buffer =>
    Buffer.concat([Buffer.from('6b387300', 'hex'), ld(1, Buffer.concat([ld(1, apiVersion), ld(2, kind)])), ld(2, raw)]);

  it('builds envelopes the decoder understands (sanity check of the helpers)', () => {
    expect(decodeKubeProtobuf(envelope('v1', 'ConfigMap', Buffer.concat([ld(1, ld(1, 'c')), ld(2, Buffer.concat([ld(1, 'k'), ld(2, 'v')]))])))).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c' },
      data: { k: 'v' },
    });
  });

  it('refuses kinds and fields it cannot decode with 415 instead of guessing', () => {
    const job = envelope('batch/v1', 'Job', ld(1, ld(1, 'j')));
    const unknownField = envelope('v1', 'Namespace', Buffer.concat([ld(1, ld(1, 'x')), Buffer.from([(9 << 3) | 0, 1])]));
    expect(isKubeProtobuf(unknownField)).toBe(true);
    for (const body of [job, unknownField, Buffer.from('not protobuf'), Buffer.from('6b387300ff', 'hex')]) {
      try {
        decodeKubeProtobuf(body);
        expect.unreachable('should not decode');
      } catch (err) {
        expect(err).toBeInstanceOf(ApiError);
        expect((err as ApiError).code).toBe(415);
      }
    }
  });
});
