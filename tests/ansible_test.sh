#!/usr/bin/env bash
# Run `ansible-test sanity|units` offline. ansible-test wants the collection as a real
# directory at .../ansible_collections/phoenix/platform (a symlink is rejected), so the
# tree is copied to a temporary one.
set -euo pipefail
command=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ansible-test bootstraps pip with a get-pip script it downloads from a host outside the
# package registries; this stand-in does the same with ensurepip and the configured index.
pip_version=$("$python" - <<'PY'
import pathlib, re, ansible_test
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text()).group(1))
PY
)
cache=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -f "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    cat > "$cache" <<'PY'
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
PY
fi

dest=$work/ansible_collections/phoenix/platform
mkdir -p "$dest"
(cd "$root" && git ls-files -co --exclude-standard -z -- . ":!collections" ":!playbooks/collections" | xargs -0 cp --parents -t "$dest")
cd "$dest"
case $command in
    sanity) "$root/.venv/bin/ansible-test" sanity --python 3.11 --local --color no "$@" ;;
    units) "$root/.venv/bin/ansible-test" units --python 3.11 --venv --color no "$@" ;;
    *) echo "usage: $0 sanity|units [ansible-test options]" >&2; exit 2 ;;
esac
