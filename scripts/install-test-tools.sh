#!/bin/sh
# Everything `cargo test --workspace` needs besides Rust, installed when it is missing:
#
# - PHP's CLI (scripts/install-php.sh): tests/php_query.rs and the fake's form tests hand query
#   strings to PHP's own parse_str(), since Kommo's API is written in PHP;
# - redis-server 7 (scripts/install-redis.sh): the shared rate limit and token store tests
#   (tests/redis_shared.rs, tests/oauth_store.rs, tests/multi_process.rs, ...) start real Redis
#   servers of their own.
#
# The README's test command is this script followed by `cargo test --workspace`, and `.ci/run`
# runs that very line word for word (and checks the README still says it). Idempotent: with both tools present it only prints
# their versions. Installing needs root or sudo, and apt-get (Debian or Ubuntu).
set -eu
here="$(dirname "$0")"
"$here/install-php.sh"
"$here/install-redis.sh"
