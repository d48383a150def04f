#!/bin/sh
# Wrap a test command in diag on any CI system (GitLab, Jenkins, Buildkite, ...).
#
#   examples/ci/other-ci.sh ./run-tests.sh [ARGS...]
#
# --ci prints one `::error` line per finding (harmless outside GitHub) and writes the JSON
# report to ./diag-report.json ($RUNNER_TEMP/diag-report.json when that is set); --markdown
# writes a report to paste into a ticket. Keep both files as build artifacts. The script exits
# with the tests' own status, so the job still fails when they do.
set -u
command -v diag >/dev/null || { echo "diag is not installed (cargo xtask dist, then install target/dist/diag)" >&2; exit 2; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# The tests run as the invoking user, not as root (diag itself needs root to trace).
user="${SUDO_USER:-$(id -un)}"

# Mask anything secret-shaped in every output; add your own patterns.
$sudo diag run --ci --user "$user" --markdown diag-report.md \
  --redact 'gh[pousr]_[A-Za-z0-9]{20,}' \
  --redact 'glpat-[A-Za-z0-9_-]{20,}' \
  -- "$@"
status=$?
if [ "$status" -ne 0 ]; then
  echo "diag: the report is in diag-report.md and diag-report.json" >&2
fi
exit "$status"
