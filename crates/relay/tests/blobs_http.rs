//! The blob routes over real HTTP on a relay with its data directory: who may do what, resumable parts, ranges,
//! release, limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{http_login, http_register};
use magpie_relay::server::{open_state, RunningRelay};
use magpie_relay::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Relay {
    relay: RunningRelay,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Relay {
    async fn start(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(dir.path());
        adjust(&mut config);
        let relay = RunningRelay::start(open_state(config).unwrap()).await.unwrap();
        Self {
            relay,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn users(&self) -> [String; 3] {
        let base = self.relay.url("");
        let fingerprint = self.relay.state.ca.fingerprint;
        let mut tokens = Vec::new();
        for name in common::NAMES {
            http_register(&self.http, &base, name).await;
            tokens.push(http_login(&self.http, &base, name, &fingerprint).await);
        }
        tokens.try_into().unwrap()
    }

    fn request(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.relay.url(path)).bearer_auth(token)
    }

    async fn create(&self, token: &str, size: u64, recipients: &[&str]) -> (StatusCode, Value) {
        let response = self
            .request(Method::POST, "/v1/blobs", token)
            .json(&json!({"size": size, "recipients": recipients}))
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn patch(&self, token: &str, id: &str, offset: u64, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.request(Method::PATCH, &format!("/v1/blobs/{id}"), token)
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// `method` on the blob `id` as `token`, with nothing more.
    async fn on_blob(&self, method: Method, token: &str, id: &str) -> reqwest::Response {
        self.request(method, &format!("/v1/blobs/{id}"), token)
            .send()
            .await
            .unwrap()
    }

    /// A part announced as `length` bytes over a raw connection, of which only `first` is sent so far: what a
    /// client cut off, or still sending, looks like to the relay.
    async fn raw_patch(&self, token: &str, id: &str, length: usize, first: &[u8]) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt as _;
        let mut tcp = tokio::net::TcpStream::connect(self.relay.addr).await.unwrap();
        let head = format!(
            "PATCH /v1/blobs/{id} HTTP/1.1\r\nhost: relay\r\nauthorization: Bearer {token}\r\n\
             content-type: application/offset+octet-stream\r\nupload-offset: 0\r\ncontent-length: {length}\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(first).await.unwrap();
        tcp.flush().await.unwrap();
        tcp
    }

    async fn held(&self, token: &str, id: &str) -> (u64, u64) {
        let response = self
            .request(Method::HEAD, &format!("/v1/blobs/{id}"), token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let number = |name| response.headers()[name].to_str().unwrap().parse::<u64>().unwrap();
        (number("upload-offset"), number("upload-length"))
    }
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

#[tokio::test]
async fn a_blob_is_uploaded_in_parts_by_its_owner_and_read_in_ranges_by_its_recipient() {
    let relay = Relay::start(|_| {}).await;
    let [alice, bob, carol] = relay.users().await;
    let bytes = pattern(700_000);
    let (status, created) = relay.create(&alice, bytes.len() as u64, &["bob"]).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["upload_by"].as_u64().unwrap() < created["expires_at"].as_u64().unwrap());

    // Only the owner appends, only at the end, only as a part.
    assert_eq!(relay.patch(&bob, &id, 0, vec![1]).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        relay.patch(&carol, &id, 0, vec![1]).await.status(),
        StatusCode::NOT_FOUND
    );
    let wrong_type = relay
        .request(Method::PATCH, &format!("/v1/blobs/{id}"), &alice)
        .header("upload-offset", 0)
        .body(vec![1])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let first = relay.patch(&alice, &id, 0, bytes[..300_000].to_vec()).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(first.headers()["upload-offset"], "300000");
    let again = relay.patch(&alice, &id, 0, bytes[..300_000].to_vec()).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(again.headers()["upload-offset"], "300000", "a 409 says where to go on");
    assert_eq!(code(&again.json().await.unwrap()), "offset_mismatch");
    let too_long = relay.patch(&alice, &id, 300_000, vec![0; 400_001]).await;
    assert_eq!(too_long.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(relay.held(&bob, &id).await, (300_000, 700_000));

    // Not readable until complete.
    let early = relay.on_blob(Method::GET, &bob, &id).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    assert_eq!(code(&early.json().await.unwrap()), "blob_incomplete");
    assert_eq!(
        relay
            .patch(&alice, &id, 300_000, bytes[300_000..].to_vec())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // Whole, in a range, and not for strangers.
    let whole = relay.on_blob(Method::GET, &bob, &id).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap(), bytes);
    let part = relay
        .request(Method::GET, &format!("/v1/blobs/{id}"), &bob)
        .header("range", "bytes=262100-262200")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 262100-262200/700000");
    assert_eq!(part.bytes().await.unwrap(), bytes[262_100..=262_200]);
    let outside = relay
        .request(Method::GET, &format!("/v1/blobs/{id}"), &bob)
        .header("range", "bytes=700000-")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(outside.headers()["content-range"], "bytes */700000");
    let stranger = relay.on_blob(Method::GET, &carol, &id).await;
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND);

    // The recipient's release deletes it, file and all.
    let blob_file = relay.relay.state.config.data_dir.join("blobs").join(&id);
    assert_eq!(std::fs::metadata(&blob_file).unwrap().len(), 700_000);
    let release = relay.on_blob(Method::DELETE, &bob, &id).await;
    assert_eq!(release.status(), StatusCode::NO_CONTENT);
    assert!(!blob_file.exists());
    let gone = relay.on_blob(Method::GET, &bob, &id).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_part_cut_off_midway_keeps_what_arrived_and_the_upload_resumes_there() {
    let relay = Relay::start(|_| {}).await;
    let [alice, bob, _] = relay.users().await;
    let bytes = pattern(1_000_000);
    let (_, created) = relay.create(&alice, bytes.len() as u64, &["bob"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // A part announced as the whole rest, of which 600,000 bytes arrive before the connection drops.
    drop(relay.raw_patch(&alice, &id, bytes.len(), &bytes[..600_000]).await);
    // The relay may still be reading; its count settles on what arrived.
    let mut held = 0;
    for _ in 0..100 {
        held = relay.held(&alice, &id).await.0;
        if held == 600_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(held, 600_000, "every byte that arrived is kept");
    let rest = relay.patch(&alice, &id, held, bytes[held as usize..].to_vec()).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    let whole = relay.on_blob(Method::GET, &bob, &id).await;
    assert_eq!(whole.bytes().await.unwrap(), bytes);
}

#[tokio::test]
async fn sizes_recipients_and_quotas_are_checked_before_any_byte() {
    let relay = Relay::start(|c| {
        c.max_file_mb = 1;
        c.file_quota_files = 2;
    })
    .await;
    let [alice, bob, _] = relay.users().await;
    let over = relay
        .request(Method::POST, "/v1/blobs", &alice)
        .json(&json!({"size": (1 << 20) + 1, "recipients": ["bob"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        over.headers()["upload-max-length"],
        "1048576",
        "the limit, for the client to say"
    );
    assert_eq!(relay.create(&alice, 0, &["bob"]).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(relay.create(&alice, 10, &[]).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(relay.create(&alice, 10, &["nobody"]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        relay.create(&alice, 10, &["Not A Name"]).await.0,
        StatusCode::BAD_REQUEST
    );
    let to_oneself = relay.create(&alice, 10, &["bob", "alice"]).await.0;
    assert_eq!(to_oneself, StatusCode::BAD_REQUEST, "the uploader is not a recipient");
    assert_eq!(relay.create(&alice, 10, &["bob"]).await.0, StatusCode::CREATED);
    let (_, second) = relay.create(&alice, 10, &["bob"]).await;
    let (status, body) = relay.create(&alice, 10, &["bob"]).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(code(&body), "file_quota_full");
    assert_eq!(
        relay.create(&bob, 10, &["alice"]).await.0,
        StatusCode::CREATED,
        "quotas are per user"
    );
    // Cancelling gives the room back.
    let id = second["id"].as_str().unwrap();
    let cancel = relay.on_blob(Method::DELETE, &alice, id).await;
    assert_eq!(cancel.status(), StatusCode::NO_CONTENT);
    assert_eq!(relay.create(&alice, 10, &["bob"]).await.0, StatusCode::CREATED);
    // A bad id is a 400, an unknown one a 404.
    let bad = relay
        .request(Method::HEAD, "/v1/blobs/not-a-uuid", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unknown = relay
        .request(Method::GET, &format!("/v1/blobs/{}", uuid::Uuid::new_v4()), &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let anonymous = relay
        .http
        .get(relay.relay.url(&format!("/v1/blobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn parts_come_one_at_a_time_at_least_64_kib_and_recipients_release_only_whole_blobs() {
    use tokio::io::AsyncWriteExt as _;
    let relay = Relay::start(|_| {}).await;
    let [alice, bob, _] = relay.users().await;
    let bytes = pattern(200_000);
    let (_, created) = relay.create(&alice, bytes.len() as u64, &["bob"]).await;
    let id = created["id"].as_str().unwrap().to_owned();

    // A tiny part that does not complete the blob keeps nothing.
    let tiny = relay.patch(&alice, &id, 0, bytes[..1000].to_vec()).await;
    assert_eq!(tiny.status(), StatusCode::BAD_REQUEST);
    assert_eq!(relay.held(&alice, &id).await.0, 0);

    // While one part streams in, a second is refused with where the blob ends.
    let mut first = relay.raw_patch(&alice, &id, 100_000, &bytes[..50_000]).await;
    let mut refused = None;
    for _ in 0..100 {
        let second = relay.patch(&alice, &id, 0, bytes[..100_000].to_vec()).await;
        if second.status() == StatusCode::CONFLICT {
            refused = Some(second);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let refused = refused.expect("the second part is refused while the first streams");
    assert_eq!(refused.headers()["upload-offset"], "0");
    first.write_all(&bytes[50_000..100_000]).await.unwrap();
    let mut answer = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut first, &mut answer)
        .await
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.1 204", "the first part is taken whole");
    assert_eq!(relay.held(&alice, &id).await.0, 100_000);

    // Bob cannot release what he does not have yet; a short last part completes the blob.
    let early = relay.on_blob(Method::DELETE, &bob, &id).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    assert_eq!(code(&early.json().await.unwrap()), "blob_incomplete");
    let last = relay.patch(&alice, &id, 100_000, bytes[100_000..].to_vec()).await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    let (_, small) = relay.create(&alice, 10, &["bob"]).await;
    let small_id = small["id"].as_str().unwrap();
    let whole = relay.patch(&alice, small_id, 0, vec![1; 10]).await;
    assert_eq!(whole.status(), StatusCode::NO_CONTENT, "10 bytes complete it");
    let release = relay.on_blob(Method::DELETE, &bob, &id).await;
    assert_eq!(release.status(), StatusCode::NO_CONTENT);
}
