//! One push-socket frame handled without a socket, for `fuzz/fuzz_targets/push_frame.rs`: what the socket's
//! reader does with a text frame ([`on_frame`]) and the answer its committer writes back ([`commit_in_order`]).

use tokio::sync::mpsc;

use super::{commit_in_order, on_frame};
use crate::api::AppState;

/// Handles `text` as a text frame from `user`'s push socket; the answer the client would be sent, if any.
pub async fn push_frame(state: &AppState, user: &str, text: &str) -> Option<String> {
    let (staged, staged_rx) = mpsc::channel(1);
    let (replies, mut answers) = mpsc::channel(1);
    on_frame(state, user, text, &staged).await;
    // Closing the queue lets the committer end once it has answered this frame.
    drop(staged);
    commit_in_order(state.clone(), staged_rx, replies).await;
    answers.recv().await.map(|answer| answer.as_str().to_owned())
}
