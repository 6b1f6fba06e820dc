#!/usr/bin/env bash
# Run the test command; pytest's exit code 5 (no tests collected) counts as a failure.
# Services that tests need are started here and stopped after, whatever the outcome.
set -uo pipefail
"$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  status=1
fi
exit "$status"
