/**
 * node's own flags are written once (src/config/runtime-flags.ts); the container images spell
 * them out in their ENTRYPOINT, which must agree.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_AGENT_NODE_FLAGS } from '../../src/config/runtime-flags.js';

const REPO = join(import.meta.dirname, '..', '..');

/** The exec-form ENTRYPOINT of a Dockerfile. */
function entrypoint(dockerfile: string): string[] {
  const line = readFileSync(join(REPO, dockerfile), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('ENTRYPOINT '));
  if (!line) throw new Error(`${dockerfile} has no ENTRYPOINT`);
  return JSON.parse(line.slice('ENTRYPOINT '.length)) as string[];
}

describe('node flags per program', () => {
  it('the node agent image starts node with the agent flags, before the CLI', () => {
    expect(NODE_AGENT_NODE_FLAGS).toContain('--single-threaded-gc');
    expect(entrypoint('images/node/Dockerfile')).toEqual(['node', ...NODE_AGENT_NODE_FLAGS, '/app/bin/amesh.js']);
  });

  it('the other images carry none of them', () => {
    for (const image of ['images/controller/Dockerfile', 'images/waypoint/Dockerfile']) {
      expect(entrypoint(image), image).toEqual(['node', '/app/bin/amesh.js']);
    }
  });

  it('node accepts the flags (it refuses an unknown one with "bad option")', () => {
    const run = (flags: readonly string[]) => spawnSync(process.execPath, [...flags, '-e', '0'], { encoding: 'utf8' });
    expect(run(NODE_AGENT_NODE_FLAGS).stderr).toBe('');
    expect(run(NODE_AGENT_NODE_FLAGS).status).toBe(0);
    expect(run(['--single-threaded-gcx']).status, 'a misspelt flag fails').not.toBe(0);
  });
});
