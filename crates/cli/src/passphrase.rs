//! Passphrases: from a file named by an environment variable (scripts, tests), or typed on the terminal without
//! echo. `MAGPIE_PASSPHRASE_FILE`'s first line unlocks a locked profile; a backup or a restore takes its second
//! line, or its first when it has one line. A new lock passphrase comes from `MAGPIE_NEW_PASSPHRASE_FILE`.

use std::io::IsTerminal;

use zeroize::Zeroizing;

use crate::commands::Failure;

/// The environment variable naming a file whose first line is the passphrase.
pub const PASSPHRASE_FILE: &str = "MAGPIE_PASSPHRASE_FILE";
/// The environment variable naming a file whose first line is a new lock passphrase (`magpie lock`).
pub const NEW_PASSPHRASE_FILE: &str = "MAGPIE_NEW_PASSPHRASE_FILE";

/// A backup's or a restore's passphrase; typed twice on a terminal when `twice` (a new backup), so a typo does
/// not lock it away.
pub fn read(twice: bool) -> Result<Zeroizing<String>, Failure> {
    match from_file(PASSPHRASE_FILE, 1)? {
        Some(passphrase) => Ok(passphrase),
        None => typed("Passphrase: ", twice, PASSPHRASE_FILE),
    }
}

/// The passphrase that unlocks this profile.
pub fn unlock() -> Result<Zeroizing<String>, Failure> {
    match from_file(PASSPHRASE_FILE, 0)? {
        Some(passphrase) => Ok(passphrase),
        None => typed("This profile is locked. Passphrase: ", false, PASSPHRASE_FILE),
    }
}

/// A new lock passphrase, typed twice.
pub fn new_lock() -> Result<Zeroizing<String>, Failure> {
    match from_file(NEW_PASSPHRASE_FILE, 0)? {
        Some(passphrase) => Ok(passphrase),
        None => typed("New passphrase: ", true, NEW_PASSPHRASE_FILE),
    }
}

/// Line `index` (from 0) of the file named by `var`, or its last line when it has fewer; `None` without `var`.
fn from_file(var: &str, index: usize) -> Result<Option<Zeroizing<String>>, Failure> {
    let Some(path) = std::env::var_os(var) else {
        return Ok(None);
    };
    let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
        Failure::Usage(format!(
            "cannot read the passphrase from {}: {e}",
            path.to_string_lossy()
        ))
    })?);
    let lines: Vec<&str> = text.lines().collect();
    let line = lines.get(index).or(lines.last()).copied().unwrap_or_default();
    Ok(Some(Zeroizing::new(line.to_owned())))
}

/// Asks on the terminal; without one, names the variable `file_var` that would give it instead.
fn typed(text: &str, twice: bool, file_var: &str) -> Result<Zeroizing<String>, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "no terminal to ask for the passphrase on: set {file_var} to a file holding it"
        )));
    }
    let first = prompt(text)?;
    if twice && *prompt("Again: ")? != *first {
        return Err(Failure::Usage("the two passphrases differ".into()));
    }
    Ok(first)
}

fn prompt(text: &str) -> Result<Zeroizing<String>, Failure> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| Failure::Usage(format!("cannot read the passphrase: {e}")))
}
