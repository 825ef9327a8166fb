#!/usr/bin/env bash
# Packs what a lent GPU machine needs to run the hardware tests into one tar.xz: that machine has
# Python and CUDA but no Java, no Maven and no network, and the device tool carries at most 64 MiB
# of ignored files. The archive holds a jlink runtime, hw-tests' test classes and their test class
# path, JUnit's console launcher and run-hw-tests.sh, which runs them with the project's JVM flags.
#   hw-tests/device-bundle.sh [OUT_DIR]     (default hw-tests/target/device-bundle)
# On the device (carry OUT_DIR, then):
#   cd hw-tests/target/device-bundle && tar xf sluice-device-bundle.tar.xz && ./run-hw-tests.sh gpu
set -euo pipefail

HW="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HW")"
OUT_DIR="${1:-$HW/target/device-bundle}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
# Staging lives outside OUT_DIR: only the archive should be carried.
WORK="$HW/target/device-bundle-work"
BUNDLE="$WORK/bundle"
ARCHIVE="$OUT_DIR/sluice-device-bundle.tar.xz"
LIMIT_BYTES=$((64 << 20))
REQUIRED_JAVA=25

# Modules every Sluice run needs (shared/DESIGN.md, platform facts); jdeps adds what the class path
# needs on top (jdk.httpserver, for the daemon's metrics endpoint).
BASE_MODULES=(java.base jdk.unsupported java.logging java.naming java.xml jdk.net)
# Service providers, which jdeps cannot see: JUnit scans the tests' jar through the zip file system
# (without it the launcher finds no tests).
SERVICE_MODULES=(jdk.zipfs)
# Modules jdeps reports that the class path reaches only optionally; leaving them out saves about
# 6 MiB of the compressed runtime:
#   java.compiler  error_prone_annotations' annotations name javax.lang.model types, never loaded
#   java.desktop   java.beans: `requires static` in jackson-databind and snakeyaml
#   java.sql       `requires static` in jackson-databind, snakeyaml and gson; otherwise only in the
#                  CSV parser shaded into junit-jupiter-params and protobuf-java-util's Date helpers
#   jdk.jfr        Netty's allocator events: `requires static`, used only where JFR is present
OPTIONAL_MODULES=(java.compiler java.desktop java.sql jdk.jfr)

die() {
  echo "device-bundle: $*" >&2
  exit 1
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
bytes_of() { # total size of the given files
  if [[ $# -eq 0 ]]; then echo 0; else stat -c %s "$@" | awk '{ s += $1 } END { print s }'; fi
}

java_major() { # prints the major version of the java at $1, or nothing
  "$1" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p' | head -1
}

find_jdk() { # JAVA_HOME if it is a JDK 25+, else the newest under /usr/lib/jvm (as ./sluice does)
  local d v best="" bestv=0
  for d in "${JAVA_HOME:-}" /usr/lib/jvm/*; do
    [[ -n "$d" && -x "$d/bin/jlink" && -x "$d/bin/jdeps" ]] || continue
    v="$(java_major "$d/bin/java")"
    if [[ "$d" == "${JAVA_HOME:-}" && -n "$v" && "$v" -ge $REQUIRED_JAVA ]]; then
      echo "$d"
      return
    fi
    if [[ -n "$v" && "$v" -ge $REQUIRED_JAVA && "$v" -gt $bestv ]]; then
      best="$d"
      bestv=$v
    fi
  done
  [[ -n "$best" ]] || die "no JDK $REQUIRED_JAVA+ with jlink found (JAVA_HOME=${JAVA_HOME:-unset})"
  echo "$best"
}

maven() { # ./mvnw offline; online once more only where the offline run lacked an artifact
  local log="$WORK/maven.log"
  if (cd "$ROOT" && ./mvnw -B -q -o "$@") >"$log" 2>&1; then return 0; fi
  if grep -q 'offline mode' "$log"; then
    echo "device-bundle: an artifact is missing from the local repository; fetching it" >&2
    if (cd "$ROOT" && ./mvnw -B -q "$@") >"$log" 2>&1; then return 0; fi
  fi
  tail -40 "$log" >&2
  die "maven failed: ./mvnw $* (whole log: $log)"
}

strip_foreign_natives() { # $1: a jar; deletes the native libraries it carries for other platforms
  # The runtime is linux-x86_64 (glibc), so macOS and Windows libraries, other architectures and
  # musl builds can never load (aws-crt carries twelve, 56 MiB).
  local foreign
  foreign="$(unzip -Z1 "$1" | grep -E '\.(so(\.[0-9]+)*|dylib|jnilib|dll)$' |
    grep -E '\.(dylib|jnilib|dll)$|aarch_?64|arm(v[0-9]+|64|hf|el)|x86_32|i[3-6]86|ppc|s390|riscv|loongarch|musl' ||
    true)"
  [[ -n "$foreign" ]] || return 0
  mapfile -t foreign <<<"$foreign"
  zip -q -nw -d "$1" "${foreign[@]}" >/dev/null
  STRIPPED_LIBS=$((STRIPPED_LIBS + ${#foreign[@]}))
}

store_uncompressed() { # $1: a jar (absolute path); rewrites it with its entries stored, not deflated
  # xz then compresses the class files themselves, across jars, rather than deflate's output: the
  # archive's jars shrink to less than half.
  local dir
  dir="$(mktemp -d "$WORK/store.XXXXXX")"
  unzip -q -o "$1" -d "$dir"
  rm "$1"
  # The manifest first, where JarInputStream looks for it.
  (
    cd "$dir"
    if [[ -f META-INF/MANIFEST.MF ]]; then zip -q -0 -X "$1" META-INF/MANIFEST.MF; fi
    zip -q -0 -X -r "$1" . -x META-INF/MANIFEST.MF
  )
  rm -rf "$dir"
}

for tool in zip unzip xz tar; do
  command -v "$tool" >/dev/null || die "needs $tool (apt-get install zip unzip xz-utils)"
done
JAVA_HOME="$(find_jdk)"
export JAVA_HOME # ./mvnw builds with it: the modules compile for release 25
JAVA_MAJOR="$(java_major "$JAVA_HOME/bin/java")"

rm -rf "$WORK"
mkdir -p "$BUNDLE/lib"

# 1. Build hw-tests and the modules it uses. `package` rather than `test-compile`, so that the
# class path names the modules' jars instead of their target/classes folders.
echo "device-bundle: building hw-tests and the modules it depends on (JDK $JAVA_HOME)" >&2
maven -pl hw-tests -am package dependency:build-classpath -DskipTests \
  -Dmdep.outputFile=target/device-bundle.cp -Dmdep.includeScope=test
mapfile -t CLASS_PATH < <(tr ':' '\n' <"$HW/target/device-bundle.cp")

# 2. The jars, in class path order (run-hw-tests.sh keeps it). JUnit's own jars stay out: the
# console launcher bundles the same ones, and two copies of an engine on one class path is an error.
JUNIT_PLATFORM=""
RESOLVED_BYTES=0
DROPPED_JARS=0
STRIPPED_LIBS=0
: >"$BUNDLE/classpath.txt"
jar_name="sluice-hw-tests-tests.jar"
"$JAVA_HOME/bin/jar" --create --file "$BUNDLE/lib/$jar_name" -C "$HW/target/test-classes" .
echo "$jar_name" >>"$BUNDLE/classpath.txt"
for entry in "${CLASS_PATH[@]}"; do
  [[ -f "$entry" ]] || die "class path entry is not a jar: $entry"
  name="$(basename "$entry")"
  case "$name" in
    junit-platform-engine-*.jar)
      JUNIT_PLATFORM="${name#junit-platform-engine-}"
      JUNIT_PLATFORM="${JUNIT_PLATFORM%.jar}"
      continue
      ;;
    junit-jupiter*.jar | junit-platform-*.jar | opentest4j-*.jar | apiguardian-api-*.jar) continue ;;
  esac
  RESOLVED_BYTES=$((RESOLVED_BYTES + $(stat -c %s "$entry")))
  # Classifier jars for another OS or CPU (netty-tcnative's osx, windows, aarch_64 ...) are natives
  # only; the jar without a classifier picks the one for the running platform.
  if [[ "$name" =~ -(linux|osx|macos|apple|windows)-[A-Za-z0-9_]+\.jar$ && "$name" != *-linux-x86_64.jar ]]; then
    DROPPED_JARS=$((DROPPED_JARS + 1))
    continue
  fi
  [[ ! -e "$BUNDLE/lib/$name" ]] || die "two class path jars are named $name"
  cp "$entry" "$BUNDLE/lib/$name"
  strip_foreign_natives "$BUNDLE/lib/$name"
  echo "$name" >>"$BUNDLE/classpath.txt"
done
[[ -n "$JUNIT_PLATFORM" ]] || die "no junit-platform-engine on hw-tests' test class path"
echo "device-bundle: jars $(mib "$RESOLVED_BYTES") as resolved, $(mib "$(bytes_of "$BUNDLE"/lib/*.jar)")" \
  "after dropping $DROPPED_JARS foreign-platform jars and $STRIPPED_LIBS foreign native libraries" >&2

# The console launcher of the project's JUnit platform version, to run the tests without Maven.
console="junit-platform-console-standalone-$JUNIT_PLATFORM.jar"
maven -pl hw-tests dependency:copy \
  "-Dartifact=org.junit.platform:junit-platform-console-standalone:$JUNIT_PLATFORM" \
  -DoutputDirectory="$BUNDLE/lib"
[[ -f "$BUNDLE/lib/$console" ]] || die "dependency:copy did not write lib/$console"
echo "$console" >>"$BUNDLE/classpath.txt"
for jar in "$BUNDLE"/lib/*.jar; do store_uncompressed "$jar"; done

# 3. The runtime. jdeps reads a jar that has a module-info as a named module and then demands every
# module it requires; on the class path, where the tests run, module-info means nothing, so it
# reads copies without one.
mkdir "$WORK/jdeps"
cp "$BUNDLE"/lib/*.jar "$WORK/jdeps/"
for jar in "$WORK"/jdeps/*.jar; do
  # exit status 12: the jar has no module-info
  zip -q -d "$jar" module-info.class 'META-INF/versions/*/module-info.class' >/dev/null ||
    [[ $? -eq 12 ]] || die "could not drop module-info from a copy of $(basename "$jar")"
done
found="$("$JAVA_HOME/bin/jdeps" --print-module-deps --ignore-missing-deps -q \
  --multi-release "$JAVA_MAJOR" --class-path "$WORK/jdeps/*" "$WORK"/jdeps/*.jar | tail -1)"
[[ "$found" == java.base* ]] || die "jdeps printed no module list (got: $found)"
modules=("${BASE_MODULES[@]}" "${SERVICE_MODULES[@]}")
IFS=, read -r -a found_list <<<"$found"
for m in "${found_list[@]}"; do
  [[ " ${OPTIONAL_MODULES[*]} " == *" $m "* ]] || modules+=("$m")
done
MODULES="$(printf '%s\n' "${modules[@]}" | sort -u | paste -sd,)"
echo "device-bundle: jdeps: $found; linking: $MODULES" >&2
"$JAVA_HOME/bin/jlink" --add-modules "$MODULES" --strip-debug --no-header-files --no-man-pages \
  --compress zip-0 --output "$BUNDLE/runtime"
"$BUNDLE/runtime/bin/java" -version >/dev/null 2>&1 || die "the linked runtime does not start"

# 4. What run-hw-tests.sh reads: the JVM flags every run needs (one place names them, the root
# pom's sluice.jvm.flags, as surefire does), and DiSNI's export that hw-tests' pom adds.
flags="$(sed -n 's:.*<sluice.jvm.flags>\(.*\)</sluice.jvm.flags>.*:\1:p' "$ROOT/pom.xml" | head -1)"
[[ -n "$flags" ]] || die "no <sluice.jvm.flags> in $ROOT/pom.xml"
read -r -a jvm_flags <<<"$flags"
[[ " ${jvm_flags[*]} " == *" --add-exports=java.base/sun.nio.ch=ALL-UNNAMED "* ]] ||
  jvm_flags+=(--add-exports=java.base/sun.nio.ch=ALL-UNNAMED)
printf '%s\n' "${jvm_flags[@]}" >"$BUNDLE/jvm.flags"
cp "$HW/src/device-bundle/run-hw-tests.sh" "$BUNDLE/"
{
  echo "sluice device bundle, $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)," \
    "built $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "runtime: JDK $("$BUNDLE/runtime/bin/java" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java.runtime.version = //p'), modules $MODULES"
} >"$BUNDLE/bundle.txt"

# 5. One archive. xz -9 over a runtime linked with --compress zip-0 and jars stored uncompressed
# beats jlink's and the jars' own compression by far.
rm -f "$ARCHIVE"
tar -C "$BUNDLE" --owner=0 --group=0 --numeric-owner -cf - \
  bundle.txt run-hw-tests.sh jvm.flags classpath.txt runtime lib | xz -9 >"$ARCHIVE.part"
mv "$ARCHIVE.part" "$ARCHIVE"
size="$(stat -c %s "$ARCHIVE")"
echo "device-bundle: runtime $(du -sh "$BUNDLE/runtime" | cut -f1), lib $(du -sh "$BUNDLE/lib" | cut -f1) unpacked" >&2
echo "device-bundle: $ARCHIVE: $size bytes ($(mib "$size")), limit $(mib "$LIMIT_BYTES")"
if [[ "$size" -ge "$LIMIT_BYTES" ]]; then
  echo "device-bundle: largest jars:" >&2
  du -k "$BUNDLE"/lib/*.jar | sort -rn | head -5 >&2
  die "the archive is $(mib "$size"), over the device tool's $(mib "$LIMIT_BYTES") carry limit"
fi
carried="$(du -sb "$OUT_DIR" | cut -f1)"
if [[ "$carried" -ge "$LIMIT_BYTES" ]]; then
  echo "device-bundle: warning: $OUT_DIR holds $(mib "$carried") in all; carry only the archive" >&2
fi
