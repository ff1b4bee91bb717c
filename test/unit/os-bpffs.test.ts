import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureBpffs } from '../../src/os/bpffs.js';
import type { CommandRunner } from '../../src/os/command.js';

describe('ensureBpffs', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('mounts once when several agents start together (no stacked bpf filesystems)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amesh-bpffs-'));
    dirs.push(dir);
    let mounted = false;
    const mounts: string[][] = [];
    const commands = {
      run: async (cmd: string, args: string[]) => {
        mounts.push([cmd, ...args]);
        await new Promise((r) => setTimeout(r, 30)); // a slow mount: the others must wait for it
        mounted = true;
        return { stdout: '', stderr: '' };
      },
    } as unknown as CommandRunner;
    const probe = async (): Promise<boolean> => mounted;
    const results = await Promise.all(Array.from({ length: 4 }, () => ensureBpffs(commands, '/sys/fs/bpf', join(dir, 'lock'), probe)));
    expect(mounts).toEqual([['mount', '-t', 'bpf', 'bpf', '/sys/fs/bpf']]);
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('does nothing when a bpffs is already there', async () => {
    const commands = { run: async () => expect.fail('must not mount') } as unknown as CommandRunner;
    expect(await ensureBpffs(commands, '/sys/fs/bpf', join(tmpdir(), 'unused-lock'), async () => true)).toBe(false);
  });
});
