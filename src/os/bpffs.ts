/**
 * Pinned maps need a BPF filesystem at /sys/fs/bpf. Some hosts (and fresh VMs) do not mount
 * one; the agent mounts it, as Cilium's agent does, rather than failing with a confusing error.
 *
 * Several agents can start at once on one host (the sandbox's nodes, the end-to-end tests): two
 * that both find no bpffs and both mount one stack two filesystems, and the second hides every pin
 * the first made (its libbpf then fails with ENOENT). So the check and the mount happen under a
 * host-wide lock — an atomic `mkdir` — and the check is repeated inside it.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { CommandRunner } from './command.js';

const BPF_FS_MAGIC = 0xcafe4a11;
export const BPFFS_LOCK_DIR = join(existsSync('/run') ? '/run' : tmpdir(), 'amesh-bpffs.lock');
/** A lock older than this is left over from a crash (mounting takes milliseconds). */
const STALE_LOCK_MS = 10_000;
const LOCK_POLL_MS = 20;

export async function isBpffs(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

async function lock(dir: string): Promise<void> {
  const deadline = Date.now() + STALE_LOCK_MS;
  for (;;) {
    try {
      await mkdir(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (Date.now() > deadline) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      await delay(LOCK_POLL_MS);
    }
  }
}

/** Ensure `root` (default /sys/fs/bpf) is a mounted bpffs; returns true if we mounted it. */
export async function ensureBpffs(
  commands: CommandRunner,
  root = '/sys/fs/bpf',
  lockDir = BPFFS_LOCK_DIR,
  probe: (path: string) => Promise<boolean> = isBpffs,
): Promise<boolean> {
  if (await probe(root)) return false;
  await lock(lockDir);
  try {
    if (await probe(root)) return false;
    await commands.run('mount', ['-t', 'bpf', 'bpf', root]);
    return true;
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}
