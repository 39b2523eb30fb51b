#!/usr/bin/env bash
# One command for a newcomer: install host packages and npm dependencies,
# build Glint, then run its main job on the default home ./vms_linux:
# give a demo VM its own identity and show it, with the QEMU arguments that
# apply it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/host-packages.sh
npm ci
npm run build
glint() { node dist/cli/main.js "$@"; }
if [[ ! -f vms_linux/demo/identifiers.json ]]; then
  glint create demo
fi
glint show demo
echo
echo "QEMU arguments that apply this identity:"
glint qemu-args demo
