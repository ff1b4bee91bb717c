/**
 * Long echo streams through the sandbox mesh (test/helpers/mesh-streams.mjs, run in a client pod
 * with `amesh sandbox exec`), for "every byte arrives, or the stream ends cleanly" checks during
 * upgrades and faults. The program prints a `progress` line per probe interval and one `result`
 * line at the end; its own --timeout-ms bounds it, and a SIGKILL after `killAfterMs` bounds the
 * exec around it.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';
import { eventually } from './eventually.js';

const AMESH = join(import.meta.dirname, '..', '..', 'bin', 'amesh.js');
export const MESH_STREAMS = join(import.meta.dirname, 'mesh-streams.mjs');

export interface MeshStreamsRun<R> {
  /** Everything printed so far. */
  progress: () => string;
  kill: () => void;
  /** The `result` line (absent when the program printed none) and the whole output. */
  done: Promise<{ result?: R; out: string; err: string }>;
}

/** Starts mesh-streams in pod `podRef` (ns/name) of the sandbox in `dir` with `args`, without blocking. */
export function runMeshStreams<R extends { event: string }>(dir: string, podRef: string, args: string[], killAfterMs: number): MeshStreamsRun<R> {
  const child = spawn(process.execPath, [AMESH, 'sandbox', 'exec', '--dir', dir, podRef, '--', 'node', MESH_STREAMS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const done = new Promise<{ result?: R; out: string; err: string }>((resolve) =>
    child.on('exit', () => {
      clearTimeout(killer);
      const last = out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .at(-1);
      const parsed = last ? (JSON.parse(last) as R) : undefined;
      resolve({ ...(parsed?.event === 'result' ? { result: parsed } : {}), out, err });
    }),
  );
  return { progress: () => out, kill: () => child.kill('SIGKILL'), done };
}

/** Waits until the last progress line reports all `count` streams open and bytes received. */
export async function waitStreamsFlowing(progress: () => string, count: number, timeoutMs: number): Promise<void> {
  await eventually(
    () => {
      const last = progress()
        .trim()
        .split('\n')
        .filter((l) => l.includes('"progress"'))
        .at(-1);
      const p = last ? (JSON.parse(last) as { open: number; received: number }) : undefined;
      expect(p?.open, progress().slice(-500)).toBe(count);
      expect(p?.received).toBeGreaterThan(0);
    },
    { timeoutMs, intervalMs: 250, description: `${count} streams flowing` },
  );
}
