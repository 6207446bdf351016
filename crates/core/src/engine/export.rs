//! Exporting a chat to readable files: the user's copy, outside Magpie and not encrypted (the face warns first).
//!
//! For `chat.txt` chosen, it writes `chat.txt` (one line per message), `chat.json` (the same as JSON) and, when the
//! chat has files kept on this computer, a folder `chat files/` beside them holding those files.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use magpie_proto::Username;
use serde::Serialize;

use super::{Client, MessageView};
use crate::error::{Error, Result};
use crate::history::{Cursor, Direction, FileState};
use crate::store::prelude::*;

/// Messages read per page while exporting.
const PAGE: usize = 1_000;

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// Messages written.
    pub messages: usize,
    /// Files copied beside them.
    pub files: usize,
    /// The JSON file written beside the text.
    pub json: PathBuf,
}

#[derive(Serialize)]
struct Exported<'a> {
    #[serde(flatten)]
    message: &'a MessageView,
    /// Where the file was copied, relative to the export (files kept on this computer).
    #[serde(skip_serializing_if = "Option::is_none")]
    saved_as: Option<String>,
}

impl<H: Home> Client<H> {
    /// Writes the chat with `peer` to `text` and a `.json` beside it, oldest first, with its kept files in a
    /// folder beside them. Each file is written whole or not at all.
    pub async fn export_chat(&self, peer: &Username, text: &Path) -> Result<ExportSummary> {
        let stem = text
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("chat with {peer}"));
        let dir = text.parent().unwrap_or(Path::new("."));
        // Beside the text, never over it (a name chosen as "chat.json").
        let json_path = match dir.join(format!("{stem}.json")) {
            same if same == text => dir.join(format!("{stem}.messages.json")),
            other => other,
        };
        let files_dir = dir.join(format!("{stem} files"));
        let mut lines = String::new();
        let mut exported = Vec::new();
        let mut files = 0;
        let mut after: Option<Cursor> = None;
        loop {
            let page = self.store().messages_after(peer, after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.cursor);
            for entry in &page {
                let view = MessageView::from(entry);
                let saved_as = match &view.file {
                    Some(file) if self.kept(entry.message.id)? => {
                        std::fs::create_dir_all(&files_dir).map_err(|e| write_error(&files_dir, &e))?;
                        let name = unique_name(&files_dir, &file.name);
                        self.save_file(entry.message.id, &files_dir.join(&name)).await?;
                        files += 1;
                        Some(format!("{stem} files/{name}"))
                    }
                    _ => None,
                };
                lines.push_str(&line(&view, peer, saved_as.as_deref()));
                exported.push((view, saved_as));
            }
        }
        let json: Vec<Exported<'_>> = exported
            .iter()
            .map(|(message, saved_as)| Exported {
                message,
                saved_as: saved_as.clone(),
            })
            .collect();
        let json_text = serde_json::to_vec_pretty(&json).map_err(|_| Error::Crypto("encoding failed"))?;
        write_whole(&json_path, &json_text)?;
        write_whole(text, lines.as_bytes())?;
        Ok(ExportSummary {
            messages: exported.len(),
            files,
            json: json_path,
        })
    }

    fn kept(&self, id: uuid::Uuid) -> Result<bool> {
        Ok(self
            .store()
            .file_record(id)?
            .is_some_and(|record| record.state == FileState::Kept))
    }
}

/// `[2026-12-07 13:05 UTC] bob: text`, or a file's line.
fn line(view: &MessageView, peer: &Username, saved_as: Option<&str>) -> String {
    let who = match view.direction {
        Direction::Outgoing => "me",
        Direction::Incoming => peer.as_str(),
    };
    let what = match (&view.file, saved_as) {
        (Some(file), Some(saved)) => format!("[file {}, {} bytes: {saved}]", file.name, file.size),
        (Some(file), None) => format!("[file {}, {} bytes, not on this computer]", file.name, file.size),
        (None, _) => view.body.replace('\n', "\n    "),
    };
    format!("[{}] {who}: {what}\n", utc_minute(view.sent_at))
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC` (days to a civil date: Howard Hinnant's algorithm).
pub fn utc_minute(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let minutes = (secs % 86_400) / 60;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// `name`, or `name (2)`, … : the first not taken in `dir`.
fn unique_name(dir: &Path, name: &str) -> String {
    if !dir.join(name).exists() {
        return name.to_owned();
    }
    let path = Path::new(name);
    let stem = path.file_stem().map_or(name.into(), |s| s.to_string_lossy());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2..)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| !dir.join(candidate).exists())
        .unwrap_or_else(|| name.to_owned())
}

fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| write_error(path, &e))?;
    temp.write_all(bytes).map_err(|e| write_error(path, &e))?;
    temp.as_file().sync_all().map_err(|e| write_error(path, &e))?;
    temp.persist(path).map_err(|e| write_error(path, &e.error))?;
    Ok(())
}

fn write_error(path: &Path, error: &std::io::Error) -> Error {
    Error::FileWrite {
        path: path.to_owned(),
        source: std::io::Error::new(error.kind(), error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_minutes() {
        assert_eq!(super::utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc_minute(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(super::utc_minute(1_796_649_268), "2026-12-07 13:14 UTC"); // date -u -d @1796649268
    }
}
