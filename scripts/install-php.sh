#!/bin/sh
# Makes PHP's command-line interpreter available: tests/php_query.rs hands the query strings the
# Kommo client sends to PHP's own parse_str(), since Kommo's API is written in PHP.
#
# Idempotent: does nothing but print the version when `php` is already on PATH. Otherwise installs
# Debian's php-cli (apt-get; through sudo when not root and sudo exists).
set -eu

if ! command -v php >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-php.sh: php is missing, and installing it needs root (or sudo)." >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-php.sh: php is missing and apt-get is not available; install PHP's CLI by hand." >&2
        exit 1
    fi
    echo "install-php.sh: installing php-cli..."
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends php-cli
fi

php --version
