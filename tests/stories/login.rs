//! The relay's bearer token is kept (sealed) between runs of a profile: one-shot commands in a row log in once,
//! and a kept token the relay no longer accepts is replaced by a fresh login.

use magpie_core::relay::RelayClient;

use crate::common::{identity, Person, Relay};

#[tokio::test(flavor = "multi_thread")]
async fn runs_in_a_row_reuse_the_kept_token_and_a_refused_one_is_replaced() {
    // Room for two logins a minute (a challenge and a login each).
    let relay = Relay::start_configured(tempfile::tempdir().unwrap(), |c| c.login_per_minute = 4).await;
    let mut alice = Person::register("alice", &relay.url()).await;
    for _ in 0..5 {
        alice.client.sync().await.unwrap();
        alice = alice.reopen().await;
    }

    // A token the relay does not know (revoked, or kept from before the relay lost its data).
    alice = alice
        .reopen_after(|profile| profile.history().set_relay_login("forged", u64::MAX).unwrap())
        .await;
    alice.client.sync().await.unwrap();
    let alice = alice
        .reopen_after(|profile| {
            let (kept, expires_at) = profile.history().relay_login().unwrap().unwrap();
            assert_ne!(kept.as_str(), "forged", "the refused token was replaced");
            assert!(expires_at < u64::MAX);
        })
        .await;

    // Those were the two logins the limit allows: the six runs in between reused the token.
    let spy = RelayClient::new(&relay.url()).unwrap();
    let third = spy
        .login(&identity("alice"), &alice.client.relay_ca_fingerprint().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(third, magpie_core::Error::Relay { status: 429, .. }),
        "{third}"
    );
}
