/**
 * Pinned maps need a BPF filesystem at /sys/fs/bpf. Some hosts (and fresh VMs) do not mount
 * one; the agent mounts it, as Cilium's agent does, rather than failing with a confusing error.
 */
import { statfs } from 'node:fs/promises';
import type { CommandRunner } from './command.js';

const BPF_FS_MAGIC = 0xcafe4a11;

export async function isBpffs(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Ensure `root` (default /sys/fs/bpf) is a mounted bpffs; returns true if we mounted it. */
export async function ensureBpffs(commands: CommandRunner, root = '/sys/fs/bpf'): Promise<boolean> {
  if (await isBpffs(root)) return false;
  await commands.run('mount', ['-t', 'bpf', 'bpf', root]);
  return true;
}
