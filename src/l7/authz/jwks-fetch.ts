/**
 * Fetches a JWKS document for RequestAuthentication `jwksUri` (the waypoint's AuthzDeps.fetchJwks).
 * Plain node:http/https: one GET, a deadline for the whole exchange, a cap on the body (a JWKS
 * is a few KB; an endless or huge answer must not grow the waypoint's heap), 2xx only, no
 * redirects followed (Envoy's remote_jwks does not follow them either). HTTPS verifies the
 * server against Node's default CA store.
 */
import http from 'node:http';
import https from 'node:https';
import { AmeshError } from '../../errors/amesh-error.js';

export interface JwksFetchOptions {
  timeoutMs: number;
  maxBytes: number;
}

export const DEFAULT_JWKS_FETCH: JwksFetchOptions = { timeoutMs: 5_000, maxBytes: 256 * 1024 };

function failure(uri: string, message: string, cause?: unknown): AmeshError {
  return new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `cannot fetch the JWKS ${uri}: ${message}`, {
    ...(cause !== undefined ? { cause } : {}),
    hint: 'check the RequestAuthentication jwksUri, and that the waypoint can reach it',
  });
}

export function fetchJwks(uri: string, opts: JwksFetchOptions = DEFAULT_JWKS_FETCH): Promise<string> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch (err) {
    return Promise.reject(failure(uri, 'not a URL', err));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(failure(uri, `unsupported scheme ${url.protocol}`));
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, body?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(body ?? '');
    };
    const req = client.get(url, { headers: { accept: 'application/json' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        res.resume();
        return finish(failure(uri, `HTTP ${status}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > opts.maxBytes) return finish(failure(uri, `the document exceeds ${opts.maxBytes} bytes`));
        chunks.push(chunk);
      });
      res.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
      res.on('error', (err) => finish(failure(uri, err.message, err)));
    });
    req.on('error', (err) => finish(failure(uri, err.message, err)));
    const timer = setTimeout(() => finish(failure(uri, `timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
    timer.unref();
  });
}
