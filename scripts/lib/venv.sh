# Sourced by scripts/*: creates .venv if missing and (re)installs the project when
# pyproject.toml changed since the last install. Argument: the extra to install ("" or "test").
ensure_venv() {
    local extra="${1:-}"
    local py="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        echo "== creating .venv with $($py --version)"
        "$py" -m venv .venv
    fi
    # shellcheck disable=SC1091
    source .venv/bin/activate
    # The stamp holds the pyproject hash and the extra installed with it; an install with
    # the test extra also satisfies a plain one (scripts/demo after scripts/test).
    local hash stamp=".venv/.gatewayd-installed" have=""
    hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    [ -f "$stamp" ] && have="$(cat "$stamp")"
    if [ "$have" != "$hash-$extra" ] && [ "$have" != "$hash-test" ]; then
        echo "== installing gatewayd${extra:+[$extra]} into .venv"
        python -m pip install --quiet --upgrade pip
        if [ -n "$extra" ]; then
            python -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
        else
            python -m pip install --quiet --disable-pip-version-check -e .
        fi
        echo "$hash-$extra" >"$stamp"
    fi
}
