//! The PostgreSQL backend: several relays share one database (`--database postgres://…`).
//!
//! - **Durability:** every write is its own transaction, committed with the server's `synchronous_commit` (on by
//!   default): a write that returned is durable, so [`Backend::durable_later`] has nothing to wait for.
//! - **Names, challenges, tokens:** one row each. A name is taken by `INSERT … ON CONFLICT DO NOTHING`, so of two
//!   nodes racing exactly one wins; a challenge is taken by `DELETE … RETURNING`, so it is spent once, anywhere.
//! - **Envelopes:** one row per id, kept after ack (without its body) until [`DEDUP_RETENTION_SECS`], so a retry on
//!   any node is recognised. Inserts go in groups (`writer.rs`): a group takes transaction locks on its recipients
//!   first and draws seqs under them, so a recipient's envelopes commit in `seq` order and a reader paging with
//!   `after=` never skips one that commits late. Quotas are counted under the same locks.
//! - **Schema:** versioned migrations in this file, applied at start under an advisory lock (several nodes may
//!   start at once).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient as _, Pool, PoolConfig, Runtime};
use magpie_proto::SecretBytes;
use tokio_postgres::Row;
use uuid::Uuid;

mod blobs;
mod held;
mod settings;
mod writer;

pub use held::Announced;

pub use settings::SharedSettingsError;

use crate::metrics::Metrics;

use super::{
    kind_from_tag, within_budget, Backend, ChallengeRecord, Durable, Inserted, MailboxQuota, NewEnvelope,
    PendingInsert, StoreError, StoreGauge, StoreResult, StoredEnvelope, TokenRecord, UserRecord, DEDUP_RETENTION_SECS,
};

/// The schema, one migration per version; a database at version N gets the migrations after N.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE users (
        username text PRIMARY KEY,
        cert_pem text NOT NULL,
        created_at bigint NOT NULL
    );
    CREATE TABLE challenges (
        nonce bytea PRIMARY KEY,
        username text NOT NULL,
        expires_at bigint NOT NULL
    );
    CREATE TABLE tokens (
        token_hash bytea PRIMARY KEY,
        username text NOT NULL,
        expires_at bigint NOT NULL
    );
    CREATE SEQUENCE envelope_seq;
    CREATE TABLE envelopes (
        id uuid PRIMARY KEY,
        sender text NOT NULL,
        recipient text NOT NULL,
        seq bigint NOT NULL,
        kind smallint NOT NULL,
        body text NOT NULL,
        received_at bigint NOT NULL,
        acked_at bigint
    );
    CREATE INDEX envelopes_waiting ON envelopes (recipient, seq) WHERE acked_at IS NULL;
    CREATE INDEX envelopes_acked ON envelopes (acked_at) WHERE acked_at IS NOT NULL;
    CREATE TABLE ca (
        only_one boolean PRIMARY KEY DEFAULT true CHECK (only_one),
        root_pem text NOT NULL,
        key_der bytea NOT NULL
    );
",
    "
    CREATE TABLE shared_settings (
        only_one boolean PRIMARY KEY DEFAULT true CHECK (only_one),
        settings text NOT NULL
    );
",
    blobs::MIGRATION,
];

/// The start of every relay connection's `application_name`, followed by the relay's node id.
const APPLICATION: &str = "magpie-relay";

/// Any number, the same on every node: serializes migrations.
const MIGRATION_LOCK: i64 = 0x6d61_6770_6965;

/// The channel on which relays announce stored envelopes to each other: `"<node> <recipient>:<seq> …"`.
pub const MAIL_CHANNEL: &str = "magpie_mail";

/// A [`Backend`] on PostgreSQL (see the module docs).
pub struct PgStore {
    pool: Pool,
    /// For the connection that listens, which the pool does not lend.
    pg_config: tokio_postgres::Config,
    tls: postgres_openssl::MakeTlsConnector,
    /// This relay among those on the database.
    node: u64,
    writer: writer::Writer,
    /// What the writer committed, until announced.
    held: Arc<held::Held>,
}

/// Announcements held for a relay that handles them too slowly; past that its listener gives up (see
/// [`Announcements::next_batch`]).
const ANNOUNCEMENTS_QUEUED: usize = 16_384;

/// Envelopes stored through any relay, this one included, as [`MAIL_CHANNEL`] announces them; ends when the
/// connection is lost.
pub struct Announcements {
    _client: tokio_postgres::Client,
    received: tokio::sync::mpsc::Receiver<Announced>,
}

impl fmt::Debug for Announcements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Announcements").finish_non_exhaustive()
    }
}

impl Announcements {
    /// The next envelopes stored, at least one and at most `most`: recipient and seq, in commit order. `None`: the
    /// connection to the database is lost (or this relay fell [`ANNOUNCEMENTS_QUEUED`] behind), and announcements
    /// made meanwhile with it.
    pub async fn next_batch(&mut self, most: usize) -> Option<Vec<Announced>> {
        let mut batch = Vec::new();
        (self.received.recv_many(&mut batch, most.max(1)).await > 0).then_some(batch)
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

fn db_err(e: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("postgresql: {e}"))
}

/// What a relay's connections call themselves: [`APPLICATION`] and the relay's node id.
fn application_name(node: u64) -> String {
    format!("{APPLICATION} {node:016x}")
}

fn int(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{v} does not fit a bigint")))
}

fn uint(v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {v} in the database")))
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL; `sslmode=require` uses OpenSSL) with at most `connections` at once,
    /// and brings the schema up to date. Its insert groups are counted in `metrics`.
    pub async fn connect(url: &str, connections: usize, metrics: Arc<Metrics>) -> StoreResult<Self> {
        let tls = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls())
            .map_err(db_err)?
            .build();
        let mut node = [0u8; 8];
        openssl::rand::rand_bytes(&mut node).map_err(db_err)?;
        let node = u64::from_le_bytes(node);
        let mut config = deadpool_postgres::Config::new();
        config.url = Some(url.to_owned());
        // How relays see each other's connections (see settings.rs).
        config.application_name = Some(application_name(node));
        let mut pool_config = PoolConfig::new(connections.max(1));
        // A database that does not answer fails requests fast (503) instead of holding them.
        pool_config.timeouts.wait = Some(Duration::from_secs(5));
        pool_config.timeouts.create = Some(Duration::from_secs(5));
        config.pool = Some(pool_config);
        let tls = postgres_openssl::MakeTlsConnector::new(tls);
        let pool = config.create_pool(Some(Runtime::Tokio1), tls.clone()).map_err(db_err)?;
        let held = Arc::new(held::Held::default());
        let store = Self {
            writer: writer::Writer::start(pool.clone(), node, metrics, held.clone()),
            held,
            pool,
            pg_config: config.get_pg_config().map_err(db_err)?,
            tls,
            node,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The CA every relay on this database serves: the one stored, or else `root_pem` and `key_der` stored now
    /// (of relays starting together, the first to commit wins and the others get its CA). Who can read the
    /// database can read the CA key, as who can read a single relay's data directory can.
    pub async fn shared_ca(&self, root_pem: &str, key_der: &[u8]) -> StoreResult<(String, SecretBytes)> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO ca (root_pem, key_der) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&root_pem, &key_der],
            )
            .await
            .map_err(db_err)?;
        let row = client
            .query_one("SELECT root_pem, key_der FROM ca", &[])
            .await
            .map_err(db_err)?;
        Ok((row.get(0), SecretBytes::new(row.get(1))))
    }

    /// The stored CA, if a relay stored one.
    pub async fn stored_ca(&self) -> StoreResult<Option<(String, SecretBytes)>> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT root_pem, key_der FROM ca", &[])
            .await
            .map_err(db_err)?;
        Ok(row.map(|row| (row.get(0), SecretBytes::new(row.get(1)))))
    }

    /// Listens on its own connection for the envelopes every relay stores. What this relay held for an earlier
    /// listener is let go: its announcements are lost.
    pub async fn announcements(&self) -> StoreResult<Announcements> {
        use futures_util::StreamExt as _;
        self.held.clear();
        let (client, mut connection) = self.pg_config.connect(self.tls.clone()).await.map_err(db_err)?;
        let (sender, received) = tokio::sync::mpsc::channel(ANNOUNCEMENTS_QUEUED);
        let held = self.held.clone();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                let tokio_postgres::AsyncMessage::Notification(note) = message else {
                    continue;
                };
                // "<node> <recipient>:<seq> …", see writer.rs.
                let announced = note.payload().split(' ').skip(1).filter_map(|entry| {
                    let (to, seq) = entry.split_once(':')?;
                    Some((to.to_owned(), seq.parse::<u64>().ok()?))
                });
                if announced.map(|a| sender.try_send(a)).any(|sent| sent.is_err()) {
                    break;
                }
            }
            held.clear();
        });
        client
            .batch_execute(&format!("LISTEN {MAIL_CHANNEL}"))
            .await
            .map_err(db_err)?;
        Ok(Announcements {
            _client: client,
            received,
        })
    }

    /// What to push for a batch of announcements: the envelopes announced for recipients that are `connected`
    /// here, in announcement order; those this relay held, and the others read in one query (less those
    /// acknowledged since). Every held one announced is let go, pushed or not.
    pub async fn to_push(
        &self,
        announced: &[Announced],
        connected: impl Fn(&str) -> bool,
    ) -> StoreResult<Vec<StoredEnvelope>> {
        let mut slots = Vec::with_capacity(announced.len());
        let mut missing = Vec::new();
        for key in announced {
            let held = self.held.take(key);
            if !connected(&key.0) {
                continue;
            }
            if held.is_none() {
                missing.push(key.clone());
            }
            slots.push(held);
        }
        let mut read = match missing.is_empty() {
            true => Vec::new(),
            false => self.announced(&missing).await?,
        }
        .into_iter()
        .peekable();
        let mut missing = missing.iter();
        let mut envelopes = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot {
                Some(held) => envelopes.push(held),
                None => {
                    let key = missing.next();
                    if let Some(e) = read.next_if(|e| key.is_some_and(|(to, seq)| &e.to == to && e.seq == *seq)) {
                        envelopes.push(e);
                    }
                }
            }
        }
        Ok(envelopes)
    }

    /// The envelopes announced as `(recipient, seq)`, in that order, less those acknowledged since, in one query.
    pub async fn announced(&self, announced: &[Announced]) -> StoreResult<Vec<StoredEnvelope>> {
        let recipients: Vec<&str> = announced.iter().map(|(to, _)| to.as_str()).collect();
        let seqs = announced
            .iter()
            .map(|(_, seq)| int(*seq))
            .collect::<StoreResult<Vec<i64>>>()?;
        let rows = self
            .client()
            .await?
            .query(
                "SELECT e.id, e.sender, e.recipient, e.seq, e.kind, e.body, e.received_at
                 FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS a(recipient, seq, n)
                 JOIN envelopes e ON e.recipient = a.recipient AND e.seq = a.seq AND e.acked_at IS NULL
                 ORDER BY a.n",
                &[&recipients, &seqs],
            )
            .await
            .map_err(db_err)?;
        rows.iter().map(envelope_of).collect()
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(db_err)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS magpie_schema (version integer NOT NULL)")
            .await
            .map_err(db_err)?;
        let version: i32 = tx
            .query_opt("SELECT version FROM magpie_schema", &[])
            .await
            .map_err(db_err)?
            .map_or(0, |row| row.get(0));
        let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        if version > known {
            return Err(StoreError::Format {
                found: u32::try_from(version).unwrap_or(0),
                supported: MIGRATIONS.len() as u32,
            });
        }
        for migration in MIGRATIONS.iter().skip(usize::try_from(version).unwrap_or(0)) {
            tx.batch_execute(migration).await.map_err(db_err)?;
        }
        tx.execute("DELETE FROM magpie_schema", &[]).await.map_err(db_err)?;
        tx.execute("INSERT INTO magpie_schema (version) VALUES ($1)", &[&known])
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }
}

fn envelope_of(row: &Row) -> StoreResult<StoredEnvelope> {
    let kind: i16 = row.get("kind");
    Ok(StoredEnvelope {
        seq: uint(row.get("seq"))?,
        id: row.get("id"),
        from: row.get("sender"),
        to: row.get("recipient"),
        kind: kind_from_tag(u8::try_from(kind).unwrap_or(0))?,
        body_b64: row.get("body"),
        received_at: uint(row.get("received_at"))?,
    })
}

#[async_trait]
impl Backend for PgStore {
    async fn add_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let added = self
            .client()
            .await?
            .execute(
                "INSERT INTO users (username, cert_pem, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&user.username, &user.cert_pem, &int(user.created_at)?],
            )
            .await
            .map_err(db_err)?;
        Ok(added == 1)
    }

    async fn user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT cert_pem, created_at FROM users WHERE username = $1",
                &[&username],
            )
            .await
            .map_err(db_err)?;
        row.map(|row| {
            Ok(UserRecord {
                username: username.to_owned(),
                cert_pem: row.get(0),
                created_at: uint(row.get(1))?,
            })
        })
        .transpose()
    }

    async fn has_user(&self, username: &str) -> StoreResult<bool> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT 1 FROM users WHERE username = $1", &[&username])
            .await
            .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO challenges (nonce, username, expires_at) VALUES ($1, $2, $3)",
                &[&nonce, &challenge.username, &int(challenge.expires_at)?],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "DELETE FROM challenges WHERE nonce = $1 RETURNING username, expires_at",
                &[&nonce],
            )
            .await
            .map_err(db_err)?;
        row.map(|row| {
            Ok(ChallengeRecord {
                username: row.get(0),
                expires_at: uint(row.get(1))?,
            })
        })
        .transpose()
    }

    async fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO tokens (token_hash, username, expires_at) VALUES ($1, $2, $3)",
                &[&token_hash.as_slice(), &token.username, &int(token.expires_at)?],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT username, expires_at FROM tokens WHERE token_hash = $1",
                &[&token_hash.as_slice()],
            )
            .await
            .map_err(db_err)?;
        row.map(|row| {
            Ok(TokenRecord {
                username: row.get(0),
                expires_at: uint(row.get(1))?,
            })
        })
        .transpose()
    }

    async fn insert_envelope_within(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<Inserted> {
        self.writer.queue(envelope, quota).await?.await
    }

    async fn insert_queued(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<PendingInsert> {
        self.writer.queue(envelope, quota).await
    }

    async fn fetch_within(
        &self,
        to: &str,
        after: u64,
        limit: usize,
        budget: usize,
    ) -> StoreResult<Vec<StoredEnvelope>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, sender, recipient, seq, kind, body, received_at FROM envelopes
                 WHERE recipient = $1 AND acked_at IS NULL AND seq > $2 ORDER BY seq LIMIT $3",
                &[&to, &int(after)?, &limit],
            )
            .await
            .map_err(db_err)?;
        within_budget(rows.iter().map(envelope_of), budget)
    }

    async fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize> {
        // The body goes; the row stays to recognise a late retry.
        let acked = self
            .client()
            .await?
            .execute(
                "UPDATE envelopes SET acked_at = $3, body = '' WHERE recipient = $1 AND id = ANY($2)
                 AND acked_at IS NULL",
                &[&to, &ids, &int(now)?],
            )
            .await
            .map_err(db_err)?;
        Ok(usize::try_from(acked).unwrap_or(usize::MAX))
    }

    async fn mailboxes(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query("SELECT DISTINCT recipient FROM envelopes WHERE acked_at IS NULL", &[])
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        let client = self.client().await?;
        let now_i = int(now)?;
        let forget_before = int(now.saturating_sub(DEDUP_RETENTION_SECS))?;
        let mut purged = 0;
        for (sql, at) in [
            ("DELETE FROM challenges WHERE expires_at <= $1", now_i),
            ("DELETE FROM tokens WHERE expires_at <= $1", now_i),
            ("DELETE FROM envelopes WHERE acked_at < $1", forget_before),
        ] {
            purged += client.execute(sql, &[&at]).await.map_err(db_err)?;
        }
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    fn gauges(&self) -> Vec<StoreGauge> {
        let status = self.pool.status();
        vec![StoreGauge {
            name: "magpie_database_connections",
            help: "Connections to PostgreSQL open in the pool.",
            value: status.size as u64,
        }]
    }

    async fn ready(&self) -> StoreResult<()> {
        self.client().await?.simple_query("SELECT 1").await.map_err(db_err)?;
        Ok(())
    }

    fn announces(&self) -> bool {
        true
    }

    fn durable_later(&self) -> Durable {
        // Every write committed before it returned.
        Box::pin(std::future::ready(Ok(())))
    }
}
