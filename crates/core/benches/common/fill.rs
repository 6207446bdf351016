//! A history of chat-like messages over 100 chats, for the search and backup benchmarks.

use std::time::Instant;

use magpie_core::history::{Delivery, Direction, Message};
use magpie_core::History;
use magpie_proto::{MessageKind, Username};

pub const CHATS: usize = 100;
const BATCH: usize = 1_000;

pub fn peers() -> Vec<Username> {
    (0..CHATS)
        .map(|i| Username::parse(&format!("friend{i:03}")).unwrap())
        .collect()
}

/// Appends `n` messages, one chat after another in turn; "lunch" in one message of 61, "Zürich" in one of 9,973.
pub fn fill(history: &History, n: usize) {
    let peers = peers();
    let mut words = Words(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let mut written = 0;
    while written < n {
        let batch: Vec<Message> = (written..(written + BATCH).min(n))
            .map(|i| message(&peers[i % CHATS], i, words.sentence(i)))
            .collect();
        history.append_messages(&batch).unwrap();
        written += batch.len();
    }
    history.flush().unwrap();
    println!(
        "filled messages={n} chats={CHATS} fill_s={:.1}",
        started.elapsed().as_secs_f64()
    );
}

/// Chat-like sentences from a fixed vocabulary, reproducible.
struct Words(u64);

#[rustfmt::skip]
const VOCABULARY: &[&str] = &[
    "the", "a", "and", "to", "of", "in", "is", "it", "you", "that", "we", "for", "on", "with", "are", "this", "be",
    "at", "have", "not", "see", "tomorrow", "tonight", "later", "call", "meet", "office", "train", "late", "sorry",
    "thanks", "great", "idea", "coffee", "café", "tea", "dinner", "weekend", "holiday", "photos", "sent", "file",
    "meeting", "project", "deadline", "review", "draft", "budget", "Berlin", "Paris", "München", "Straße", "morgen",
    "très", "bien", "naïve", "señor", "mañana", "smørrebrød", "Ελλάδα", "Москва", "東京", "😀", "👍", "ok", "yes", "no",
    "maybe", "why", "how", "when", "where", "what", "who", "good", "bad", "fine", "busy", "free", "home",
];

impl Words {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn sentence(&mut self, i: usize) -> String {
        let len = 4 + (self.next() % 14) as usize;
        let mut words: Vec<&str> = (0..len)
            .map(|_| VOCABULARY[(self.next() % VOCABULARY.len() as u64) as usize])
            .collect();
        if i % 61 == 7 {
            words.push("lunch");
        }
        if i % 9_973 == 11 {
            words.push("Zürich");
        }
        words.join(" ")
    }
}

fn message(peer: &Username, i: usize, body: String) -> Message {
    let outgoing = i.is_multiple_of(2);
    Message {
        id: uuid::Uuid::new_v4(),
        peer: peer.clone(),
        direction: if outgoing {
            Direction::Outgoing
        } else {
            Direction::Incoming
        },
        kind: MessageKind::Text,
        body,
        sent_at: 1_700_000_000 + i as u64,
        received_at: (!outgoing).then_some(1_700_000_001 + i as u64),
        delivery: if outgoing {
            Delivery::Delivered
        } else {
            Delivery::Received
        },
    }
}
