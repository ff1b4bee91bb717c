/**
 * Protocol detection for AUTO ports (Istio's "protocol sniffing"), pure: the first bytes of a
 * tunnelled connection say whether it is HTTP/2 with prior knowledge (the client preface
 * `PRI * HTTP/2.0`), an HTTP/1.x request line (`<METHOD> <target> HTTP/1.x`), or something else
 * (opaque TCP). `need-more` while a prefix of the bytes could still be either; callers bound the
 * wait (a server-first protocol sends nothing: after a short silence it is TCP).
 */
export type SniffResult = 'h2c' | 'http1' | 'tcp' | 'need-more';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** RFC 9110 token characters of a method. */
const TOKEN_CHAR = /^[!#$%&'*+.^_`|~0-9A-Za-z-]$/;
/** Longest request line we wait for before calling it TCP. */
export const MAX_SNIFF_BYTES = 8192;

export function sniffProtocol(data: Buffer): SniffResult {
  if (data.length === 0) return 'need-more';
  // The preface: decided once it is complete, or as soon as a byte differs.
  const n = Math.min(data.length, H2_PREFACE.length);
  if (data.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return n === H2_PREFACE.length ? 'h2c' : 'need-more';
  return sniffHttp1(data);
}

function sniffHttp1(data: Buffer): SniffResult {
  // method SP request-target SP HTTP/1.x CRLF
  let i = 0;
  const limit = Math.min(data.length, MAX_SNIFF_BYTES);
  while (i < limit && i < 32 && TOKEN_CHAR.test(String.fromCharCode(data[i] as number))) i++;
  if (i === limit) return limit >= MAX_SNIFF_BYTES || i >= 32 ? 'tcp' : 'need-more';
  if (i === 0 || data[i] !== 0x20) return 'tcp';
  const lineEnd = data.indexOf('\r\n', i);
  const eol = lineEnd === -1 ? data.indexOf('\n', i) : lineEnd;
  if (eol === -1) {
    if (data.length >= MAX_SNIFF_BYTES) return 'tcp';
    // A control byte inside the line cannot be HTTP.
    for (let j = i; j < data.length; j++) if ((data[j] as number) < 0x20 && data[j] !== 0x0d) return 'tcp';
    return 'need-more';
  }
  const line = data.subarray(0, eol).toString('latin1');
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/1\.[01]$/.test(line) ? 'http1' : 'tcp';
}
