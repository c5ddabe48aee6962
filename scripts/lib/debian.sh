# Sourced by scripts/*: make sure the Debian packages that tests use are installed.
# ensure_debian_tool COMMAND PACKAGE: installs PACKAGE when COMMAND is missing and we are root.
# Under CI=true a tool that cannot be had is an error, never a silent skip.
_apt_updated=""
ensure_debian_tool() {
    local cmd="$1" pkg="$2"
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing Debian package $pkg (for $cmd)"
        if [ -z "$_apt_updated" ]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            _apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    fi
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "!! $cmd (Debian package $pkg) is missing and could not be installed" >&2
        if [ "${CI:-}" = "true" ]; then
            return 1
        fi
    fi
}
