# Sourced by run.sh and test.sh: a virtualenv in .venv with the given requirements file, installed once.
venv="${VENV:-.venv}"
requirements="$1"
if [ ! -x "$venv/bin/python" ]; then
  echo "setting up $venv (first run: a few minutes)"
  python3 -m venv "$venv"
fi
stamp="$venv/.installed-$(basename "$requirements")-$(cat requirements*.txt | cksum | cut -d' ' -f1)"
if [ ! -e "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$requirements"
  touch "$stamp"
fi
PY="$venv/bin/python"
