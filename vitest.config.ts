// Three tiers (STYLE.md §8): unit = pure logic, direct = whole components in-process on
// loopback, privileged = root, network namespaces, eBPF. Each is its own vitest project so the
// test script can run and count them separately.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 10_000 } },
      { test: { name: 'direct', include: ['test/direct/**/*.test.ts'], testTimeout: 30_000 } },
      {
        test: {
          name: 'privileged',
          include: ['test/privileged/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Privileged tests share host resources (netns names, pinned maps): one file at a time.
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});
