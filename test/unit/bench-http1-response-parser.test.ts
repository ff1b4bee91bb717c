import { describe, expect, it } from 'vitest';
import { Http1ResponseParser, RESPONSE_ERRORS, type ParsedResponse } from '../../bench/load/http1-response-parser.js';

const ok = (body = 'hello', extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

/** Feeds `chunks` in order; returns the responses seen and the first error. */
function parse(chunks: Array<string | Buffer>): { responses: ParsedResponse[]; error?: string; end?: string; idle: boolean } {
  const responses: ParsedResponse[] = [];
  const parser = new Http1ResponseParser((r) => responses.push(r), 256);
  for (const c of chunks) {
    const error = parser.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
    if (error) return { responses, error, idle: parser.idle };
  }
  const end = parser.end();
  return { responses, ...(end ? { end } : {}), idle: parser.idle };
}

/** Every way to cut `text` into two pieces, and into single bytes. */
function splits(text: string): string[][] {
  const out: string[][] = [];
  for (let i = 1; i < text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  out.push([...text]);
  return out;
}

describe('Http1ResponseParser', () => {
  it('reads a 200 with its whole body, wherever the bytes are split', () => {
    for (const chunks of splits(ok())) {
      const r = parse(chunks);
      expect(r.error, JSON.stringify(chunks)).toBeUndefined();
      expect(r.responses).toEqual([{ status: 200, close: false }]);
      expect(r.idle).toBe(true);
      expect(r.end).toBeUndefined();
    }
  });

  it('reads several responses in one chunk, and a response and a half', () => {
    expect(parse([ok('a') + ok('bb') + ok('ccc')]).responses).toHaveLength(3);
    const half = ok('second');
    const r = parse([ok('first') + half.slice(0, 20), half.slice(20)]);
    expect(r.responses).toHaveLength(2);
    expect(r.idle).toBe(true);
  });

  it('reports a non-200 status, with or without a body', () => {
    expect(parse(['HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nbad']).responses).toEqual([{ status: 503, close: false }]);
    expect(parse(['HTTP/1.1 204 No Content\r\n\r\n', ok()]).responses).toEqual([
      { status: 204, close: false },
      { status: 200, close: false },
    ]);
  });

  it('says when the server closes after the response', () => {
    expect(parse([ok('x', 'Connection: close\r\n')]).responses).toEqual([{ status: 200, close: true }]);
    expect(parse(['HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx']).responses).toEqual([{ status: 200, close: true }]);
    expect(parse(['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx']).responses).toEqual([{ status: 200, close: false }]);
  });

  it('matches header names case-insensitively', () => {
    expect(parse(['HTTP/1.1 200 OK\r\ncontent-LENGTH:  2 \r\n\r\nhi']).responses).toEqual([{ status: 200, close: false }]);
  });

  it.each([
    ['garbage', 'hello world\r\n\r\n', RESPONSE_ERRORS.badStatusLine],
    ['HTTP/2 status line', 'HTTP/2 200\r\nContent-Length: 0\r\n\r\n', RESPONSE_ERRORS.badStatusLine],
    ['no Content-Length', 'HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody', RESPONSE_ERRORS.noContentLength],
    ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', RESPONSE_ERRORS.badContentLength],
    ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx', RESPONSE_ERRORS.badContentLength],
    ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', RESPONSE_ERRORS.chunked],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nbroken\r\nContent-Length: 0\r\n\r\n', RESPONSE_ERRORS.badHeader],
    ['headers past the limit', `HTTP/1.1 200 OK\r\nX-Pad: ${'p'.repeat(300)}\r\n`, RESPONSE_ERRORS.headersTooLarge],
  ])('fails on %s', (_name, text, kind) => {
    expect(parse([text]).error).toBe(kind);
    // Also when the same bytes arrive one at a time.
    expect(parse([...text]).error).toBe(kind);
  });

  it('fails on garbage after a good response', () => {
    const r = parse([`${ok()}SMTP ready\r\n\r\n`]);
    expect(r.responses).toHaveLength(1);
    expect(r.error).toBe(RESPONSE_ERRORS.badStatusLine);
  });

  it('reports a body or headers cut short by the end of the connection', () => {
    const r = parse([ok('0123456789').slice(0, -3)]);
    expect(r.responses).toEqual([]);
    expect(r.end).toBe(RESPONSE_ERRORS.shortBody);
    expect(parse(['HTTP/1.1 200 OK\r\nContent-Len']).end).toBe(RESPONSE_ERRORS.truncatedHeaders);
    expect(parse([ok()]).end).toBeUndefined();
  });
});
