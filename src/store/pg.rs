//! The audit log in PostgreSQL: the schema and its migrations, the
//! import of a verified file log and the byte-identical export.
//!
//! `opsgate_audit.record` holds each record's exact line (without its
//! newline), so an export is the file it came from and `opsgate audit
//! verify` checks it offline. A trigger refuses UPDATE, DELETE and
//! TRUNCATE on `opsgate_audit`; `opsgate_head` is the one-row head of the
//! chain (its `chain_id` names this chain for good).

use std::io::Write;
use std::path::Path;

use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::redact_url;
use crate::audit::Sealer;
use crate::audit::chain::GENESIS;
use crate::audit::log::{Sealed, seal_after};
use crate::audit::read::Line;
use crate::audit::verify::Verifier;
use crate::core::event::Event;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server refused or failed (with what was being done).
    #[error("{what}: {message}")]
    Db { what: String, message: String },
    /// The schema is not there: `opsgate store init`.
    #[error("{0} has no opsgate schema: `opsgate store init --store URL` creates it")]
    NotInitialized(String),
    /// The schema is newer than this build knows.
    #[error(
        "{url} has opsgate schema version {found}; this build knows up to {known}: upgrade opsgate"
    )]
    TooNew { url: String, found: i32, known: i32 },
    /// `migrate` into a store that holds records.
    #[error(
        "{url} already holds {records} record(s) (head seq {seq}): `store migrate` imports only into an empty store"
    )]
    NotEmpty { url: String, records: i64, seq: i64 },
    /// Another host holds the plan's run lease, or this host's lapsed.
    #[error("{0}")]
    Leased(String),
    /// The store went back or forked since this host last saw it.
    #[error("{0}")]
    Diverged(String),
    /// The file to import does not verify.
    #[error("{file} does not verify, nothing was imported: {problem}")]
    Broken { file: String, problem: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The schema versions, in order: each is applied once, in a transaction,
/// and recorded in `opsgate_schema`.
const MIGRATIONS: &[&str] = &[
    // 1: the audit table, its append-only trigger, the head.
    r"
CREATE TABLE opsgate_audit (
    seq        bigint PRIMARY KEY CHECK (seq > 0),
    prev       text NOT NULL UNIQUE,
    hash       text NOT NULL UNIQUE,
    record     bytea NOT NULL,
    event_id   uuid UNIQUE,
    type       text NOT NULL,
    plan_id    text,
    run_id     text,
    written_at timestamptz NOT NULL
);
CREATE INDEX opsgate_audit_plan ON opsgate_audit (plan_id) WHERE plan_id IS NOT NULL;
CREATE INDEX opsgate_audit_run ON opsgate_audit (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE opsgate_head (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    chain_id text NOT NULL,
    seq      bigint NOT NULL,
    hash     text NOT NULL
);
INSERT INTO opsgate_head (chain_id, seq, hash) VALUES (gen_random_uuid()::text, 0, '@GENESIS@');
CREATE FUNCTION opsgate_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'opsgate_audit is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER opsgate_audit_append_only BEFORE UPDATE OR DELETE ON opsgate_audit
    FOR EACH ROW EXECUTE FUNCTION opsgate_audit_append_only();
CREATE TRIGGER opsgate_audit_no_truncate BEFORE TRUNCATE ON opsgate_audit
    FOR EACH STATEMENT EXECUTE FUNCTION opsgate_audit_append_only();
",
    // 2: the head moves only from where the writer saw it, so a writer
    // that knows the head appends in one round trip.
    r"
CREATE FUNCTION opsgate_move_head(old_seq bigint, old_hash text, new_seq bigint, new_hash text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE opsgate_head SET seq = new_seq, hash = new_hash
        WHERE seq = old_seq AND hash = old_hash;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '40001',
            MESSAGE = 'the head of opsgate_audit is not at ' || old_seq;
    END IF;
    PERFORM pg_notify('opsgate_audit', new_seq::text);
END
$$;
",
    // 3: one live run per plan across hosts, held by a lease that its
    // engine renews; times are the server's clock, never a host's.
    r"
CREATE TABLE opsgate_run_lease (
    plan_id    text PRIMARY KEY,
    run_id     text NOT NULL UNIQUE,
    holder     text NOT NULL,
    taken_at   timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
",
    // 4: an append in one statement: the head's move from where the
    // writer saw it and the insert, so a writer that knows the head
    // appends in one statement of its own transaction (no BEGIN, no
    // COMMIT): one round trip, one flush, as a plain INSERT.
    r"
CREATE FUNCTION opsgate_append(old_seq bigint, old_hash text, seqs bigint[], prevs text[],
    hashes text[], records bytea[], types text[], plan_ids text[], run_ids text[], written text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(seqs);
BEGIN
    PERFORM opsgate_move_head(old_seq, old_hash, seqs[n], hashes[n]);
    INSERT INTO opsgate_audit (seq, prev, hash, record, type, plan_id, run_id, written_at)
        SELECT s, p, h, r, t, pl, ru, w::timestamptz
        FROM unnest(seqs, prevs, hashes, records, types, plan_ids, run_ids, written)
            AS u(s, p, h, r, t, pl, ru, w);
END
$$;
",
];

/// The newest schema version this build knows.
pub fn schema_version() -> i32 {
    i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX)
}

/// A connection to the store, driven by its own single-threaded runtime
/// (the command line is synchronous).
pub struct Pg {
    rt: tokio::runtime::Runtime,
    client: Client,
    /// How to connect again (the password included).
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    url: String,
    /// An append's statements, prepared on this connection.
    statements: Option<Statements>,
    /// The head as this connection's last append left it: the next one
    /// starts from there without reading it.
    head: Option<(i64, String)>,
    /// Appends left to make under the head lock after the head was found
    /// moved: under contention, guessing the head costs more than it saves.
    contended: u8,
    /// This host's high-water mark of the chain, when kept
    /// ([`Pg::with_mark`]), and whether the store was checked against it
    /// on this connection.
    mark: Option<crate::audit::mark::HighWater>,
    mark_checked: bool,
}

/// The store against this host's mark of its chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MarkState {
    /// This host never saw the chain.
    None,
    /// The store holds the record the mark names.
    Ok { seq: u64, hash: String },
    /// The store ends before the mark: acknowledged records were lost (a
    /// failover to a replica that was behind, a restored backup).
    Behind {
        mark_seq: u64,
        mark_hash: String,
        head_seq: u64,
    },
    /// The store holds another record at the mark's seq: it forked.
    Forked {
        mark_seq: u64,
        mark_hash: String,
        found_hash: String,
    },
}

impl MarkState {
    /// Why nothing may be written, if nothing may.
    pub fn refusal(&self, url: &str) -> Option<String> {
        let how = "an operator checks the store and accepts it as it is with `opsgate store status --accept --reason TEXT` (docs/team-mode.md)";
        match self {
            MarkState::Behind {
                mark_seq, head_seq, ..
            } => Some(format!(
                "{url} ends at seq {head_seq}, but this host saw it reach seq {mark_seq}: acknowledged records are missing (a failover or a restore?); nothing is decided or run until {how}"
            )),
            MarkState::Forked {
                mark_seq,
                mark_hash,
                found_hash,
            } => Some(format!(
                "{url} holds {found_hash} at seq {mark_seq}, but this host saw {mark_hash} there: the chain forked; nothing is decided or run until {how}"
            )),
            _ => None,
        }
    }
}

#[derive(Clone)]
struct Statements {
    lock_head: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    move_head: tokio_postgres::Statement,
    records_from: tokio_postgres::Statement,
    /// `opsgate_append` (schema version 4): the move and the insert in
    /// one statement. `None` on a store still at an older version: the
    /// two statements then.
    append: Option<tokio_postgres::Statement>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("url", &self.url).finish()
    }
}

fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    let what = what.into();
    move |e| StoreError::Db {
        what,
        message: match e.as_db_error() {
            Some(d) => format!("{} ({})", d.message(), d.code().code()),
            None => {
                let mut m = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    m.push_str(&format!(": {s}"));
                    source = s.source();
                }
                m
            }
        },
    }
}

/// How to connect to `url`: its settings (the password from the URL,
/// `PGPASSWORD` or the password file; a ten-second connect timeout) and
/// its TLS (`super::tls`).
fn settings(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), StoreError> {
    let shown = redact_url(url);
    let invalid = |message: String| StoreError::Db {
        what: shown.clone(),
        message,
    };
    let (rest, tls) = super::tls::split(url).map_err(invalid)?;
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(db(format!("{shown}: not a PostgreSQL URL")))?;
    config.ssl_mode(match tls {
        super::tls::Tls::Off => tokio_postgres::config::SslMode::Disable,
        super::tls::Tls::VerifyFull { .. } => tokio_postgres::config::SslMode::Require,
    });
    if config.get_password().is_none() {
        if let Ok(pw) = std::env::var("PGPASSWORD") {
            config.password(pw);
        } else if let Some(pw) = password_from_file(&config) {
            config.password(pw);
        }
    }
    config.connect_timeout(std::time::Duration::from_secs(10));
    let connector = super::tls::connector(&tls).map_err(invalid)?;
    Ok((config, connector))
}

/// The password file's password for `config`'s first TCP host, port,
/// database and user (libpq's defaults: port 5432, the user's name as the
/// database).
fn password_from_file(config: &tokio_postgres::Config) -> Option<String> {
    let host = config.get_hosts().iter().find_map(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => Some(name.clone()),
        #[allow(unreachable_patterns, reason = "Unix sockets exist on unix only")]
        _ => None,
    })?;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user()?;
    let database = config.get_dbname().unwrap_or(user);
    super::passfile::lookup(&super::passfile::path()?, &host, port, database, user)
}

/// What `store init` did.
#[derive(Debug, serde::Serialize)]
pub struct Init {
    pub url: String,
    /// The versions applied now (empty: it was up to date).
    pub applied: Vec<i32>,
    pub schema_version: i32,
    pub chain_id: String,
}

/// What `store status` shows.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub url: String,
    pub server_version: String,
    /// Whether this connection is encrypted (`pg_stat_ssl`).
    pub tls: bool,
    pub schema_version: i32,
    pub chain_id: String,
    pub head_seq: i64,
    pub head_hash: String,
    pub records: i64,
}

/// What `store migrate` imported.
#[derive(Debug, serde::Serialize)]
pub struct Migrated {
    pub url: String,
    pub from: String,
    pub records: u64,
    pub head_seq: u64,
    pub head_hash: String,
    pub chain_id: String,
}

/// One record to insert.
struct Row {
    seq: i64,
    prev: String,
    hash: String,
    record: Vec<u8>,
    kind: String,
    plan_id: Option<String>,
    run_id: Option<String>,
    ts: String,
}

/// Rows per INSERT statement in an import.
const BATCH: usize = 2000;

impl Pg {
    /// Connects to `url` (libpq's URL form; the password from the URL or
    /// `PGPASSWORD`).
    pub fn connect(url: &str) -> Result<Pg, StoreError> {
        let shown = redact_url(url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (config, tls) = settings(url)?;
        let (client, conn) = on(&rt, config.connect(tls.clone()))
            .map_err(db(format!("cannot connect to {shown}")))?;
        rt.spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "the PostgreSQL connection ended");
            }
        });
        let pg = Pg {
            rt,
            client,
            config,
            tls,
            url: shown,
            statements: None,
            head: None,
            contended: 0,
            mark: None,
            mark_checked: false,
        };
        pg.session()?;
        Ok(pg)
    }

    /// Keeps this host's high-water mark of the store's chain in
    /// `state_dir` (`<state>/heads/`): appends raise it, and a store that
    /// went back or forked since (a failover that lost acknowledged
    /// records, a restored backup) is refused until an operator accepts it.
    pub fn with_mark(mut self, state_dir: &Path) -> Result<Self, StoreError> {
        let chain_id = self.status()?.chain_id;
        self.mark = Some(crate::audit::mark::HighWater::for_store(
            state_dir, &chain_id,
        ));
        Ok(self)
    }

    /// The store against this host's mark.
    pub fn mark_state(&self) -> Result<MarkState, StoreError> {
        let Some(mark) = &self.mark else {
            return Ok(MarkState::None);
        };
        let Some(m) = mark.get()? else {
            return Ok(MarkState::None);
        };
        let c = &self.client;
        let seq = i64::try_from(m.seq).unwrap_or(i64::MAX);
        let (found, head): (Option<String>, i64) = on(&self.rt, async {
            let row = c
                .query_one(
                    "SELECT (SELECT hash FROM opsgate_audit WHERE seq = $1), (SELECT seq FROM opsgate_head)",
                    &[&seq],
                )
                .await
                .map_err(db("reading the store against this host's mark"))?;
            Ok::<_, StoreError>((row.get(0), row.get(1)))
        })?;
        Ok(match found {
            Some(h) if h == m.hash => MarkState::Ok {
                seq: m.seq,
                hash: m.hash,
            },
            Some(h) => MarkState::Forked {
                mark_seq: m.seq,
                mark_hash: m.hash,
                found_hash: h,
            },
            None if m.seq == 0 => MarkState::Ok {
                seq: 0,
                hash: m.hash,
            },
            None => MarkState::Behind {
                mark_seq: m.seq,
                mark_hash: m.hash,
                head_seq: u64::try_from(head).unwrap_or(0),
            },
        })
    }

    /// Sets the mark to the store's head as it is now (an operator
    /// accepted it), recording that in the store.
    pub fn accept(
        &mut self,
        sealer: &Sealer,
        user: &str,
        reason: &str,
    ) -> Result<MarkState, StoreError> {
        let state = self.mark_state()?;
        let (expected_seq, expected_hash) = match &state {
            MarkState::Behind {
                mark_seq,
                mark_hash,
                ..
            }
            | MarkState::Forked {
                mark_seq,
                mark_hash,
                ..
            } => (*mark_seq, mark_hash.clone()),
            other => return Ok(other.clone()),
        };
        let s = self.status()?;
        let head = crate::audit::verify::Head {
            seq: u64::try_from(s.head_seq).unwrap_or(0),
            hash: s.head_hash.clone(),
        };
        if let Some(mark) = &self.mark {
            mark.reset(Some(&head))?;
        }
        self.mark_checked = false;
        self.append(
            sealer,
            &[Event::TruncationAcknowledged {
                expected_seq,
                expected_hash,
                found_seq: head.seq,
                found_hash: (head.seq > 0).then(|| head.hash.clone()),
                user: user.to_owned(),
                reason: reason.to_owned(),
            }],
        )?;
        self.mark_state()
    }

    /// Whether the connection ended.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema version in the database (0: none).
    fn version(&self) -> Result<i32, StoreError> {
        let c = &self.client;
        on(&self.rt, async {
            let exists = c
                .query_one("SELECT to_regclass('opsgate_schema') IS NOT NULL", &[])
                .await
                .map_err(db("reading the schema version"))?;
            if !exists.get::<_, bool>(0) {
                return Ok(0);
            }
            let row = c
                .query_one("SELECT coalesce(max(version), 0) FROM opsgate_schema", &[])
                .await
                .map_err(db("reading the schema version"))?;
            Ok(row.get::<_, i32>(0))
        })
    }

    /// Creates the schema, or applies the migrations it lacks. Safe to run
    /// again, and from two hosts at once (an advisory lock serialises it).
    pub fn init(&mut self) -> Result<Init, StoreError> {
        let url = self.url.clone();
        let known = schema_version();
        let c = &mut self.client;
        let applied = on(&self.rt, async {
            let tx = c.transaction().await.map_err(db("starting init"))?;
            tx.batch_execute(
                "SELECT pg_advisory_xact_lock(hashtext('opsgate_schema'));
                 CREATE TABLE IF NOT EXISTS opsgate_schema (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 );",
            )
            .await
            .map_err(db("creating opsgate_schema"))?;
            let have: i32 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM opsgate_schema", &[])
                .await
                .map_err(db("reading the schema version"))?
                .get(0);
            if have > known {
                return Err(StoreError::TooNew {
                    url: url.clone(),
                    found: have,
                    known,
                });
            }
            let mut applied = Vec::new();
            for (i, sql) in MIGRATIONS
                .iter()
                .enumerate()
                .skip(usize::try_from(have).unwrap_or(0))
            {
                let v = i32::try_from(i + 1).unwrap_or(i32::MAX);
                tx.batch_execute(&sql.replace("@GENESIS@", GENESIS))
                    .await
                    .map_err(db(format!("applying schema version {v}")))?;
                tx.execute("INSERT INTO opsgate_schema (version) VALUES ($1)", &[&v])
                    .await
                    .map_err(db(format!("recording schema version {v}")))?;
                applied.push(v);
            }
            tx.commit().await.map_err(db("committing init"))?;
            Ok(applied)
        })?;
        let status = self.status()?;
        Ok(Init {
            url: self.url.clone(),
            applied,
            schema_version: status.schema_version,
            chain_id: status.chain_id,
        })
    }

    /// Refuses a database without the schema, or with a newer one.
    fn ready(&self) -> Result<i32, StoreError> {
        match self.version()? {
            0 => Err(StoreError::NotInitialized(self.url.clone())),
            v if v > schema_version() => Err(StoreError::TooNew {
                url: self.url.clone(),
                found: v,
                known: schema_version(),
            }),
            v => Ok(v),
        }
    }

    /// The chain's id and head, the record count and the server version.
    pub fn status(&self) -> Result<Status, StoreError> {
        let schema_version = self.ready()?;
        let c = &self.client;
        on(&self.rt, async {
            let server = c
                .query_one(
                    "SELECT current_setting('server_version'),
                            coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                    &[],
                )
                .await
                .map_err(db("reading the server version"))?;
            let head = c
                .query_one(
                    "SELECT chain_id, seq, hash, (SELECT count(*) FROM opsgate_audit) FROM opsgate_head",
                    &[],
                )
                .await
                .map_err(db("reading the head"))?;
            Ok(Status {
                url: self.url.clone(),
                server_version: server.get(0),
                tls: server.get(1),
                schema_version,
                chain_id: head.get(0),
                head_seq: head.get(1),
                head_hash: head.get(2),
                records: head.get(3),
            })
        })
    }

    /// Imports the file log at `path` into an empty store: every record
    /// verified first (with `sealer`), then inserted with its exact bytes,
    /// hashes and chain, and the head moved, in one transaction.
    pub fn migrate(&mut self, path: &Path, sealer: &Sealer) -> Result<Migrated, StoreError> {
        self.ready()?;
        let bytes = std::fs::read(path)?;
        let rows = verified_rows(&bytes, sealer).map_err(|problem| StoreError::Broken {
            file: path.display().to_string(),
            problem,
        })?;
        let url = self.url.clone();
        let c = &mut self.client;
        let (chain_id, head_seq, head_hash) = on(&self.rt, async {
            let tx = c.transaction().await.map_err(db("starting the import"))?;
            let head = tx
                .query_one(
                    "SELECT chain_id, seq, (SELECT count(*) FROM opsgate_audit) FROM opsgate_head FOR UPDATE",
                    &[],
                )
                .await
                .map_err(db("locking the head"))?;
            let (chain_id, seq, records): (String, i64, i64) =
                (head.get(0), head.get(1), head.get(2));
            if seq != 0 || records != 0 {
                return Err(StoreError::NotEmpty { url, records, seq });
            }
            for chunk in rows.chunks(BATCH) {
                insert_rows(&tx, chunk).await.map_err(db(format!(
                    "importing records {}..",
                    chunk.first().map_or(0, |r| r.seq)
                )))?;
            }
            let (head_seq, head_hash) = rows
                .last()
                .map_or((0, GENESIS.to_owned()), |r| (r.seq, r.hash.clone()));
            tx.execute(
                "UPDATE opsgate_head SET seq = $1, hash = $2",
                &[&head_seq, &head_hash],
            )
            .await
            .map_err(db("moving the head"))?;
            tx.commit().await.map_err(db("committing the import"))?;
            Ok((chain_id, head_seq, head_hash))
        })?;
        Ok(Migrated {
            url: self.url.clone(),
            from: path.display().to_string(),
            records: rows.len() as u64,
            head_seq: u64::try_from(head_seq).unwrap_or(0),
            head_hash,
            chain_id,
        })
    }

    /// Writes every record, in seq order, each line as it was recorded
    /// followed by a newline: the JSON Lines file `audit verify` reads.
    /// Returns how many.
    pub fn export(&self, out: &mut dyn Write) -> Result<u64, StoreError> {
        self.ready()?;
        let c = &self.client;
        let mut after: i64 = 0;
        let mut n = 0u64;
        loop {
            let rows = on(&self.rt, async {
                c.query(
                    "SELECT seq, record FROM opsgate_audit WHERE seq > $1 ORDER BY seq LIMIT 10000",
                    &[&after],
                )
                .await
                .map_err(db("reading records"))
            })?;
            let Some(last) = rows.last() else {
                return Ok(n);
            };
            after = last.get(0);
            for row in &rows {
                out.write_all(row.get::<_, &[u8]>(1))?;
                out.write_all(b"\n")?;
                n += 1;
            }
        }
    }

    /// Runs `sql` as it is (tests: the append-only trigger).
    pub fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let c = &self.client;
        on(&self.rt, async { c.execute(sql, &[]).await }).map_err(db(sql.to_owned()))
    }
}

/// Inserts records given as arrays, unnested server-side: one statement
/// for any number of rows.
const INSERT_ROWS: &str = "INSERT INTO opsgate_audit (seq, prev, hash, record, type, plan_id, run_id, written_at)
     SELECT s, p, h, r, t, pl, ru, w::timestamptz
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::text[], $8::text[])
         AS u(s, p, h, r, t, pl, ru, w)";

/// The head's move and the insert of the rows after it, in one statement
/// (schema version 4): the head's seq and hash, then [`INSERT_ROWS`]'s
/// columns.
const APPEND: &str = "SELECT opsgate_append($1, $2, $3::bigint[], $4::text[], $5::text[], $6::bytea[], $7::text[], $8::text[], $9::text[], $10::text[])";

/// The records from a seq on, in order.
const RECORDS_FROM: &str =
    "SELECT seq, hash, record FROM opsgate_audit WHERE seq >= $1 ORDER BY seq";

/// The columns of some rows, as [`INSERT_ROWS`] takes them.
struct Columns<'a> {
    seqs: Vec<i64>,
    prevs: Vec<&'a str>,
    hashes: Vec<&'a str>,
    records: Vec<&'a [u8]>,
    kinds: Vec<&'a str>,
    plans: Vec<Option<&'a str>>,
    runs: Vec<Option<&'a str>>,
    ts: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [Row]) -> Self {
        Columns {
            seqs: rows.iter().map(|r| r.seq).collect(),
            prevs: rows.iter().map(|r| r.prev.as_str()).collect(),
            hashes: rows.iter().map(|r| r.hash.as_str()).collect(),
            records: rows.iter().map(|r| r.record.as_slice()).collect(),
            kinds: rows.iter().map(|r| r.kind.as_str()).collect(),
            plans: rows.iter().map(|r| r.plan_id.as_deref()).collect(),
            runs: rows.iter().map(|r| r.run_id.as_deref()).collect(),
            ts: rows.iter().map(|r| r.ts.as_str()).collect(),
        }
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 8] {
        [
            &self.seqs,
            &self.prevs,
            &self.hashes,
            &self.records,
            &self.kinds,
            &self.plans,
            &self.runs,
            &self.ts,
        ]
    }
}

/// Inserts `rows` in one statement.
async fn insert_rows(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[Row],
) -> Result<u64, tokio_postgres::Error> {
    let cols = Columns::of(rows);
    tx.execute(INSERT_ROWS, &cols.params()).await
}

/// The records of `bytes` (a file log), each verified in order; the first
/// problem is the error.
fn verified_rows(bytes: &[u8], sealer: &Sealer) -> Result<Vec<Row>, String> {
    #[derive(serde::Deserialize)]
    struct Ids {
        plan_id: Option<String>,
        run_id: Option<String>,
    }
    let mut verifier = Verifier::new(sealer, None);
    let mut rows = Vec::new();
    let mut offset = 0u64;
    let mut rest = bytes;
    let mut number = 0u64;
    while !rest.is_empty() {
        number += 1;
        let (text, complete, used) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], true, i + 1),
            None => (rest, false, rest.len()),
        };
        let line = Line {
            number,
            offset,
            bytes: text,
            complete,
        };
        let header = verifier.feed(&line).map_err(|p| p.to_string())?;
        let ids: Ids = serde_json::from_slice(text).map_err(|e| format!("line {number}: {e}"))?;
        rows.push(Row {
            seq: i64::try_from(header.seq).map_err(|_| format!("line {number}: seq too large"))?,
            prev: header.prev.into_owned(),
            hash: header.hash.into_owned(),
            record: text.to_vec(),
            kind: header.kind.into_owned(),
            plan_id: ids.plan_id,
            run_id: ids.run_id,
            ts: header.ts.into_owned(),
        });
        offset += used as u64;
        rest = &rest[used..];
    }
    Ok(rows)
}

/// How an append attempt ended without being acknowledged.
enum Attempt {
    /// Nothing was committed (refused before COMMIT, or COMMIT refused).
    NotWritten(StoreError),
    /// Nothing was committed: another writer moved the head since this
    /// connection last saw it. Made again at once, under the head lock.
    Stale,
    /// The connection dropped at COMMIT: the batch may be in, or not.
    Unknown(Vec<Sealed>, StoreError),
}

/// How long an append keeps trying to reach the server again (after a
/// dropped connection or a restart) before it reports the failure.
const RECONNECT_FOR: std::time::Duration = std::time::Duration::from_secs(15);

impl Pg {
    /// Session settings for every connection: a stalled holder of the head
    /// lock (a sleeping laptop) does not block everyone, and a commit
    /// returns only once it is durable.
    fn session(&self) -> Result<(), StoreError> {
        let c = &self.client;
        on(
            &self.rt,
            c.batch_execute(
                "SET lock_timeout = '5s';
                 SET idle_in_transaction_session_timeout = '30s';
                 SET synchronous_commit = on;",
            ),
        )
        .map_err(db("setting up the session"))
    }

    /// Connects again, trying until [`RECONNECT_FOR`] has passed.
    fn reconnect(&mut self) -> Result<(), StoreError> {
        self.connect_again(RECONNECT_FOR)
    }

    /// Connects again once, if the connection ended (the server
    /// restarted): for a reader that is asked again soon anyway.
    pub fn reconnect_if_closed(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            self.connect_again(std::time::Duration::ZERO)?;
        }
        Ok(())
    }

    fn connect_again(&mut self, trying_for: std::time::Duration) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(50);
        loop {
            match on(&self.rt, self.config.connect(self.tls.clone())) {
                Ok((client, conn)) => {
                    self.rt.spawn(async move {
                        let _ = conn.await;
                    });
                    self.client = client;
                    self.statements = None;
                    self.head = None;
                    self.mark_checked = false;
                    return self.session();
                }
                Err(e) if started.elapsed() >= trying_for => {
                    return Err(db(format!("cannot reconnect to {}", self.url))(e));
                }
                Err(_) => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(std::time::Duration::from_secs(1));
                }
            }
        }
    }

    /// Appends `events` (already redacted) after the chain's head, sealed
    /// with `sealer` in this process (the audit key never reaches the
    /// database), in one transaction under the head's row lock. Returns
    /// each record's seq and hash once the commit is durable.
    ///
    /// A connection that drops at COMMIT leaves the outcome unknown: the
    /// batch is looked up (under the head lock, so the old transaction has
    /// ended) before anything is made again, so a record is never written
    /// twice and never lost.
    pub fn append(
        &mut self,
        sealer: &Sealer,
        events: &[Event],
    ) -> Result<Vec<(u64, String)>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.check_mark()?;
        let started = std::time::Instant::now();
        loop {
            let failure = match self.try_append(sealer, events) {
                Ok(done) => return self.raise_mark(done),
                Err(Attempt::NotWritten(e)) => e,
                Err(Attempt::Stale) => {
                    self.contended = 16;
                    continue;
                }
                Err(Attempt::Unknown(sealed, e)) => {
                    self.reconnect()?;
                    if self.committed(&sealed)? {
                        return self
                            .raise_mark(sealed.into_iter().map(|s| (s.seq, s.hash)).collect());
                    }
                    e
                }
            };
            // Only a lost connection is worth another try; the server's
            // refusal is the answer.
            if !self.client.is_closed() || started.elapsed() >= RECONNECT_FOR {
                return Err(failure);
            }
            self.reconnect()?;
        }
    }

    /// Refuses to write to a store that went back or forked since this
    /// host last saw it (checked once per connection).
    fn check_mark(&mut self) -> Result<(), StoreError> {
        if self.mark.is_none() || self.mark_checked {
            return Ok(());
        }
        if let Some(why) = self.mark_state()?.refusal(&self.url) {
            return Err(StoreError::Diverged(why));
        }
        self.mark_checked = true;
        Ok(())
    }

    /// Raises this host's mark to the last record written.
    fn raise_mark(&self, done: Vec<(u64, String)>) -> Result<Vec<(u64, String)>, StoreError> {
        if let (Some(mark), Some((seq, hash))) = (&self.mark, done.last()) {
            mark.raise(&crate::audit::verify::Head {
                seq: *seq,
                hash: hash.clone(),
            })?;
        }
        Ok(done)
    }

    /// The statements an append uses, prepared once per connection.
    fn statements(&mut self) -> Result<Statements, tokio_postgres::Error> {
        if let Some(st) = &self.statements {
            return Ok(st.clone());
        }
        let c = &self.client;
        let st = on(&self.rt, async {
            let (lock_head, insert, move_head, records_from, append) = tokio::join!(
                c.prepare("SELECT seq, hash FROM opsgate_head FOR UPDATE"),
                c.prepare(INSERT_ROWS),
                c.prepare("SELECT opsgate_move_head($1, $2, $3, $4)"),
                c.prepare(RECORDS_FROM),
                c.prepare(APPEND),
            );
            let append = match append {
                Ok(st) => Some(st),
                Err(e)
                    if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_FUNCTION) =>
                {
                    None
                }
                Err(e) => return Err(e),
            };
            Ok::<_, tokio_postgres::Error>(Statements {
                lock_head: lock_head?,
                insert: insert?,
                move_head: move_head?,
                records_from: records_from?,
                append,
            })
        })?;
        self.statements = Some(st.clone());
        Ok(st)
    }

    /// One try. When this connection knows the head (its last append),
    /// one round trip: the head's move from there and the insert, in one
    /// statement of its own transaction (`opsgate_append`; on an older
    /// schema `BEGIN`, both and `COMMIT`, pipelined); if another writer
    /// moved the head meanwhile, the
    /// move fails, the transaction rolls back, and the try is made again
    /// the other way. Otherwise two: `BEGIN` with the head's row lock, then
    /// the rest.
    fn try_append(
        &mut self,
        sealer: &Sealer,
        events: &[Event],
    ) -> Result<Vec<(u64, String)>, Attempt> {
        let st = self
            .statements()
            .map_err(|e| Attempt::NotWritten(db("preparing an append")(e)))?;
        let known = self.head.take().filter(|_| self.contended == 0);
        self.contended = self.contended.saturating_sub(1);
        let optimistic = known.is_some();
        let c = &self.client;
        let outcome = on(&self.rt, async {
            let not_written = |what: &'static str| {
                move |e: tokio_postgres::Error| Attempt::NotWritten(db(what)(e))
            };
            let (seq, hash, begun) = match known {
                Some((seq, hash)) => (seq, hash, None),
                None => {
                    let (begun, head) =
                        tokio::join!(c.batch_execute("BEGIN"), c.query_one(&st.lock_head, &[]));
                    begun.map_err(not_written("starting an append"))?;
                    let head = head.map_err(not_written("locking the head"))?;
                    (head.get::<_, i64>(0), head.get::<_, String>(1), Some(()))
                }
            };
            let invalid = |m: String| Attempt::NotWritten(StoreError::Io(std::io::Error::other(m)));
            let sealed = seal_after(
                sealer,
                (u64::try_from(seq).unwrap_or(0), &hash),
                chrono::Utc::now(),
                events,
            )
            .map_err(|e| invalid(e.to_string()))?;
            let rows = sealed
                .iter()
                .map(|s| row_of(s).map_err(invalid))
                .collect::<Result<Vec<Row>, Attempt>>()?;
            match pipeline_commit(c, &st, (seq, &hash), &rows, begun.is_none()).await {
                Ok(()) => {}
                Err(Pipeline::Refused { error, moved_on }) => {
                    return Err(if moved_on && optimistic {
                        Attempt::Stale
                    } else {
                        Attempt::NotWritten(error)
                    });
                }
                Err(Pipeline::Broken(e)) => return Err(Attempt::Unknown(sealed, e)),
            }
            Ok(sealed
                .into_iter()
                .map(|s| (s.seq, s.hash))
                .collect::<Vec<_>>())
        });
        match &outcome {
            Ok(done) => {
                self.head = done
                    .last()
                    .map(|(s, h)| (i64::try_from(*s).unwrap_or(0), h.clone()))
            }
            Err(Attempt::NotWritten(_) | Attempt::Stale) if !self.client.is_closed() => {
                // Leave no transaction open on this session.
                let _ = on(&self.rt, self.client.batch_execute("ROLLBACK"));
            }
            Err(_) => {}
        }
        outcome
    }

    /// Whether the batch `sealed` is in the store: looked up under the head
    /// lock, which the transaction that wrote it (if it still runs) holds
    /// until it ends.
    fn committed(&mut self, sealed: &[Sealed]) -> Result<bool, StoreError> {
        let hashes: Vec<&str> = sealed.iter().map(|s| s.hash.as_str()).collect();
        let c = &mut self.client;
        let found: i64 = on(&self.rt, async {
            let tx = c.transaction().await.map_err(db("looking up an append"))?;
            tx.query_one("SELECT 1 FROM opsgate_head FOR UPDATE", &[])
                .await
                .map_err(db("locking the head"))?;
            let n = tx
                .query_one(
                    "SELECT count(*) FROM opsgate_audit WHERE hash = ANY($1)",
                    &[&hashes],
                )
                .await
                .map_err(db("looking up an append"))?
                .get(0);
            tx.rollback().await.map_err(db("looking up an append"))?;
            Ok::<i64, StoreError>(n)
        })?;
        match usize::try_from(found) {
            Ok(0) => Ok(false),
            Ok(n) if n == sealed.len() => Ok(true),
            _ => Err(StoreError::Db {
                what: "looking up an append".into(),
                message: format!(
                    "{found} of {} records of one transaction are in the store",
                    sealed.len()
                ),
            }),
        }
    }
}

/// How a pipelined commit failed.
enum Pipeline {
    /// The server refused a statement: the transaction was aborted and its
    /// COMMIT rolled back. `moved_on`: another writer moved the head.
    Refused { error: StoreError, moved_on: bool },
    /// The connection broke somewhere in the pipeline: the COMMIT may have
    /// been carried out.
    Broken(StoreError),
}

/// The head's move from `head`, the insert of `rows` and `COMMIT`, sent
/// together: one round trip. When `begin`, no transaction is open: on a
/// store with `opsgate_append` that is one statement in a transaction of
/// its own (else `BEGIN` goes first).
async fn pipeline_commit(
    c: &Client,
    st: &Statements,
    head: (i64, &str),
    rows: &[Row],
    begin: bool,
) -> Result<(), Pipeline> {
    let (seq, hash) = head;
    let (new_seq, new_hash) = rows
        .last()
        .map_or((seq, hash), |r| (r.seq, r.hash.as_str()));
    let cols = Columns::of(rows);
    let params = cols.params();
    let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&seq, &hash, &new_seq, &new_hash];
    let results = match (&st.append, begin) {
        // A transaction of its own: one statement, committed as it ends.
        (Some(append), true) => {
            let both = [&head_params[..2], params.as_slice()].concat();
            vec![c.execute(append, &both).await.map(|_| ())]
        }
        // Inside the transaction that holds the head.
        (Some(append), false) => {
            let both = [&head_params[..2], params.as_slice()].concat();
            let (appended, committed) =
                tokio::join!(c.execute(append, &both), c.batch_execute("COMMIT"));
            vec![appended.map(|_| ()), committed]
        }
        (None, _) => {
            let begun = async {
                if begin {
                    c.batch_execute("BEGIN").await
                } else {
                    Ok(())
                }
            };
            let (begun, moved, inserted, committed) = tokio::join!(
                begun,
                c.execute(&st.move_head, &head_params),
                c.execute(&st.insert, &params),
                c.batch_execute("COMMIT"),
            );
            vec![begun, moved.map(|_| ()), inserted.map(|_| ()), committed]
        }
    };
    if let Some(e) = results
        .iter()
        .find_map(|r| r.as_ref().err().filter(|e| e.as_db_error().is_some()))
    {
        let message = match e.as_db_error() {
            Some(d) => format!("{} ({})", d.message(), d.code().code()),
            None => e.to_string(),
        };
        let moved_on = e.code()
            == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
            || e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
        return Err(Pipeline::Refused {
            error: StoreError::Db {
                what: "appending".into(),
                message,
            },
            moved_on,
        });
    }
    match results.into_iter().find_map(Result::err) {
        Some(e) => Err(Pipeline::Broken(db("committing an append")(e))),
        None => Ok(()),
    }
}

/// The row of a sealed record.
fn row_of(s: &Sealed) -> Result<Row, String> {
    #[derive(serde::Deserialize)]
    struct Ids {
        plan_id: Option<String>,
        run_id: Option<String>,
        #[serde(rename = "type")]
        kind: String,
        ts: String,
        prev: String,
    }
    let line = s.line.strip_suffix(b"\n").unwrap_or(&s.line);
    let ids: Ids = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok(Row {
        seq: i64::try_from(s.seq).map_err(|_| "seq too large".to_owned())?,
        prev: ids.prev,
        hash: s.hash.clone(),
        record: line.to_vec(),
        kind: ids.kind,
        plan_id: ids.plan_id,
        run_id: ids.run_id,
        ts: ids.ts,
    })
}

/// One process's writer to the store: its threads' appends are gathered
/// while a commit is in flight and written together in the next one
/// (group commit), so many threads cost few commits. Each caller still
/// returns only once its own records are durable.
pub struct PgLog {
    sealer: Sealer,
    pg: std::sync::Mutex<Pg>,
    queue: std::sync::Mutex<Queue>,
    done_cv: std::sync::Condvar,
    commits: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    pending: Vec<(u64, Vec<Event>)>,
    done: std::collections::HashMap<u64, Result<Vec<(u64, String)>, String>>,
    leader: bool,
}

impl std::fmt::Debug for PgLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog").finish_non_exhaustive()
    }
}

impl PgLog {
    pub fn new(pg: Pg, sealer: Sealer) -> Self {
        PgLog {
            sealer,
            pg: std::sync::Mutex::new(pg),
            queue: std::sync::Mutex::new(Queue::default()),
            done_cv: std::sync::Condvar::new(),
            commits: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many transactions this writer has committed.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Appends `events` as consecutive records; returns each one's seq and
    /// hash once they are durable.
    pub fn append_all(&self, events: Vec<Event>) -> Result<Vec<(u64, String)>, StoreError> {
        let mut q = self.lock_queue();
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.pending.push((ticket, events));
        loop {
            if let Some(result) = q.done.remove(&ticket) {
                return result.map_err(|message| StoreError::Db {
                    what: "appending".into(),
                    message,
                });
            }
            if !q.leader {
                break;
            }
            q = self.done_cv.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        // The leader: write what is pending, again and again, until the
        // queue is empty (its own batch is in the first round).
        q.leader = true;
        while !q.pending.is_empty() {
            // Writers released by the last commit are about to queue
            // again: give them the CPU while the queue still grows, so
            // they share this commit instead of waiting for the next (as
            // the file log's group commit does).
            let mut seen = q.pending.len();
            for _ in 0..crate::audit::log::MAX_YIELDS {
                drop(q);
                std::thread::yield_now();
                q = self.lock_queue();
                if q.pending.len() == seen {
                    break;
                }
                seen = q.pending.len();
            }
            let batches = std::mem::take(&mut q.pending);
            drop(q);
            let all: Vec<Event> = batches
                .iter()
                .flat_map(|(_, e)| e.iter().cloned())
                .collect();
            let result = self
                .pg
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&self.sealer, &all);
            if result.is_ok() {
                self.commits
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            q = self.lock_queue();
            match result {
                Ok(written) => {
                    let mut rest = written.into_iter();
                    for (t, events) in batches {
                        q.done
                            .insert(t, Ok(rest.by_ref().take(events.len()).collect()));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for (t, _) in batches {
                        q.done.insert(t, Err(message.clone()));
                    }
                }
            }
            self.done_cv.notify_all();
        }
        q.leader = false;
        self.done_cv.notify_all();
        let result = q
            .done
            .remove(&ticket)
            .unwrap_or_else(|| Err("the append was lost by the writer".into()));
        result.map_err(|message| StoreError::Db {
            what: "appending".into(),
            message,
        })
    }
}

/// A run's lease: while it is renewed, no other host starts a run of the
/// same plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    pub plan_id: String,
    pub run_id: String,
    /// Who holds it (`host:pid`, say).
    pub holder: String,
    /// Seconds from the server's clock at which it lapses unless renewed.
    pub expires_at: String,
    /// Whether it is still in force (not lapsed) by the server's clock.
    pub live: bool,
}

impl Pg {
    /// Takes the lease of `plan_id` for `run_id` by `holder` for `ttl`, if
    /// no live lease holds it (a lapsed one is taken over). Refused with
    /// the live holder named.
    pub fn take_lease(
        &self,
        plan_id: &str,
        run_id: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Lease, StoreError> {
        self.ready()?;
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let c = &self.client;
        let taken = on(&self.rt, async {
            c.query_opt(
                "INSERT INTO opsgate_run_lease (plan_id, run_id, holder, expires_at)
                 VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')
                 ON CONFLICT (plan_id) DO UPDATE
                     SET run_id = excluded.run_id, holder = excluded.holder,
                         taken_at = now(), renewed_at = now(), expires_at = excluded.expires_at
                     WHERE opsgate_run_lease.expires_at < now()
                 RETURNING plan_id",
                &[&plan_id, &run_id, &holder, &ms],
            )
            .await
            .map_err(db(format!("taking the lease of plan `{plan_id}`")))
        })?;
        match (taken, self.lease_of(plan_id)?) {
            (Some(_), Some(lease)) => Ok(lease),
            (_, Some(lease)) => Err(StoreError::Leased(format!(
                "plan `{plan_id}` is running on another host: run {} held by {} until {}",
                lease.run_id, lease.holder, lease.expires_at
            ))),
            (_, None) => Err(StoreError::Leased(format!(
                "the lease of plan `{plan_id}` was not taken"
            ))),
        }
    }

    /// Renews `lease` for `ttl`; refused when it lapsed (and may have been
    /// taken over): its run must stop.
    pub fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<Lease, StoreError> {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let c = &self.client;
        let n = on(&self.rt, async {
            c.execute(
                "UPDATE opsgate_run_lease
                 SET renewed_at = now(), expires_at = now() + $4::bigint * interval '1 millisecond'
                 WHERE plan_id = $1 AND run_id = $2 AND holder = $3 AND expires_at >= now()",
                &[&lease.plan_id, &lease.run_id, &lease.holder, &ms],
            )
            .await
            .map_err(db("renewing a lease"))
        })?;
        if n == 0 {
            return Err(StoreError::Leased(format!(
                "the lease of run {} (plan `{}`) lapsed: the run stops",
                lease.run_id, lease.plan_id
            )));
        }
        self.lease_of(&lease.plan_id)?.ok_or_else(|| {
            StoreError::Leased(format!("the lease of plan `{}` is gone", lease.plan_id))
        })
    }

    /// Gives `lease` up (the run finished).
    pub fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let c = &self.client;
        on(&self.rt, async {
            c.execute(
                "DELETE FROM opsgate_run_lease WHERE plan_id = $1 AND run_id = $2 AND holder = $3",
                &[&lease.plan_id, &lease.run_id, &lease.holder],
            )
            .await
            .map_err(db("releasing a lease"))
        })?;
        Ok(())
    }

    /// Whether a live lease holds `run_id` (its engine renews it).
    pub fn run_live(&self, run_id: &str) -> Result<bool, StoreError> {
        let c = &self.client;
        let row = on(&self.rt, async {
            c.query_opt(
                "SELECT expires_at >= now() FROM opsgate_run_lease WHERE run_id = $1",
                &[&run_id],
            )
            .await
            .map_err(db("reading a lease"))
        })?;
        Ok(row.is_some_and(|r| r.get(0)))
    }

    /// The lease of `plan_id`, live or lapsed (a lapsed one is a run whose
    /// engine stopped renewing: interrupted).
    pub fn lease_of(&self, plan_id: &str) -> Result<Option<Lease>, StoreError> {
        let c = &self.client;
        let row = on(&self.rt, async {
            c.query_opt(
                "SELECT run_id, holder, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                        expires_at >= now()
                 FROM opsgate_run_lease WHERE plan_id = $1",
                &[&plan_id],
            )
            .await
            .map_err(db("reading a lease"))
        })?;
        Ok(row.map(|r| Lease {
            plan_id: plan_id.to_owned(),
            run_id: r.get(0),
            holder: r.get(1),
            expires_at: r.get(2),
            live: r.get(3),
        }))
    }
}

/// Follows the store: new records as they are committed anywhere, woken by
/// `LISTEN opsgate_audit` (a notification only means "read after the last
/// seq you saw"), with a read at the end of every wait as well, so a
/// notification lost to a reconnect costs one wait, never a record.
pub struct Follower {
    rt: tokio::runtime::Runtime,
    client: Client,
    notified: tokio::sync::mpsc::UnboundedReceiver<()>,
    after: i64,
    /// How many waits a notification ended (the rest ran out).
    pub woken: u64,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// Listens on its own connection (never pooled), from after seq
    /// `after`.
    pub fn new(url: &str, after: u64) -> Result<Follower, StoreError> {
        let shown = redact_url(url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (config, tls) = settings(url)?;
        let (client, mut connection) =
            on(&rt, config.connect(tls)).map_err(db(format!("cannot connect to {shown}")))?;
        let (tx, notified) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(async move {
            // Polling the connection for its messages also drives it.
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                        if tx.send(()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        on(&rt, client.batch_execute("LISTEN opsgate_audit"))
            .map_err(db("LISTEN opsgate_audit"))?;
        Ok(Follower {
            rt,
            client,
            notified,
            after: i64::try_from(after).unwrap_or(i64::MAX),
            woken: 0,
        })
    }

    /// The records after the last one returned: at once if there are
    /// some, else as soon as a notification comes, else (at the latest)
    /// after `wait`. Each is `(seq, line)`.
    pub fn next(&mut self, wait: std::time::Duration) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let got = self.read()?;
        if !got.is_empty() {
            return Ok(got);
        }
        self.wait(wait)?;
        self.read()
    }

    /// Waits for a notification, `wait` at the longest, without reading:
    /// for a caller that reads the store itself ([`crate::audit::AuditLog::refresh`]).
    /// Whether a notification ended the wait. Notifications already
    /// queued are taken with it: one read covers them all.
    /// A connection that closed is an error: the caller connects again.
    pub fn wait(&mut self, wait: std::time::Duration) -> Result<bool, StoreError> {
        let notified = &mut self.notified;
        let woke = on(&self.rt, async {
            tokio::time::timeout(wait, notified.recv()).await
        });
        match woke {
            Ok(Some(())) => {
                self.woken += 1;
                while self.notified.try_recv().is_ok() {}
                Ok(true)
            }
            Ok(None) => Err(StoreError::Db {
                what: "following the store".into(),
                message: "the LISTEN connection closed".into(),
            }),
            Err(_) => Ok(false),
        }
    }

    fn read(&mut self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let c = &self.client;
        let after = self.after;
        let rows = on(&self.rt, async {
            c.query(
                "SELECT seq, record FROM opsgate_audit WHERE seq > $1 ORDER BY seq LIMIT 10000",
                &[&after],
            )
            .await
            .map_err(db("following the store"))
        })?;
        if let Some(last) = rows.last() {
            self.after = last.get(0);
        }
        Ok(rows
            .iter()
            .map(|r| {
                (
                    u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
                    r.get::<_, Vec<u8>>(1),
                )
            })
            .collect())
    }
}

/// A record as the store holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub hash: String,
    /// The exact line, without its newline.
    pub line: Vec<u8>,
}

/// The chain's head, locked by this connection's open transaction (the
/// audit log's append, [`Pg::lock_head`]), and the records from the seq
/// asked for on.
#[derive(Debug)]
pub struct Locked {
    pub seq: u64,
    pub hash: String,
    pub records: Vec<Stored>,
}

fn stored(rows: &[tokio_postgres::Row]) -> Vec<Stored> {
    rows.iter()
        .map(|r| Stored {
            seq: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
            hash: r.get(1),
            line: r.get(2),
        })
        .collect()
}

/// Appends decided under the head's lock: the audit log keeps a replica
/// of the store and decides on it (`crate::audit::log`), so it locks the
/// head, reads what it lacks, decides, and commits, all in one
/// transaction.
impl Pg {
    /// `BEGIN`, the head's row lock and the records from seq `from` on,
    /// pipelined: one round trip. The transaction stays open until
    /// [`Pg::commit_locked`] or [`Pg::abort`]. A store that went back or
    /// forked since this host saw it is refused; a lost connection is
    /// tried again for [`RECONNECT_FOR`].
    pub fn lock_head(&mut self, from: u64) -> Result<Locked, StoreError> {
        self.check_mark()?;
        let started = std::time::Instant::now();
        loop {
            match self.try_lock_head(from) {
                Ok(locked) => return Ok(locked),
                Err(e) if self.client.is_closed() && started.elapsed() < RECONNECT_FOR => {
                    tracing::warn!(error = %e, store = %self.url, "reconnecting");
                    self.reconnect()?;
                    self.check_mark()?;
                }
                Err(e) => {
                    self.abort();
                    return Err(e);
                }
            }
        }
    }

    fn try_lock_head(&mut self, from: u64) -> Result<Locked, StoreError> {
        let st = self.statements().map_err(db("preparing an append"))?;
        let c = &self.client;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        on(&self.rt, async {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&from];
            let (begun, head, records) = tokio::join!(
                c.batch_execute("BEGIN"),
                c.query_one(&st.lock_head, &[]),
                c.query(&st.records_from, &params),
            );
            begun.map_err(db("starting an append"))?;
            let head = head.map_err(db("locking the head"))?;
            let records = records.map_err(db("reading the store"))?;
            Ok(Locked {
                seq: u64::try_from(head.get::<_, i64>(0)).unwrap_or(0),
                hash: head.get(1),
                records: stored(&records),
            })
        })
    }

    /// Ends the open transaction without writing.
    pub fn abort(&mut self) {
        if !self.client.is_closed() {
            let _ = on(&self.rt, self.client.batch_execute("ROLLBACK"));
        }
    }

    /// Inserts `sealed` (made after the locked head `head`), moves the
    /// head and commits, in one round trip. A connection lost at COMMIT is
    /// resolved by looking the records up, so they are reported written
    /// only when they are, and never written twice. Raises this host's
    /// mark.
    pub fn commit_locked(
        &mut self,
        head: (u64, &str),
        sealed: &[Sealed],
    ) -> Result<(), StoreError> {
        if sealed.is_empty() {
            self.abort();
            return Ok(());
        }
        let rows = sealed
            .iter()
            .map(|s| row_of(s).map_err(|m| StoreError::Io(std::io::Error::other(m))))
            .collect::<Result<Vec<Row>, StoreError>>();
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                self.abort();
                return Err(e);
            }
        };
        // Prepared by `lock_head` already; should it fail, leave no
        // transaction holding the head.
        let st = match self.statements() {
            Ok(st) => st,
            Err(e) => {
                self.abort();
                return Err(db("preparing an append")(e));
            }
        };
        let seq = i64::try_from(head.0).unwrap_or(i64::MAX);
        let c = &self.client;
        let outcome = on(
            &self.rt,
            pipeline_commit(c, &st, (seq, head.1), &rows, false),
        );
        match outcome {
            Ok(()) => {}
            Err(Pipeline::Refused { error, .. }) => {
                self.abort();
                return Err(error);
            }
            Err(Pipeline::Broken(error)) => {
                self.reconnect()?;
                if !self.committed(sealed)? {
                    return Err(error);
                }
            }
        }
        let done: Vec<(u64, String)> = sealed.iter().map(|s| (s.seq, s.hash.clone())).collect();
        self.head = None;
        self.raise_mark(done).map(|_| ())
    }

    /// The records from seq `from` on, read without a lock (a prefix of
    /// the chain: records commit in seq order under the head lock).
    pub fn records_from(&mut self, from: u64) -> Result<Vec<Stored>, StoreError> {
        let st = self.statements().map_err(db("preparing a read"))?;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let rows = on(&self.rt, self.client.query(&st.records_from, &[&from]))
            .map_err(db("reading the store"))?;
        Ok(stored(&rows))
    }

    /// Refuses a store that went back or forked since this host saw it.
    pub fn check(&mut self) -> Result<(), StoreError> {
        self.check_mark()
    }

    /// Raises this host's mark to a record it read.
    pub fn saw(&self, seq: u64, hash: &str) -> Result<(), StoreError> {
        self.raise_mark(vec![(seq, hash.to_owned())]).map(|_| ())
    }
}

/// Drives `f` on `rt` to its end. A thread inside another runtime cannot
/// block on this one as it is: in a multi-threaded runtime (the bridge's
/// workers and its blocking pool) `block_in_place` steps out of it first;
/// a current-thread runtime (the engine's async steps) has no way out, so
/// `f` is driven from a scoped thread instead. A thread per call costs
/// the bridge a decision's worth of CPU under load; stepping out costs
/// nothing.
fn on<F>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    match tokio::runtime::Handle::try_current() {
        Err(_) => return rt.block_on(f),
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            return tokio::task::block_in_place(|| rt.block_on(f));
        }
        Ok(_) => {}
    }
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(f))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
