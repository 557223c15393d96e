#!/usr/bin/env bash
# Gateway overhead benchmark: set up (idempotent), then run bench/overhead.py.
#   bench/run.sh [--duration 10] [--targets direct,bare,turnout,litellm,portkey] [--only-json] ...
# See bench/README.md; `bench/run.sh --help` lists the options.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
case " $* " in
    *" --help "* | *" -h "* | *" --report "*) ;;
    *) bench/setup.sh ;;
esac
exec "$ROOT/.venv/bin/python" bench/overhead.py "$@"
