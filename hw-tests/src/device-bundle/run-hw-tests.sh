#!/usr/bin/env bash
# Runs the hardware tests from an unpacked device bundle (made by hw-tests/device-bundle.sh) on a
# machine that has no Java and no Maven: the bundle's own runtime, its jars, JUnit's console launcher.
#   ./run-hw-tests.sh            every test tagged hw
#   ./run-hw-tests.sh gpu rdma   only the tests with one of these tags
# SLUICE_HW_REQUIRE=true turns "hardware absent" from a printed skip into a failure, as
# `./sluice test --hw` does. Reports (JUnit XML and the console output) go under $OUT/hw-tests when
# OUT is set (the device tool brings back what is written there), else under ./reports.
# SLUICE_JAVA_OPTS adds JVM options. Exit status: the launcher's (0 all passed or skipped,
# 1 a test failed, 2 no test matched the tags).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAVA="$HERE/runtime/bin/java"

# The project's JVM flags (sluice.jvm.flags in the root pom.xml), one a line, written at bundle time.
mapfile -t JVM_FLAGS <"$HERE/jvm.flags"
# The jars in Maven's test class path order (the order surefire uses), so that where two jars hold
# the same class the same one wins.
CLASSPATH="$(sed "s|^|$HERE/lib/|" "$HERE/classpath.txt" | paste -sd:)"

# libucp (the ucx peer transport) installs crash-signal handlers of its own; the JVM needs its own.
export UCX_HANDLE_ERRORS="${UCX_HANDLE_ERRORS:-none}"

REPORTS="${OUT:+$OUT/hw-tests}"
REPORTS="${REPORTS:-$HERE/reports}"
mkdir -p "$REPORTS"

TAGS=("$@")
[[ ${#TAGS[@]} -gt 0 ]] || TAGS=(hw)
TAG_ARGS=()
for t in "${TAGS[@]}"; do TAG_ARGS+=(--include-tag "$t"); done

echo "[run-hw-tests] tags: ${TAGS[*]}; sluice.hw.require=${SLUICE_HW_REQUIRE:-false}; reports: $REPORTS"
# Only the tests' own jar is scanned: scanning the whole class path would load every *Test class
# the dependencies happen to ship. The console output is kept too, since a remote run only shows
# its tail.
# shellcheck disable=SC2086 # SLUICE_JAVA_OPTS is a list of options, split on purpose
"$JAVA" "${JVM_FLAGS[@]}" "-Dsluice.hw.require=${SLUICE_HW_REQUIRE:-false}" ${SLUICE_JAVA_OPTS:-} \
  -cp "$CLASSPATH" org.junit.platform.console.ConsoleLauncher execute \
  --disable-banner --disable-ansi-colors --details=tree --fail-if-no-tests \
  --scan-class-path "$HERE/lib/sluice-hw-tests-tests.jar" "${TAG_ARGS[@]}" \
  --reports-dir "$REPORTS" 2>&1 | tee "$REPORTS/console.txt"
