/**
 * node's own flags (src/config/runtime-flags.ts) must be ones node accepts on its command line:
 * a misspelt V8 flag stops node at start ("bad option"), i.e. every agent pod would crash-loop.
 * test/unit/dockerfiles.test.ts checks the images' ENTRYPOINTs carry them.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { NODE_AGENT_NODE_FLAGS } from '../../src/config/runtime-flags.js';

describe('node flags per program', () => {
  it('node accepts the agent flags (and refuses an unknown one)', () => {
    const run = (flags: readonly string[]) => spawnSync(process.execPath, [...flags, '-e', '0'], { encoding: 'utf8' });
    expect(NODE_AGENT_NODE_FLAGS).toContain('--single-threaded-gc');
    const accepted = run(NODE_AGENT_NODE_FLAGS);
    expect(accepted.stderr).toBe('');
    expect(accepted.status).toBe(0);
    expect(run(['--single-threaded-gcx']).status, 'a misspelt flag fails').not.toBe(0);
  });
});
