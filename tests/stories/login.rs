//! The relay's bearer token is kept (sealed) between runs of a profile: one-shot commands in a row log in once,
//! and a kept token the relay no longer accepts is replaced by a fresh login.

use crate::common::{Person, Relay};

#[tokio::test(flavor = "multi_thread")]
async fn runs_in_a_row_reuse_the_kept_token_and_a_refused_one_is_replaced() {
    let relay = Relay::start().await;
    let mut alice = Person::register("alice", &relay.url()).await;
    for _ in 0..5 {
        alice.client.sync().await.unwrap();
        alice = alice.reopen().await;
    }
    assert_eq!(logins(&relay), 1, "five runs, one login");

    // A token the relay does not know (revoked, or kept from before the relay lost its data).
    alice = alice
        .reopen_after(|profile| profile.history().set_relay_login("forged", u64::MAX).unwrap())
        .await;
    alice.client.sync().await.unwrap();
    alice
        .reopen_after(|profile| {
            let (kept, expires_at) = profile.history().relay_login().unwrap().unwrap();
            assert_ne!(kept.as_str(), "forged", "the refused token was replaced");
            assert!(expires_at < u64::MAX);
        })
        .await;
    assert_eq!(logins(&relay), 2, "the refused token cost one login");
}

/// The relay's count of successful logins (exported as `magpie_logins_total`).
fn logins(relay: &Relay) -> u64 {
    relay
        .running
        .state
        .metrics
        .logins
        .load(std::sync::atomic::Ordering::Relaxed)
}
