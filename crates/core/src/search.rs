//! Matching a search against message text: words and prefixes, case and accents ignored.
//!
//! Both the query and the text are *folded*: canonically decomposed (NFD), combining marks dropped, lower-cased,
//! and the few letters whose lower case is not their case fold written as the fold ("ß" → "ss", final "ς" → "σ").
//! So "Café", "CAFE" and "café" all fold to "cafe". A query is split into words; a text matches when every word is
//! the start of a word of the text ("lun" finds "lunch", not "unlunch"). In scripts written without spaces (Han,
//! kana, Thai) a word matches anywhere. Nothing here is stored: the history is scanned, block by block, and the
//! folded text lives only in a scratch buffer (see `History::search_chat`).

use std::borrow::Cow;
use std::ops::Range;

use magpie_proto::MessageKind;
use memchr::memmem::Finder;
use serde::Deserialize;
use unicode_normalization::char::{decompose_canonical, is_combining_mark};

use zeroize::Zeroizing;

use crate::error::Result;
use crate::history::Entry;

/// At most this many words of a query are used; the rest are ignored.
pub const MAX_QUERY_WORDS: usize = 16;
/// A query word is cut to this many bytes once folded.
const MAX_WORD_BYTES: usize = 128;
/// Only this much of what was typed is read (a pasted page is not a query).
const MAX_QUERY_BYTES: usize = 1024;

/// A parsed search: the folded words to find. `Debug` shows how many, never which.
#[derive(Clone)]
pub struct Query {
    words: Vec<Word>,
}

#[derive(Clone)]
struct Word {
    finder: Finder<'static>,
    /// Matches inside a word too (a script without spaces).
    anywhere: bool,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query").field("words", &self.words.len()).finish()
    }
}

impl Query {
    /// The query in `text`, or `None` if it holds no word.
    pub fn parse(text: &str) -> Option<Self> {
        let mut folded = String::new();
        fold_into(truncate(text, MAX_QUERY_BYTES), &mut folded, None);
        let mut words: Vec<String> = folded
            .split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .map(|word| truncate(word, MAX_WORD_BYTES).to_owned())
            .collect();
        // Longest first: the rarest word usually fails a text soonest. A word that starts another is redundant.
        words.sort_by_key(|word| std::cmp::Reverse(word.len()));
        words.dedup();
        let mut kept: Vec<String> = Vec::new();
        for word in words {
            if !kept.iter().any(|longer| longer.starts_with(&word)) {
                kept.push(word);
            }
        }
        kept.truncate(MAX_QUERY_WORDS);
        if kept.is_empty() {
            return None;
        }
        let words = kept
            .into_iter()
            .map(|word| Word {
                anywhere: word.chars().next().is_some_and(is_unspaced),
                finder: Finder::new(word.as_bytes()).into_owned(),
            })
            .collect();
        Some(Self { words })
    }

    /// A matcher with its own scratch buffer (one per thread).
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher {
            query: self,
            folded: Zeroizing::new(String::new()),
        }
    }
}

/// Tests texts against a [`Query`], reusing one buffer for the folded text (wiped when dropped). `Debug` shows no
/// text.
pub struct Matcher<'q> {
    query: &'q Query,
    folded: Zeroizing<String>,
}

impl std::fmt::Debug for Matcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("query", self.query)
            .finish_non_exhaustive()
    }
}

impl Matcher<'_> {
    /// Whether every word of the query starts a word of `text`.
    pub fn matches(&mut self, text: &str) -> bool {
        self.folded.clear();
        fold_into(text, &mut self.folded, None);
        let folded = self.folded.as_str();
        self.query
            .words
            .iter()
            .all(|word| find_word(folded, word).next().is_some())
    }

    /// The byte ranges of `text` to highlight: every place a query word matches (the prefix it matched), in order, merged where they
    /// touch. Empty if `text` does not match.
    pub fn highlights(&mut self, text: &str) -> Vec<Range<usize>> {
        self.folded.clear();
        let mut origin = Vec::with_capacity(text.len());
        fold_into(text, &mut self.folded, Some(&mut origin));
        let folded = self.folded.as_str();
        let mut ranges = Vec::new();
        for word in &self.query.words {
            let before = ranges.len();
            for at in find_word(folded, word) {
                let end = at + word.finder.needle().len();
                if let (Some(first), Some(last)) = (origin.get(at), origin.get(end - 1)) {
                    // Through the marks that follow (they fold to nothing): never half of "é" or of "ते".
                    let marks = text[last.end..].chars().take_while(|c| is_combining_mark(*c));
                    ranges.push(first.start..last.end + marks.map(char::len_utf8).sum::<usize>());
                }
            }
            if ranges.len() == before {
                return Vec::new();
            }
        }
        ranges.sort_by_key(|range| range.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        merged
    }
}

/// One chat's matches, newest first.
#[derive(Debug, Default)]
pub struct ChatMatches {
    /// Up to the limit asked for.
    pub hits: Vec<Hit>,
    /// How many messages matched in all.
    pub total: usize,
}

/// A matching message.
#[derive(Debug)]
pub struct Hit {
    /// The message and its place.
    pub entry: Entry,
    /// What to highlight in its [`searchable_text`].
    pub highlights: Vec<Range<usize>>,
}

/// Gathers a chat's matches as a store walks its messages newest first.
pub(crate) struct Collector<'q> {
    matcher: Matcher<'q>,
    limit: usize,
    found: ChatMatches,
}

impl ChatMatches {
    pub(crate) fn collect(query: &Query, limit: usize) -> Collector<'_> {
        Collector {
            matcher: query.matcher(),
            limit,
            found: ChatMatches::default(),
        }
    }
}

impl Collector<'_> {
    /// Tests one message (its kind and stored body); `entry` decodes it whole, called only for a kept hit.
    pub(crate) fn consider(
        &mut self,
        kind: MessageKind,
        body: &str,
        entry: impl FnOnce() -> Result<Entry>,
    ) -> Result<()> {
        let Some(text) = searchable_text(kind, body) else {
            return Ok(());
        };
        if !self.matcher.matches(&text) {
            return Ok(());
        }
        self.found.total += 1;
        if self.found.hits.len() < self.limit {
            let highlights = self.matcher.highlights(&text);
            self.found.hits.push(Hit {
                entry: entry()?,
                highlights,
            });
        }
        Ok(())
    }

    pub(crate) fn done(self) -> ChatMatches {
        self.found
    }
}

/// The text a search looks at in a message: a text's body, a file's name as saved (without the invisible characters
/// a sender could hide in it); nothing of receipts and the like.
pub fn searchable_text(kind: MessageKind, body: &str) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        name: Cow<'a, str>,
    }
    match kind {
        MessageKind::Text => Some(Cow::Borrowed(body)),
        MessageKind::File => serde_json::from_str::<Named<'_>>(body)
            .ok()
            .map(|file| Cow::Owned(magpie_proto::file::safe_file_name(&file.name))),
        _ => None,
    }
}

/// A piece of a result's snippet: matched pieces are the ones to highlight. `Debug` shows lengths, never text.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnippetPart {
    /// The text of this piece.
    pub text: String,
    /// Whether a query word matched it.
    pub matched: bool,
}

impl std::fmt::Debug for SnippetPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnippetPart")
            .field("len", &self.text.len())
            .field("matched", &self.matched)
            .finish()
    }
}

/// The part of `text` around its first highlight, at most about `width` characters, cut into plain and matched
/// pieces; line breaks become spaces, and an ellipsis marks text left out.
pub fn snippet(text: &str, highlights: &[Range<usize>], width: usize) -> Vec<SnippetPart> {
    let (first, first_end) = highlights.first().map_or((0, 0), |range| (range.start, range.end));
    // Some context before the first match, then as much after as fits.
    let lead = width / 4;
    let mut start = text[..first]
        .char_indices()
        .rev()
        .nth(lead.saturating_sub(1))
        .map_or(0, |(at, _)| at);
    if start > 0 {
        // Begin at a word rather than inside one.
        start += text[start..first].find(char::is_whitespace).unwrap_or(0);
        start += text[start..first].len() - text[start..first].trim_start().len();
    }
    let mut end = text[start..]
        .char_indices()
        .nth(width)
        .map_or(text.len(), |(at, _)| start + at);
    if end < text.len() {
        // End after a word, unless that would lose the first match.
        if let Some(space) = text[start..end]
            .rfind(char::is_whitespace)
            .filter(|&space| start + space >= first_end)
        {
            end = start + space;
        }
    }
    let mut parts = Vec::new();
    let mut push = |piece: &str, matched: bool| {
        if !piece.is_empty() {
            let text = piece.replace(['\n', '\r', '\t'], " ");
            parts.push(SnippetPart { text, matched });
        }
    };
    if start > 0 {
        push("…", false);
    }
    let mut at = start;
    for range in highlights {
        let (from, to) = (range.start.clamp(at, end), range.end.clamp(at, end));
        push(&text[at..from], false);
        push(&text[from..to], true);
        at = to;
    }
    push(&text[at..end], false);
    if end < text.len() {
        push("…", false);
    }
    parts
}

/// Where `word` starts a word of `folded` (anywhere, for scripts without spaces).
fn find_word<'a>(folded: &'a str, word: &'a Word) -> impl Iterator<Item = usize> + 'a {
    word.finder
        .find_iter(folded.as_bytes())
        // A word starts after a non-letter, or right after a character of a script without spaces ("用Python").
        .filter(move |&at| {
            word.anywhere
                || folded[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !c.is_alphanumeric() || is_unspaced(c))
        })
}

/// Appends the fold of `text` to `out`; with `origin`, also the range of `text` each byte of `out` came from.
fn fold_into(text: &str, out: &mut String, origin: Option<&mut Vec<Range<usize>>>) {
    let Some(origin) = origin else {
        return fold_fast(text, out);
    };
    for (at, c) in text.char_indices() {
        let from = out.len();
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            decompose_canonical(c, |part| {
                if !is_combining_mark(part) {
                    push_lower(part, out);
                }
            });
        }
        let source = at..at + c.len_utf8();
        origin.extend(std::iter::repeat_n(source, out.len() - from));
    }
}

/// [`fold_into`] without the origins, for testing every message: runs of ASCII are copied and lower-cased whole
/// (a fifth of a million-message search went to folding a character at a time).
fn fold_fast(mut text: &str, out: &mut String) {
    while !text.is_empty() {
        let ascii = text.bytes().position(|b| !b.is_ascii()).unwrap_or(text.len());
        let from = out.len();
        out.push_str(&text[..ascii]);
        out[from..].make_ascii_lowercase();
        text = &text[ascii..];
        let mut rest = text.chars();
        let Some(c) = rest.next() else { break };
        decompose_canonical(c, |part| {
            if !is_combining_mark(part) {
                push_lower(part, out);
            }
        });
        text = rest.as_str();
    }
}

fn push_lower(c: char, out: &mut String) {
    match c {
        'ß' | 'ẞ' => out.push_str("ss"),
        'ς' => out.push('σ'),
        _ => out.extend(c.to_lowercase()),
    }
}

/// Scripts written without spaces between words: a query word may start anywhere in them.
fn is_unspaced(c: char) -> bool {
    matches!(c,
        '\u{0E00}'..='\u{0EFF}'      // Thai, Lao
        | '\u{1000}'..='\u{109F}'    // Myanmar
        | '\u{1780}'..='\u{17FF}'    // Khmer
        | '\u{3040}'..='\u{30FF}'    // Hiragana, Katakana
        | '\u{3400}'..='\u{4DBF}'    // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'    // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'    // CJK compatibility ideographs
        | '\u{20000}'..='\u{3134F}' // CJK extensions B–G
    )
}

fn truncate(word: &str, max: usize) -> &str {
    let mut end = word.len().min(max);
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    &word[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(query: &str, text: &str) -> bool {
        Query::parse(query).unwrap().matcher().matches(text)
    }

    fn marked(query: &str, text: &str) -> Vec<String> {
        let query = Query::parse(query).unwrap();
        let ranges = query.matcher().highlights(text);
        ranges.into_iter().map(|r| text[r].to_owned()).collect()
    }

    #[test]
    fn words_and_prefixes_match_at_word_starts_only() {
        assert!(hits("lun", "Lunch at noon?"));
        assert!(hits("noon lunch", "Lunch at noon?"));
        assert!(!hits("unch", "Lunch at noon?"));
        assert!(!hits("lunch dinner", "Lunch at noon?"));
        assert!(hits("o'clock", "at five o'clock"));
        assert!(hits("42", "room 42b"));
    }

    #[test]
    fn case_and_accents_fold_both_ways() {
        assert!(hits("cafe", "Un CAFÉ, s'il vous plaît"));
        assert!(hits("Café", "cafe au lait"));
        assert!(hits("strasse", "Straße 5"));
        assert!(!hits("strasse", "Hauptstraße 5"));
        assert!(hits("STRASSE", "die Straße"));
        assert!(hits("ΟΔΟΣ", "οδος"));
        assert!(hits("ça", "Ça va"));
        assert!(hits("zurich", "Zürich"));
        // Composed and decomposed forms are one.
        assert!(hits("e\u{301}te\u{301}", "un été"));
    }

    #[test]
    fn scripts_without_spaces_match_inside_words() {
        assert!(hits("python", "用Python写"));
        assert!(hits("iphone", "私はiPhoneを買った"));
        assert!(hits("中文", "我们说中文吧"));
        assert!(hits("カタカナ", "これはカタカナです"));
        assert!(!hits("中国", "我们说中文吧"));
    }

    #[test]
    fn an_empty_query_is_none_and_redundant_words_go() {
        assert!(Query::parse("").is_none());
        assert!(Query::parse("  ,.!? ").is_none());
        let query = Query::parse("lun lunch LUNCH l").unwrap();
        assert_eq!(query.words.len(), 1);
        let many = (0..40).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(Query::parse(&many).unwrap().words.len(), MAX_QUERY_WORDS);
        let pasted = "lorem ipsum ".repeat(100_000);
        assert!(Query::parse(&pasted).unwrap().words.len() <= MAX_QUERY_WORDS);
        assert_eq!(format!("{query:?}"), "Query { words: 1 }");
    }

    #[test]
    fn highlights_point_into_the_original_text() {
        assert_eq!(marked("cafe", "Un CAFÉ, un café"), ["CAFÉ", "café"]);
        assert_eq!(marked("strass", "Hauptstraße, Straßen"), ["Straß"]);
        assert_eq!(marked("lun no", "Lunch at noon, not now"), ["Lun", "no", "no", "no"]);
        assert_eq!(marked("e\u{301}t", "un été"), ["ét"]);
        assert!(marked("lunch dinner", "lunch").is_empty());
        // A highlight takes the marks that follow its last letter: never half a character on screen.
        assert_eq!(marked("cafe", "cafe\u{301} noir"), ["cafe\u{301}"]);
        assert_eq!(marked("नमस्त", "नमस्ते दोस्त"), ["नमस्ते"]);
        // Overlapping words merge into one range.
        assert_eq!(marked("中文 文吧", "我们说中文吧"), ["中文吧"]);
    }

    fn shown(query: &str, text: &str, width: usize) -> String {
        let query = Query::parse(query).unwrap();
        let ranges = query.matcher().highlights(text);
        snippet(text, &ranges, width)
            .iter()
            .map(|part| {
                if part.matched {
                    format!("[{}]", part.text)
                } else {
                    part.text.clone()
                }
            })
            .collect()
    }

    #[test]
    fn snippets_show_the_first_match_in_context() {
        assert_eq!(shown("lunch", "Lunch?\nSure, lunch", 80), "[Lunch]? Sure, [lunch]");
        let long = format!("{} the café is closed {}", "word ".repeat(50), "more ".repeat(50));
        assert_eq!(shown("cafe", &long, 40), "…the [café] is closed more more more more…");
        let early = format!("café {}", "x".repeat(100));
        assert_eq!(shown("cafe", &early, 10), "[café]…");
        assert_eq!(shown("cafe", "café xxxxxxxxxxxxxxxxxx", 10), "[café]…");
        assert_eq!(shown("cafe", "cafés-and-more", 6), "[café]s-…");
        let parts = snippet("abc", &[], 10);
        assert_eq!(
            parts,
            vec![SnippetPart {
                text: "abc".into(),
                matched: false
            }]
        );
        assert_eq!(format!("{parts:?}"), "[SnippetPart { len: 3, matched: false }]");
    }

    #[test]
    fn the_fast_fold_folds_as_the_one_that_keeps_origins() {
        for text in [
            "",
            "ASCII only",
            "Café Müller, STRASSE ß ẞ ς",
            "中文 and 日本語",
            "e\u{301}te\u{301} 🙂",
            "İstanbul ǅ ﬁ",
        ] {
            let (mut fast, mut slow, mut origin) = (String::new(), String::new(), Vec::new());
            fold_into(text, &mut fast, None);
            fold_into(text, &mut slow, Some(&mut origin));
            assert_eq!(fast, slow, "{text}");
            assert_eq!(origin.len(), slow.len(), "{text}");
        }
    }

    #[test]
    fn folding_never_splits_a_character() {
        let text = "ﬁ ǅ İstanbul ﬃ 🙂 ẞ";
        for query in ["i", "istanbul", "ss", "ǆ", "fi", "ffi"] {
            let query = Query::parse(query).unwrap();
            for range in query.matcher().highlights(text) {
                assert!(text.is_char_boundary(range.start) && text.is_char_boundary(range.end));
            }
        }
    }
}
