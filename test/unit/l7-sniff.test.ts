import { describe, expect, it } from 'vitest';
import { MAX_SNIFF_BYTES, sniffProtocol } from '../../src/l7/sniff.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('protocol sniffing', () => {
  it.each<[string, Buffer, string]>([
    ['the HTTP/2 preface', b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 'h2c'],
    ['the preface and a SETTINGS frame', Buffer.concat([b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]), 'h2c'],
    ['a preface prefix', b('PRI * HTT'), 'need-more'],
    ['"PRI" alone could be either', b('PRI'), 'need-more'],
    ['a GET request line', b('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), 'http1'],
    ['HTTP/1.0', b('POST /x?y=1 HTTP/1.0\r\n'), 'http1'],
    ['an extension method', b('PROPFIND /dav HTTP/1.1\r\n'), 'http1'],
    ['LF-only line end', b('GET / HTTP/1.1\n'), 'http1'],
    ['a method so far', b('GE'), 'need-more'],
    ['a request line in progress', b('GET /some/long/pa'), 'need-more'],
    ['nothing yet', Buffer.alloc(0), 'need-more'],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), 'tcp'],
    ['binary zero', Buffer.from([0]), 'tcp'],
    ['a Redis inline command', b('*1\r\n$4\r\nPING\r\n'), 'tcp'],
    ['HTTP/2 version on an HTTP/1 line', b('GET / HTTP/2.0\r\n'), 'tcp'],
    ['no version', b('GET /\r\n'), 'tcp'],
    ['a control byte in the target', b('GET /\x01'), 'tcp'],
    ['SSH banner', b('SSH-2.0-OpenSSH_9.6\r\n'), 'tcp'],
  ])('%s → %s', (_n, data, expected) => expect(sniffProtocol(data)).toBe(expected));

  it('a request line longer than the limit is TCP', () => {
    expect(sniffProtocol(b(`GET /${'a'.repeat(MAX_SNIFF_BYTES)}`))).toBe('tcp');
  });
  it('a token longer than any method is TCP', () => {
    expect(sniffProtocol(b('A'.repeat(40)))).toBe('tcp');
  });
});
