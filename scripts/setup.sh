#!/usr/bin/env bash
# Sets up everything cxstream's demo and tests need on a fresh Debian machine
# (Python 3.11+, OpenJDK 17+ and Maven present): system packages, a virtualenv
# with the package and its test tools, and the Kafka broker's jars.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

command -v java >/dev/null || die "java not found: install OpenJDK 17 or newer"
command -v mvn >/dev/null || die "mvn not found: install Maven (it resolves the Kafka broker)"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is required ($PY)"

# Prometheus, promtool and Alertmanager: real parts the tests run against.
need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
# docker-compose (1.29, pure Python) checks docker-compose.yml; `config` needs no engine.
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v openssl >/dev/null || need_apt+=(openssl)  # the TLS tests' CA and broker cert
# Headless Chromium for the wallboard's browser test (driven by playwright-core
# from npm, below; playwright's own browser download is not used).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v npm >/dev/null || need_apt+=(npm)
if (( ${#need_apt[@]} )); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  command -v apt-get >/dev/null || die "missing ${need_apt[*]} and no apt-get to install them"
  say "installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian packages start services on their default ports; the project
  # starts its own instances on free ports, so stop the system ones.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
    $SUDO systemctl stop "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c 'import streams, faust, kafka, prometheus_client, hypothesis, pytest' 2>/dev/null \
   || [[ pyproject.toml -nt .venv/.installed ]]; then
  say "installing cxstream and its dev/test dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch .venv/.installed
fi

deploy/kafka-local/kafka.sh fetch

# playwright-core, pinned by tests/browser/package-lock.json, project-local.
if [[ ! -f tests/browser/node_modules/playwright-core/package.json ]] \
   || [[ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]]; then
  say "installing playwright-core into tests/browser/node_modules"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
say "ready: .venv, Kafka jars, promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}'), alertmanager, chromium, playwright-core"
