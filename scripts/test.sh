#!/usr/bin/env bash
# The README's test command: set up, then lint/typecheck and the three test tiers.
# Privileged tests need root; when run as root the tier must execute at least one test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

printf '\n==> lint, import cycles, types\n'
npm run --silent lint
npm run --silent typecheck

status=0
for tier in unit direct privileged; do
  printf '\n==> %s tests\n' "$tier"
  if [ "$tier" = privileged ] && [ "$(id -u)" -ne 0 ]; then
    echo "privileged tier NOT RUN: needs root (network namespaces, eBPF). Run this script with sudo." >&2
    status=1
    continue
  fi
  npx vitest run --project "$tier" --reporter=default --reporter=json --outputFile="$results/$tier.json" || status=1
done

node -e '
  const fs = require("fs"); const dir = process.argv[1];
  let passed = 0, failed = 0, skipped = 0; const lines = [];
  for (const tier of ["unit", "direct", "privileged"]) {
    const f = `${dir}/${tier}.json`;
    if (!fs.existsSync(f)) { lines.push(`${tier}: not run`); continue; }
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + (r.numTodoTests ?? 0);
    lines.push(`${tier}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
    // Name every failure here too: CI excerpts often show only the end of the log.
    for (const file of r.testResults ?? []) {
      const failedTests = (file.assertionResults ?? []).filter((t) => t.status === "failed");
      if (failedTests.length === 0 && file.status === "failed") {
        lines.push(`  FAILED ${file.name}: ${String(file.message ?? "").split("\n")[0].slice(0, 300)}`);
      }
      for (const t of failedTests) {
        const why = String((t.failureMessages ?? [])[0] ?? "").split("\n")[0].slice(0, 300);
        lines.push(`  FAILED ${file.name} > ${t.fullName}: ${why}`);
      }
    }
    if (tier === "privileged" && r.numPassedTests + r.numFailedTests === 0) {
      lines.push("privileged tier executed no test: failing the run"); failed++;
    }
  }
  console.log("\n" + lines.join("\n"));
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed ? 1 : 0);
' "$results" || status=1
exit $status
