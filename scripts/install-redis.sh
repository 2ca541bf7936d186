#!/bin/sh
# Makes Debian's redis-server available: the tests of the shared rate limiter and token store
# (feature `redis`) start a real Redis of their own, on a Unix socket in a temporary folder, and
# stop it when they end. No mock of Redis stands in for it.
#
# Idempotent: does nothing but print the version when `redis-server` is on PATH (or in
# /usr/sbin, where Debian puts it). Otherwise installs Debian's redis-server 7.0 (apt-get; through
# sudo when not root and sudo exists) without starting the system's service: the tests start
# their own servers.
set -eu

find_redis() {
    command -v redis-server 2>/dev/null || { [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server; } || true
}

if [ -z "$(find_redis)" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-redis.sh: redis-server is missing, and installing it needs root (or sudo)." >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-redis.sh: redis-server is missing and apt-get is not available; install Redis 7 by hand." >&2
        exit 1
    fi
    echo "install-redis.sh: installing redis-server 7.0..."
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    # A policy-rc.d that answers 101 keeps the package's service from starting (the tests start
    # their own); one that is there already (container images have one) is left as it is.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        $SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
        made_policy=yes
    fi
    status=0
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends 'redis-server=5:7.0.*' || status=$?
    if [ -n "$made_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
    [ "$status" -eq 0 ] || exit "$status"
fi

redis="$(find_redis)"
if [ -z "$redis" ]; then
    echo "install-redis.sh: redis-server was installed but is not on PATH" >&2
    exit 1
fi
version="$("$redis" --version)"
case "$version" in
    *"v=7."*) echo "$version" ;;
    *) echo "install-redis.sh: Redis 7 is needed (the limiter's and token store's scripts); found: $version" >&2; exit 1 ;;
esac
