//! Settings, from flags or `MAGPIE_RELAY_*` environment variables.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

use crate::store::SyncMode;

/// magpie-relay: the Magpie server (CA, certificate directory, key-signed login, durable mailboxes, push).
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Directory for the database and the CA key (created if missing; must be writable).
    #[arg(long = "data", env = "MAGPIE_RELAY_DATA", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Address to listen on. Plain HTTP: keep it on loopback, or put a TLS reverse proxy in front.
    #[arg(long, env = "MAGPIE_RELAY_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,

    /// Largest envelope body in bytes (after base64 decoding); larger ones get 413.
    #[arg(long, env = "MAGPIE_RELAY_MAX_ENVELOPE_BYTES", default_value_t = 256 * 1024)]
    pub max_envelope_bytes: usize,

    /// How long a bearer token is valid, seconds.
    #[arg(long, env = "MAGPIE_RELAY_TOKEN_TTL", default_value_t = 24 * 3600)]
    pub token_ttl_secs: u64,

    /// How long a login challenge is valid, seconds.
    #[arg(long, env = "MAGPIE_RELAY_CHALLENGE_TTL", default_value_t = 60)]
    pub challenge_ttl_secs: u64,

    /// Login attempts (challenges plus logins) per client address per minute. Clients on this machine are not
    /// limited.
    #[arg(long, env = "MAGPIE_RELAY_LOGIN_PER_MINUTE", default_value_t = 20)]
    pub login_per_minute: u32,

    /// Registrations per client address per hour. Clients on this machine are not limited.
    #[arg(long, env = "MAGPIE_RELAY_REGISTER_PER_HOUR", default_value_t = 10)]
    pub register_per_hour: u32,

    /// Behind a reverse proxy: the request header it writes the client's address into (such as
    /// X-Forwarded-For; its last address is used). Set it only if every request comes through that proxy, or
    /// clients could pick their own address.
    #[arg(long, env = "MAGPIE_RELAY_CLIENT_IP_HEADER", value_name = "HEADER")]
    pub client_ip_header: Option<String>,

    /// Seconds a client has to send a request's headers, also while a kept-alive connection idles: slower ones
    /// (a half-sent request line, say) are disconnected.
    #[arg(long, env = "MAGPIE_RELAY_HEADER_READ_TIMEOUT", default_value_t = 30)]
    pub header_read_timeout_secs: u64,

    /// Seconds a push client may take nothing the relay writes it before its socket is closed (it catches up over
    /// HTTP when it comes back).
    #[arg(long, env = "MAGPIE_RELAY_PUSH_WRITE_TIMEOUT", default_value_t = 20)]
    pub push_write_timeout_secs: u64,

    /// Open connections in all (push sockets included); more are closed as they come.
    #[arg(long, env = "MAGPIE_RELAY_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,

    /// Open connections per client address. Clients on this machine are not limited, and behind a proxy
    /// (--client-ip-header) only the total applies.
    #[arg(long, env = "MAGPIE_RELAY_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// With --client-ip-header: the proxies whose header is believed (comma-separated). A request from any
    /// other address is limited by that address, whatever its header says.
    #[arg(
        long = "trusted-proxy",
        env = "MAGPIE_RELAY_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = "127.0.0.1,::1"
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// Serves /metrics to requests that carry this bearer token; without it, only to this machine's clients when
    /// no proxy is configured.
    #[arg(
        long,
        env = "MAGPIE_RELAY_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// Directory lookups a user may make per minute (they need a login).
    #[arg(long, env = "MAGPIE_RELAY_LOOKUPS_PER_MINUTE", default_value_t = 120)]
    pub lookups_per_minute: u32,

    /// Most envelope bytes one page of `GET /v1/envelopes` carries, KiB, whatever its `limit` says (a page holds
    /// at least one envelope).
    #[arg(long, env = "MAGPIE_RELAY_FETCH_BUDGET_KB", default_value_t = 8192)]
    pub fetch_budget_kb: usize,

    /// Envelope bytes (bodies as stored) a user may fetch per hour, MiB; a sixteenth of it at once. Over it, fetches
    /// get 429. A client reads its mail once; this stops one that reads the same full mailbox over and over from
    /// taking the relay's CPU from everyone.
    #[arg(long, env = "MAGPIE_RELAY_FETCH_MB_PER_HOUR", default_value_t = 1024)]
    pub fetch_mb_per_hour: u64,

    /// Mailbox fetches a user may make per minute.
    #[arg(long, env = "MAGPIE_RELAY_FETCHES_PER_MINUTE", default_value_t = 600)]
    pub fetches_per_minute: u32,

    /// Envelopes a user may send per second, sustained.
    #[arg(long, env = "MAGPIE_RELAY_SEND_PER_SECOND", default_value_t = 2000)]
    pub send_per_second: u32,

    /// Envelopes a mailbox may hold waiting for its owner; more get 507 `mailbox_full` until the owner reads.
    #[arg(long, env = "MAGPIE_RELAY_MAILBOX_MAX_ENVELOPES", default_value_t = 10_000)]
    pub mailbox_max_envelopes: usize,

    /// What the envelopes waiting in a mailbox may take, MiB; more get 507 `mailbox_full`.
    #[arg(long, env = "MAGPIE_RELAY_MAILBOX_MAX_MB", default_value_t = 256)]
    pub mailbox_max_mb: u64,

    /// Days an envelope waits for its owner at most; then the relay deletes it unread (0: never). Checked every
    /// minute. The sender is not told: see the README.
    #[arg(long, env = "MAGPIE_RELAY_MAILBOX_EXPIRY_DAYS", default_value_t = 30)]
    pub mailbox_expiry_days: u64,

    /// Largest file (blob) a user may upload, MiB; larger ones get 413 before any byte is sent.
    #[arg(long, env = "MAGPIE_RELAY_MAX_FILE_MB", default_value_t = 100)]
    pub max_file_mb: u64,

    /// What one user's files waiting on the relay may take, MiB (by their declared sizes, from the start of their
    /// upload until their recipients have fetched them); more get 507 `file_quota_full`.
    #[arg(long, env = "MAGPIE_RELAY_FILE_QUOTA_MB", default_value_t = 1024)]
    pub file_quota_mb: u64,

    /// How many files one user may have waiting on the relay; more get 507 `file_quota_full`.
    #[arg(long, env = "MAGPIE_RELAY_FILE_QUOTA_FILES", default_value_t = 1000)]
    pub file_quota_files: usize,

    /// File bytes a user may upload per hour, and download per hour, MiB; the whole hour's may go at once. Over it,
    /// transfers are slowed, not refused.
    #[arg(long, env = "MAGPIE_RELAY_FILE_MB_PER_HOUR", default_value_t = 4096)]
    pub file_mb_per_hour: u64,

    /// Envelope bytes (bodies as stored) a user may send per hour, KiB; the whole hour's may go at once. Over it,
    /// HTTP sends get 429 and push sends wait.
    #[arg(long, env = "MAGPIE_RELAY_SEND_KB_PER_HOUR", default_value_t = 512 * 1024)]
    pub send_kb_per_hour: u64,

    /// Envelopes a user may send in one burst.
    #[arg(long, env = "MAGPIE_RELAY_SEND_BURST", default_value_t = 4000)]
    pub send_burst: u32,

    /// Under load, how long the flusher waits to gather a bigger commit group, microseconds (0: never).
    #[arg(long, env = "MAGPIE_RELAY_COMMIT_DELAY_US", default_value_t = 500)]
    pub commit_delay_us: u64,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key). Without it: plain HTTP.
    #[arg(long, env = "MAGPIE_RELAY_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "MAGPIE_RELAY_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How users, challenges and tokens reach the disk: `flush` (survives a relay crash) or `fsync` (also survives
    /// power loss). Mailboxes are always synced with fdatasync, which survives both.
    #[arg(long, env = "MAGPIE_RELAY_SYNC", value_enum, default_value_t = SyncMode::Flush)]
    pub sync: SyncMode,

    /// Size at which a mailbox log segment is sealed, KiB. Memory holds the ids of the live segments (about 100
    /// bytes each); sealed segments that are mostly acknowledged are reclaimed in the background.
    #[arg(long, env = "MAGPIE_RELAY_SEGMENT_KB", default_value_t = DEFAULT_SEGMENT_KB)]
    pub segment_kb: u64,

    /// The database's page cache, MiB: most of the relay's memory under load. Recent mail, tokens and users are
    /// what it holds; pages beyond it are read back from the file (usually the OS cache).
    #[arg(long, env = "MAGPIE_RELAY_CACHE_MB", default_value_t = DEFAULT_CACHE_MB)]
    pub cache_mb: u64,

    /// Keep users, tokens and mailboxes in this PostgreSQL database (`postgres://user:password@host/db`, or libpq's
    /// `host=… dbname=…`) instead of the data directory, so that several relays can share it behind a load balancer.
    /// The CA is kept there too: the first relay to start puts its own (from `--data`, or a new one) there, and
    /// every relay serves that one. The limits clients see must be the same on every relay on it.
    #[arg(long, env = "MAGPIE_RELAY_DATABASE", value_name = "URL")]
    pub database: Option<String>,

    /// Connections this relay keeps to --database at most.
    #[arg(long, env = "MAGPIE_RELAY_DATABASE_CONNECTIONS", default_value_t = 16)]
    pub database_connections: usize,
}

/// Default `--segment-kb`: 16 MiB.
pub const DEFAULT_SEGMENT_KB: u64 = crate::store::SEGMENT_BYTES >> 10;

/// Default `--cache-mb`. In a 30 s run of 100 busy pairs whose receivers ack (`examples/load.rs`), 32 MiB left
/// the relay at 105 MB resident, 24 MiB at 94 MB and 16 MiB at 82 MB, all at the same throughput; the OS page cache
/// still holds the file.
pub const DEFAULT_CACHE_MB: u64 = 16;

impl Config {
    /// The settings every relay on one database must agree on, by flag: those that decide the answer a client's
    /// request gets. Per-user rates are among them although each relay counts them for itself (a user spread
    /// over N relays may go N times as fast), so that one request never meets two limits.
    pub fn shared_settings(&self) -> BTreeMap<&'static str, u64> {
        let wide = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        BTreeMap::from([
            ("max-envelope-bytes", wide(self.max_envelope_bytes)),
            ("token-ttl-secs", self.token_ttl_secs),
            ("challenge-ttl-secs", self.challenge_ttl_secs),
            ("lookups-per-minute", u64::from(self.lookups_per_minute)),
            ("fetch-budget-kb", wide(self.fetch_budget_kb)),
            ("fetch-mb-per-hour", self.fetch_mb_per_hour),
            ("fetches-per-minute", u64::from(self.fetches_per_minute)),
            ("send-per-second", u64::from(self.send_per_second)),
            ("send-burst", u64::from(self.send_burst)),
            ("send-kb-per-hour", self.send_kb_per_hour),
            ("mailbox-max-envelopes", wide(self.mailbox_max_envelopes)),
            ("mailbox-max-mb", self.mailbox_max_mb),
            ("mailbox-expiry-days", self.mailbox_expiry_days),
            ("max-file-mb", self.max_file_mb),
            ("file-quota-mb", self.file_quota_mb),
            ("file-quota-files", wide(self.file_quota_files)),
            ("file-mb-per-hour", self.file_mb_per_hour),
        ])
    }

    /// The defaults, with data in `data_dir` (what tests and embedders start from).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            max_envelope_bytes: 256 * 1024,
            token_ttl_secs: 24 * 3600,
            challenge_ttl_secs: 60,
            login_per_minute: 20,
            register_per_hour: 10,
            client_ip_header: None,
            trusted_proxies: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            metrics_token: None,
            lookups_per_minute: 120,
            fetch_budget_kb: 8192,
            fetches_per_minute: 600,
            fetch_mb_per_hour: 1024,
            header_read_timeout_secs: 30,
            push_write_timeout_secs: 20,
            max_connections: 16_384,
            max_connections_per_ip: 256,
            send_per_second: 2000,
            send_burst: 4000,
            send_kb_per_hour: 512 * 1024,
            mailbox_max_envelopes: 10_000,
            mailbox_max_mb: 256,
            mailbox_expiry_days: 30,
            max_file_mb: 100,
            file_quota_mb: 1024,
            file_quota_files: 1000,
            file_mb_per_hour: 4096,
            sync: SyncMode::Flush,
            commit_delay_us: 500,
            cache_mb: DEFAULT_CACHE_MB,
            database: None,
            database_connections: 16,
            segment_kb: DEFAULT_SEGMENT_KB,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debian_defaults_file_lists_every_variable() {
        use clap::CommandFactory as _;
        let listed = include_str!("../debian/magpie-relay.default");
        let missing: Vec<String> = Config::command()
            .get_arguments()
            .filter_map(|a| a.get_env().and_then(|v| v.to_str()).map(str::to_owned))
            // The service unit passes the data directory itself.
            .filter(|v| v != "MAGPIE_RELAY_DATA" && !listed.contains(&format!("#{v}=")))
            .collect();
        assert!(missing.is_empty(), "not in debian/magpie-relay.default: {missing:?}");
    }

    #[test]
    fn flag_defaults_match_with_data_dir() {
        let parsed = Config::parse_from(["magpie-relay", "--data", "/tmp/x"]);
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::with_data_dir("/tmp/x")));
    }
}
