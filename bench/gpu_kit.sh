#!/usr/bin/env bash
# Build .devkit/: everything a bare, offline GPU machine needs to run the GPU benchmarks
# (bench/gpu_suite.sh) on the real stack.  Such a machine has Python 3.12 with torch,
# numpy, opencv, scipy and pandas, but no network, no Java, no Kafka and no Redis, and it
# takes at most 64 MiB per call, so the kit comes in two halves:
#
#   .devkit/part1  the sample drive and SSDLite graph (sha256-pinned assets, as cached by
#                  `make demo`), cp312 wheels of the Python dependencies the image lacks,
#                  a wheel of this project (for its entry points), redis-server and the
#                  shared libraries it needs beyond Ubuntu 24.04's base;
#   .devkit/part2  the pinned Kafka jars (as cached) and a jlink'd Java runtime, xz'd.
#
# Run from the repository root after `make install` and one `make demo` or `make test`
# (which fetch the assets and jars): `bash bench/gpu_kit.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.devkit
CACHE=${SECMLOPS_CACHE_DIR:-$HOME/.cache/secmlops}
PY=.venv/bin/python
KAFKA=$($PY -c 'from streams.stack.jars import KAFKA_VERSION; print(KAFKA_VERSION)')

rm -rf "$KIT" && mkdir -p "$KIT/part1/cache/assets" "$KIT/part1/wheels" "$KIT/part1/bin" \
  "$KIT/part1/lib" "$KIT/part2/cache"
grep -qx "/$KIT/" .git/info/exclude 2>/dev/null || echo "/$KIT/" >> .git/info/exclude

echo "assets (verified against their pinned sha256)"
$PY - <<'EOF'
from streams.assets import ASSETS, fetch_asset
from streams.settings import Settings
for name in ("sample-drive", "ssdlite-graph"):
    fetch_asset(ASSETS[name], Settings.from_env().cache_dir, quiet=True)
EOF
cp -r "$CACHE/assets/sample-drive" "$CACHE/assets/ssdlite-graph" "$KIT/part1/cache/assets/"

echo "wheels for CPython 3.12 (versions from constraints.txt)"
pin() { grep -i "^$1==" constraints.txt; }
MISSING="aiohttp-cors aiokafka async-timeout cffi colorlog crc32c croniter cryptography \
  faust-streaming intervaltree kafka-python mode-streaming msgspec pycparser pytz redis river \
  terminaltables venusian"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64 \
  -d "$KIT/part1/wheels" $(for p in $MISSING; do pin "$p"; done)
$PY -m pip wheel -q --no-deps --no-build-isolation . -w "$KIT/part1/wheels"

echo "redis-server and the libraries Ubuntu's base image lacks"
cp "$(readlink -f "$(command -v redis-server)")" "$KIT/part1/bin/redis-server.real"
for lib in liblzf.so.1 libjemalloc.so.2 libatomic.so.1; do
  cp "$(ldd "$KIT/part1/bin/redis-server.real" | awk -v l="$lib" '$1 == l {print $3}')" "$KIT/part1/lib/"
done
cat > "$KIT/part1/bin/redis-server" <<'EOF'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$here/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/redis-server.real" "$@"
EOF
chmod +x "$KIT/part1/bin/redis-server"

echo "Kafka $KAFKA jars and a Java runtime"
cp -r "$CACHE/kafka-$KAFKA" "$KIT/part2/cache/"
jlink --add-modules java.base,java.desktop,java.logging,java.management,java.naming,java.rmi,java.security.jgss,java.security.sasl,java.sql,java.xml,jdk.crypto.ec,jdk.management,jdk.naming.dns,jdk.unsupported,jdk.zipfs \
  --strip-debug --no-header-files --no-man-pages --output "$KIT/jre"
tar -C "$KIT" -cJf "$KIT/part2/jre.tar.xz" jre && rm -rf "$KIT/jre"
rm -rf build  # what pip wheel leaves behind
du -sh "$KIT/part1" "$KIT/part2"
