#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker + controller) for development and CI.
# No Docker: the broker's jars come from Maven Central (see pom.xml) and run
# with plain `java`.
#
#   kafka.sh fetch                          resolve the jars into target/lib (cached)
#   kafka.sh start [--port N] [--controller-port N] [--dir DIR]
#                  [--sasl-ssl-port N --tls-pem FILE [--user NAME:PASSWORD]...]
#                                           format DIR (if new) and start in the background;
#                                           returns once the broker accepts connections.
#                                           --sasl-ssl-port adds a SASL_SSL listener (PLAIN,
#                                           SCRAM-SHA-256, SCRAM-SHA-512) whose key and
#                                           certificate chain are in the PEM FILE; each --user
#                                           may log in with any of the three mechanisms
#                                           (SCRAM credentials are written when DIR is formatted)
#   kafka.sh stop [--dir DIR]               stop the broker started in DIR
#   kafka.sh status [--dir DIR]             exit 0 when it runs
#
# Defaults: port 9092, controller port = port + 1, DIR = ./.cx-run/kafka in the repo.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
LIB="$HERE/target/lib"
STAMP="$HERE/target/.resolved"

port=9092
cport=""
dir="$REPO/.cx-run/kafka"
sasl_port=""
tls_pem=""
users=()
start_timeout="${CX_KAFKA_START_TIMEOUT:-120}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

cmd="${1:-}"; shift || true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --controller-port) cport="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --sasl-ssl-port) sasl_port="$2"; shift 2 ;;
    --tls-pem) tls_pem="$2"; shift 2 ;;
    --user) users+=("$2"); shift 2 ;;
    *) die "unknown option: $1" ;;
  esac
done
cport="${cport:-$((port + 1))}"
if [[ -n "$sasl_port" ]]; then
  [[ -f "$tls_pem" ]] || die "--sasl-ssl-port needs --tls-pem FILE (broker key and certificate chain, PEM)"
  for u in "${users[@]}"; do [[ "$u" == *:* ]] || die "--user: expected NAME:PASSWORD"; done
fi

fetch() {
  command -v java >/dev/null || die "java not found (OpenJDK 17+ is required)"
  command -v mvn >/dev/null || die "mvn not found (Maven is required to resolve the broker)"
  local want; want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && ls "$LIB"/kafka_2.13-*.jar >/dev/null 2>&1; then
    return 0
  fi
  echo "kafka.sh: resolving the broker from Maven Central (first run only)..." >&2
  rm -rf "$LIB"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB" >&2 \
    || die "mvn could not resolve org.apache.kafka:kafka_2.13 (see the output above)"
  echo "$want" > "$STAMP"
}

java_cmd() {
  # $@: main class and arguments
  java -Xms256m -Xmx768m -XX:+UseG1GC \
       -Djava.awt.headless=true \
       -Dkafka.logs.dir="$dir/logs" \
       -Dlog4j2.configurationFile="$HERE/log4j2.yaml" \
       -cp "$LIB/*" "$@"
}

write_config() {
  mkdir -p "$dir/data" "$dir/logs"
  local extra_listener="" extra_advertised="" extra_map=""
  if [[ -n "$sasl_port" ]]; then
    extra_listener=",SASL_SSL://127.0.0.1:$sasl_port"
    extra_advertised=",SASL_SSL://127.0.0.1:$sasl_port"
    extra_map=",SASL_SSL:SASL_SSL"
  fi
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport$extra_listener
advertised.listeners=PLAINTEXT://127.0.0.1:$port$extra_advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT$extra_map
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
# Single node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Fast consumer-group formation in dev and tests.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
log.segment.bytes=67108864
PROPS
  [[ -n "$sasl_port" ]] && write_sasl_ssl_config
  return 0
}

write_sasl_ssl_config() {
  # The PLAIN users are listed in the JAAS line; SCRAM users live in the
  # cluster metadata (written by `format --add-scram`, see start).
  local plain_users="" u
  for u in "${users[@]}"; do plain_users+=" user_${u%%:*}=\"${u#*:}\""; done
  cat >> "$dir/server.properties" <<PROPS
# SASL_SSL listener for the TLS/SASL tests.
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$tls_pem
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
PROPS
}

start() {
  fetch
  if status >/dev/null 2>&1; then die "a broker already runs from $dir (pid $(cat "$dir/kafka.pid"))"; fi
  write_config
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local cluster_id; cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    local scram=() u
    for u in "${users[@]}"; do
      scram+=(--add-scram "SCRAM-SHA-256=[name=${u%%:*},password=${u#*:}]"
              --add-scram "SCRAM-SHA-512=[name=${u%%:*},password=${u#*:}]")
    done
    java_cmd kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$dir/server.properties" "${scram[@]}" > "$dir/logs/format.log" 2>&1 \
      || { cat "$dir/logs/format.log" >&2; die "formatting the KRaft log dir failed"; }
  fi
  local t0=$SECONDS
  # A restart on the same DIR appends to server.log: wait for a *new* line.
  local seen=0
  [[ -f "$dir/logs/server.log" ]] && seen="$(grep -c "Kafka Server started" "$dir/logs/server.log" || true)"
  # setsid: the broker outlives this script and ignores the caller's signals.
  setsid bash -c "$(declare -f java_cmd); dir='$dir' HERE='$HERE' LIB='$LIB' java_cmd kafka.Kafka '$dir/server.properties'" \
    > "$dir/logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$dir/kafka.pid"
  while (( SECONDS - t0 < start_timeout )); do
    if ! kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; then
      tail -40 "$dir/logs/stdout.log" >&2 || true
      die "the broker exited during start-up (logs in $dir/logs)"
    fi
    if (( $(grep -c "Kafka Server started" "$dir/logs/server.log" 2>/dev/null || true) > seen )); then
      echo "kafka.sh: broker ready on 127.0.0.1:$port in $((SECONDS - t0)) s (pid $(cat "$dir/kafka.pid"), logs in $dir/logs)" >&2
      return 0
    fi
    sleep 0.5
  done
  stop || true
  die "the broker did not start within ${start_timeout}s (logs in $dir/logs)"
}

status() {
  [[ -f "$dir/kafka.pid" ]] && kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null
}

stop() {
  [[ -f "$dir/kafka.pid" ]] || { echo "kafka.sh: no broker pid file in $dir" >&2; return 0; }
  local pid; pid="$(cat "$dir/kafka.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -- "-$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 -- "-$pid" || true
  fi
  rm -f "$dir/kafka.pid"
}

case "$cmd" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
