//! The settings every relay on one database shares: those that decide what a client's request gets (sizes,
//! lifetimes, quotas, per-user rates), so that a client never gets two answers to one request from two relays.
//! The relays keep them in the database. A relay that starts with other values while other relays are connected
//! refuses to start; one that starts alone makes its values everyone's. Changing one is therefore: stop every
//! relay, change it in each one's settings, start them.

use std::collections::BTreeMap;

use super::{application_name, db_err, PgStore, APPLICATION};
use crate::store::StoreError;

/// Any number, the same on every node: one relay at a time compares its settings.
const SETTINGS_LOCK: i64 = 0x6d61_6770_6973;

/// Why a relay may not serve with its settings.
#[derive(Debug, thiserror::Error)]
pub enum SharedSettingsError {
    /// Other relays are connected with other values.
    #[error(
        "{others} other relay(s) on this database run with other settings that clients see: {}. Give this relay \
         the same values, or stop every relay and start them all with the new ones",
        differences.join("; ")
    )]
    Differ {
        /// One sentence per setting.
        differences: Vec<String>,
        /// Relays connected to the database besides this one.
        others: i64,
    },
    /// The database did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PgStore {
    /// Checks `mine` (values by flag name) against the settings the relays on this database share: the shared
    /// settings become `mine` when none are stored, when they agree, or when no other relay is connected, and
    /// then the flags whose values this changed are returned. A setting only one side knows (a relay of another
    /// version) is not compared.
    pub async fn share_settings(&self, mine: &BTreeMap<&str, u64>) -> Result<Vec<String>, SharedSettingsError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETTINGS_LOCK])
            .await
            .map_err(db_err)?;
        let stored: BTreeMap<String, u64> = match tx
            .query_opt("SELECT settings FROM shared_settings", &[])
            .await
            .map_err(db_err)?
        {
            Some(row) => serde_json::from_str(row.get::<_, &str>(0))
                .map_err(|e| StoreError::Corrupt(format!("shared settings: {e}")))?,
            None => BTreeMap::new(),
        };
        let differences: Vec<String> = mine
            .iter()
            .filter_map(|(flag, value)| {
                let theirs = stored.get(*flag).filter(|theirs| *theirs != value)?;
                Some(format!("--{flag} is {value} here and {theirs} on the others"))
            })
            .collect();
        if !differences.is_empty() {
            let others: i64 = tx
                .query_one(
                    "SELECT count(DISTINCT application_name) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name LIKE $1 AND application_name <> $2",
                    &[&format!("{APPLICATION} %"), &application_name(self.node)],
                )
                .await
                .map_err(db_err)?
                .get(0);
            if others > 0 {
                return Err(SharedSettingsError::Differ { differences, others });
            }
        }
        let json = serde_json::to_string(mine).map_err(|e| StoreError::Backend(e.to_string()))?;
        tx.execute(
            "INSERT INTO shared_settings (settings) VALUES ($1)
             ON CONFLICT (only_one) DO UPDATE SET settings = excluded.settings",
            &[&json],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(differences)
    }
}
