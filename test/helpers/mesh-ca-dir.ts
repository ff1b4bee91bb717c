/**
 * The work directory of an in-process node agent test: a fresh test CA written as `ca.pem` and
 * `ca-key.pem` (the names the agents' local configs give), removed by the test's cleanup list.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, type TestCa } from './pki.js';

export async function meshCaDir(prefix: string, cleanups: Array<() => Promise<void> | void>): Promise<{ dir: string; meshCa: TestCa }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const meshCa = await createTestCa();
  await writeFile(join(dir, 'ca.pem'), meshCa.ca.certPem);
  await writeFile(join(dir, 'ca-key.pem'), meshCa.ca.keyPem);
  return { dir, meshCa };
}
