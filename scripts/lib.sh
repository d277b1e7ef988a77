# Shared helpers of the scripts in this folder (sourced, not run).

# Installs Debian packages when a command is missing (fresh machines have only Rust, gcc and git).
# usage: ensure_command CMD PACKAGE
ensure_command() {
    local cmd=$1 package=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    echo "installing $package (for $cmd)..." >&2
    apt_install "$package"
}

# Installs a Debian package (apt-get update once per run).
# usage: apt_install PACKAGE
apt_install() {
    local package=$1 sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    if [ -z "${KEYGATE_APT_UPDATED:-}" ]; then
        $sudo apt-get update -qq >&2
        export KEYGATE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >&2
}

# Creates a Python venv at DIR (python3 -m venv; python3-venv from Debian when the module is
# missing) holding exactly the pinned REQUIREMENT ("name==version"); reinstalls when the pin changes.
# usage: ensure_python_venv DIR REQUIREMENT
ensure_python_venv() {
    local dir=$1 requirement=$2
    [ "$(cat "$dir/.pinned" 2>/dev/null)" = "$requirement" ] && return 0
    echo "installing $requirement into $dir..." >&2
    rm -rf "$dir"
    if ! python3 -m venv "$dir" >/dev/null 2>&1; then
        rm -rf "$dir"
        echo "installing python3-venv (python3 -m venv failed)..." >&2
        apt_install python3-venv
        python3 -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$requirement" >&2
    printf %s "$requirement" >"$dir/.pinned"
}

# Installs a cargo subcommand from crates.io (--locked) when it is missing or not at the pinned
# VERSION (cargo finds it in $CARGO_HOME/bin even when that is not on PATH).
# usage: ensure_cargo_tool CRATE VERSION   (e.g. ensure_cargo_tool cargo-deny 0.20.2)
ensure_cargo_tool() {
    local tool=$1 version=$2
    if cargo "${tool#cargo-}" --version 2>/dev/null | grep -qF "$tool $version"; then
        return 0
    fi
    echo "installing $tool $version from crates.io (a few minutes of compiling)..." >&2
    cargo install --locked --quiet "$tool" --version "$version" >&2
}
