#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript under dist/. Run `npm run build` first.
import('../dist/src/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
    console.error('amesh: the compiled CLI is missing (dist/src/cli/main.js). Run `npm run build` (or scripts/setup.sh) first.');
    process.exit(2);
  }
  throw err;
});
