#!/bin/sh
# First start on an empty data volume: initdb, password (SCRAM) logins from the network, one role
# POSTGRES_USER with POSTGRES_PASSWORD owning database POSTGRES_DB; then (every start) the server
# in the foreground. The password reaches psql from the environment (\getenv), never on a command line.
set -eu
: "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" "${POSTGRES_DB:?set POSTGRES_DB}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  # A client that dies without closing its connection (a killed container: its network namespace
  # goes with it, no FIN, no RST) must not keep its locks: hsmgate's audit append locks the chain's
  # head row, and the other instances wait for it. Sessions idle inside a transaction end after 5 s;
  # a peer that stops acknowledging is dropped after 5 s, an idle one within about 11 s.
  cat >>"$PGDATA/postgresql.conf" <<'CONF'
listen_addresses = '*'
password_encryption = 'scram-sha-256'
idle_in_transaction_session_timeout = '5s'
tcp_user_timeout = 5000
tcp_keepalives_idle = 5
tcp_keepalives_interval = 2
tcp_keepalives_count = 3
CONF
  printf '%s\n' "host all all 0.0.0.0/0 scram-sha-256" "host all all ::/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait --silent start
  psql --quiet --no-psqlrc --set=ON_ERROR_STOP=1 --username=postgres --dbname=postgres \
    --set=user="$POSTGRES_USER" --set=db="$POSTGRES_DB" <<'SQL'
\getenv password POSTGRES_PASSWORD
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
  pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
fi
exec postgres -D "$PGDATA"
