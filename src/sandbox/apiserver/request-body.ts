/**
 * Reading and decoding request bodies. Bodies are capped (kube-apiserver's 3 MiB limit) and
 * decoded by Content-Type; every failure is an ApiError with the status kube-apiserver uses
 * (400 undecodable, 413 too large, 415 unsupported media type).
 */
import type { IncomingMessage } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { badRequest } from './api-errors.js';
import { decodeKubeProtobuf } from './protobuf-decode.js';
import { ApiError, type PatchType } from './types.js';

export const MAX_BODY_BYTES = 3 * 1024 * 1024;
/**
 * Deepest nesting accepted. Real objects nest a few dozen levels (CRD schemas are the deepest);
 * the yaml parser and the patch code recurse, and near V8's stack limit a recursion can abort
 * the process instead of throwing, so hostile depth is refused before parsing.
 */
export const MAX_NESTING_DEPTH = 200;

export function tooLarge(): ApiError {
  return new ApiError(413, 'RequestEntityTooLarge', `the request body is larger than the limit of ${MAX_BODY_BYTES} bytes`);
}

/** Reads the whole body, rejecting (and draining the rest) once it exceeds `limit`. */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed) reject(badRequest(`the request body could not be read: ${err.message}`));
      failed = true;
    });
  });
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

function unsupported(type: string, allowed: string[]): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${allowed.join(', ')} (got "${type}")`);
}

/**
 * Bracket depth (JSON, YAML flow collections) and indentation (YAML block collections) of a
 * body, scanned without parsing. Brackets inside double-quoted strings do not count.
 */
export function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  let lineStart = true;
  let indent = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (lineStart) {
      if (c === 0x20) {
        indent++;
        max = Math.max(max, indent);
        continue;
      }
      lineStart = false;
    }
    if (c === 0x0a) {
      lineStart = true;
      indent = 0;
    }
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return max;
}

function checkDepth(text: string): string {
  if (nestingDepth(text) > MAX_NESTING_DEPTH) throw badRequest(`the request body nests deeper than ${MAX_NESTING_DEPTH} levels (or is indented more than ${MAX_NESTING_DEPTH} columns)`);
  return text;
}

function parseJson(body: Buffer): unknown {
  const text = checkDepth(body.toString('utf8'));
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`couldn't decode the request body as JSON: ${(err as Error).message}`);
  }
}

function parseYamlDocument(body: Buffer): unknown {
  const text = checkDepth(body.toString('utf8'));
  try {
    return parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw badRequest(`couldn't decode the request body as YAML: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
}

const OBJECT_TYPES = ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf'];

/** POST/PUT bodies: JSON (what every client sends) or YAML. Empty means no object. */
export function decodeObjectBody(body: Buffer, contentType: string | undefined): unknown {
  const type = mediaType(contentType) || 'application/json';
  if (body.length === 0) throw badRequest('the request body is empty; send the object as JSON');
  if (type === 'application/json') return parseJson(body);
  if (type === 'application/yaml') return parseYamlDocument(body);
  // kubectl's generator commands (`kubectl create ns|configmap|deployment …`) send protobuf.
  if (type === 'application/vnd.kubernetes.protobuf') return decodeKubeProtobuf(body);
  throw unsupported(type, OBJECT_TYPES);
}

export const PATCH_CONTENT_TYPES: Record<string, PatchType> = {
  'application/merge-patch+json': 'merge',
  'application/json-patch+json': 'json',
  'application/strategic-merge-patch+json': 'strategic',
  'application/apply-patch+yaml': 'apply',
};

export function decodePatchBody(body: Buffer, contentType: string | undefined): { type: PatchType; patch: unknown } {
  const media = mediaType(contentType);
  const type = PATCH_CONTENT_TYPES[media];
  if (!type) throw unsupported(media, Object.keys(PATCH_CONTENT_TYPES));
  if (body.length === 0) throw badRequest('the patch is empty');
  // Server-side apply bodies are YAML (JSON is valid YAML); the others must be JSON.
  return { type, patch: type === 'apply' ? parseYamlDocument(body) : parseJson(body) };
}

/** DELETE bodies are optional DeleteOptions JSON. */
export function decodeOptionalJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  const parsed = parseJson(body);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw badRequest('the DeleteOptions body must be a JSON object');
  return parsed as Record<string, unknown>;
}
