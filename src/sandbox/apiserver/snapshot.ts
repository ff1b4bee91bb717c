/**
 * The store's on-disk snapshot: every object plus the resourceVersion counter, written
 * atomically (temp file + rename) so a crash mid-write leaves the previous snapshot intact.
 * CRD registrations are not stored separately — they are re-derived from the stored CRDs.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AmeshError } from '../../errors/amesh-error.js';
import type { KubeObject } from './types.js';

export const SNAPSHOT_FORMAT = 1;

export interface Snapshot {
  format: typeof SNAPSHOT_FORMAT;
  resourceVersion: number;
  objects: KubeObject[];
}

function isKubeObject(value: unknown): value is KubeObject {
  if (value === null || typeof value !== 'object') return false;
  const o = value as Record<string, unknown>;
  return typeof o.apiVersion === 'string' && typeof o.kind === 'string' && o.metadata !== null && typeof o.metadata === 'object';
}

/** Reads a snapshot, or undefined when the file does not exist. */
export function readSnapshot(path: string): Snapshot | undefined {
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AmeshError('AMESH_SNAPSHOT_INVALID', `the API server snapshot ${path} is not valid JSON`, { cause: err, hint: 'move the file away to start with an empty cluster' });
  }
  const s = parsed as Partial<Snapshot> | null;
  if (!s || s.format !== SNAPSHOT_FORMAT || typeof s.resourceVersion !== 'number' || !Array.isArray(s.objects) || !s.objects.every(isKubeObject)) {
    throw new AmeshError('AMESH_SNAPSHOT_INVALID', `the API server snapshot ${path} has an unknown format (expected format ${SNAPSHOT_FORMAT})`, {
      hint: 'move the file away to start with an empty cluster',
    });
  }
  return s as Snapshot;
}

export async function writeSnapshot(path: string, snapshot: Snapshot): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, JSON.stringify(snapshot), { mode: 0o600 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new AmeshError('AMESH_SNAPSHOT_FAILED', `could not write the API server snapshot ${path}`, { cause: err, hint: 'check that the sandbox directory is writable and not full' });
  }
}
