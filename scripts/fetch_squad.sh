#!/usr/bin/env bash
# The SQuAD v1.1 dev set (CC BY-SA 4.0) for recipes/qa-int8.yaml, from the sdist of BIG-bench 1.0.0 on PyPI
# (bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json; BIG-bench's code is Apache-2.0). Only that file is
# kept: the 358 MB tarball is deleted. Both the tarball and the file are checked against pinned sha256 sums.
#
# Why a pinned pip 25.3, run from its wheel: pip >= 26 refuses to download any PyPI sdist whose metadata
# declares a direct-URL dependency, even with --no-deps, and bigbench's setup.py declares bleurt by URL.
# The wheel is fetched by a throwaway venv's own pip; nothing is installed anywhere.
#
# Usage: scripts/fetch_squad.sh DEST   (DEST: the .json to write; nothing is done when it exists)
set -euo pipefail
dest="${1:?usage: scripts/fetch_squad.sh DEST.json}"
[ -f "$dest" ] && exit 0
python="${PYTHON:-python3}"
PIP_VERSION=25.3
PIP_SHA256=9655943313a94722b7774661c21049070f6bbb0a1516bf02f7c8d5d9201514cd
SDIST_SHA256=1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2
JSON_SHA256=45089eff3cf52004b1dca6814cde5c57082fdb09872f18c79a5d944d45be523a
MEMBER=bigbench-1.0.0/bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json

tmp="$(mktemp -d "${TMPDIR:-/tmp}/squad-data.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps "pip==$PIP_VERSION" -d "$tmp"
echo "$PIP_SHA256  $tmp/pip-$PIP_VERSION-py3-none-any.whl" | sha256sum -c --quiet
"$tmp/venv/bin/python" "$tmp/pip-$PIP_VERSION-py3-none-any.whl/pip" download -q --disable-pip-version-check \
  --no-deps --no-binary :all: bigbench==1.0.0 -d "$tmp"
echo "$SDIST_SHA256  $tmp/bigbench-1.0.0.tar.gz" | sha256sum -c --quiet
tar xzf "$tmp/bigbench-1.0.0.tar.gz" -C "$tmp" --no-same-owner "$MEMBER"
rm -f "$tmp/bigbench-1.0.0.tar.gz"
echo "$JSON_SHA256  $tmp/$MEMBER" | sha256sum -c --quiet
mkdir -p "$(dirname "$dest")"
mv "$tmp/$MEMBER" "$dest.part" && mv "$dest.part" "$dest"
echo "wrote $dest (SQuAD v1.1 dev as shipped by BIG-bench 1.0.0: 10,565 questions, 48 articles)"
