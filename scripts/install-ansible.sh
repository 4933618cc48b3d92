#!/usr/bin/env bash
# Installs what the Ansible collection's tests use (SPEC O9) into a virtual environment of its
# own, .build/ansible-venv: ansible-core and pytest from PyPI, pinned, so that every run tests
# against the same Ansible; the system's Python stays untouched. Quick when already there.
#   install-ansible.sh    prints the venv's bin directory
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.build/ansible-venv"
# ansible-core 2.19 is the newest that runs on Debian 12's Python 3.11 (2.20 needs 3.12).
pins=("ansible-core==2.19.4" "pytest==8.4.2")
stamp="$venv/.pins"
if [ -x "$venv/bin/ansible-playbook" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${pins[*]}" ]; then
    echo "$venv/bin"
    exit 0
fi
"$root/scripts/install-deps.sh" python3-venv >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
echo "${pins[*]}" >"$stamp"
echo "$venv/bin"
