# dbflow in a container: build once, run anywhere the project's Workflowfile is mounted.
#
#   docker build -t dbflow .
#   docker run --rm -v "$PWD:/work" -e DATABASE_URL dbflow migrate status --env staging
#
# Two stages: the build needs Rust, a C compiler (Lua and libpg_query are vendored) and
# libclang (pg_query's bindgen); the runtime needs only dbflow and the PostgreSQL client
# tools it calls (pg_dump, pg_restore, psql, createdb, dropdb). The client comes from the
# PostgreSQL project's own repository (PGDG) so pg_dump is at least as new as the server:
# pg_dump refuses to dump a server newer than itself, and version 17 reads every server
# back to 9.2. Set PG_CLIENT to match a newer server.

ARG RUST_VERSION=1.89
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dbflow \
 && install -m 0755 target/release/dbflow /usr/local/bin/dbflow \
 && /usr/local/bin/dbflow --version

FROM debian:${DEBIAN}-slim AS runtime
ARG DEBIAN
ARG PG_CLIENT=17
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg git \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${DEBIAN}-pgdg main" > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-${PG_CLIENT} \
 && apt-get purge -y curl gnupg && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 dbflow
COPY --from=build /usr/local/bin/dbflow /usr/local/bin/dbflow
# The OS account names the journal's actor when DBFLOW_ACTOR and CI variables are unset.
USER dbflow
WORKDIR /work
# No terminal in a container: progress comes as plain lines (DBFLOW_PROGRESS_INTERVAL).
ENV DBFLOW_PROGRESS_INTERVAL=10
ENTRYPOINT ["dbflow"]
CMD ["--help"]
