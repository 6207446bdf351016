//! Search over both stores: the sealed sled history and the in-memory one keep the same promises.

use std::sync::atomic::AtomicBool;

use magpie_proto::file::FileDescriptor;
use magpie_proto::FileKey;
use magpie_proto::MessageKind;
use uuid::Uuid;

use super::tests::{open, text};
use super::*;
use crate::search::{searchable_text, Query};
use crate::store::{MemoryStore, Messages};
use crate::Error;
use magpie_tests::username;

fn file(peer: &str, name: &str) -> Message {
    let descriptor = FileDescriptor {
        blob: Uuid::new_v4(),
        key: FileKey::generate().unwrap(),
        sha256: [9; 32],
        size: 1234,
        name: name.to_owned(),
        media_type: "application/pdf".to_owned(),
        thumbnail: None,
    };
    Message {
        kind: MessageKind::File,
        ..text(peer, &descriptor.to_body().unwrap())
    }
}

/// Fills `store`, then searches it as the window does: what is found, in which order, and how paging goes on.
fn search_keeps_its_promises(store: &impl Messages) {
    let never = AtomicBool::new(false);
    for i in 0..300 {
        let body = match i % 10 {
            0 => format!("Lunch at the Café {i}?"),
            5 => format!("cafeteria {i}"),
            _ => format!("nothing here {i}"),
        };
        store.append_message(&text("bob", &body)).unwrap();
        store
            .append_message(&text("carol", &format!("carol's café {i}")))
            .unwrap();
    }
    store.append_message(&file("bob", "Quarterly Café report.pdf")).unwrap();
    let bob = username("bob");
    let query = Query::parse("CAFE").unwrap();

    // Newest first, up to the limit, with the count of all; the file found by its name.
    let first = store.search_chat(&bob, &query, None, 7, &never).unwrap();
    assert_eq!(first.total, 61, "30 texts, 30 cafeterias, one file");
    assert_eq!(first.hits.len(), 7);
    assert_eq!(first.hits[0].entry.message.kind, MessageKind::File);
    let name = searchable_text(MessageKind::File, &first.hits[0].entry.message.body).unwrap();
    assert_eq!(&name[first.hits[0].highlights[0].clone()], "Café");
    let texts: Vec<&str> = first.hits[1..].iter().map(|h| h.entry.message.body.as_str()).collect();
    assert_eq!(
        texts,
        [
            "cafeteria 295",
            "Lunch at the Café 290?",
            "cafeteria 285",
            "Lunch at the Café 280?",
            "cafeteria 275",
            "Lunch at the Café 270?"
        ]
    );

    // Paging on from the last hit visits every match once, in order.
    let mut seen: Vec<u64> = first.hits.iter().map(|h| h.entry.cursor.value()).collect();
    loop {
        let before = Cursor::from_value(*seen.last().unwrap());
        let page = store.search_chat(&bob, &query, Some(before), 25, &never).unwrap();
        assert_eq!(page.total, 61 - seen.len(), "the count is of what is older");
        if page.hits.is_empty() {
            break;
        }
        seen.extend(page.hits.iter().map(|h| h.entry.cursor.value()));
    }
    assert_eq!(seen.len(), 61);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats");

    // Words must all match; the descriptor's fields (key, digest) are not searched; other chats stay apart.
    let both = Query::parse("lunch café").unwrap();
    assert_eq!(store.search_chat(&bob, &both, None, 100, &never).unwrap().total, 30);
    for field in ["sha256", "application", "blob"] {
        let query = Query::parse(field).unwrap();
        assert_eq!(
            store.search_chat(&bob, &query, None, 10, &never).unwrap().total,
            0,
            "{field}"
        );
    }
    assert_eq!(
        store
            .search_chat(&username("carol"), &query, None, 1, &never)
            .unwrap()
            .total,
        300
    );
    assert_eq!(
        store
            .search_chat(&username("dave"), &query, None, 1, &never)
            .unwrap()
            .total,
        0
    );

    let cancelled = AtomicBool::new(true);
    let stopped = store.search_chat(&bob, &query, None, 10, &cancelled).unwrap_err();
    assert!(matches!(stopped, Error::SearchCancelled), "{stopped:?}");
}

#[test]
fn the_sealed_history_searches_by_words_prefixes_and_pages() {
    let (_dir, _key, history) = open();
    search_keeps_its_promises(&history);
}

#[test]
fn the_memory_store_searches_the_same() {
    search_keeps_its_promises(&MemoryStore::default());
}
