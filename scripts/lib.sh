# Shared helpers of the scripts in this folder (sourced, not run).

# Installs Debian packages when a command is missing (fresh machines have only Rust, gcc and git).
# usage: ensure_command CMD PACKAGE
ensure_command() {
    local cmd=$1 package=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    echo "installing $package (for $cmd)..." >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    if [ -z "${KEYGATE_APT_UPDATED:-}" ]; then
        $sudo apt-get update -qq >&2
        export KEYGATE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >&2
}
