//! Passphrases for backups: from the file named by `MAGPIE_PASSPHRASE_FILE` (scripts, tests), or typed on the
//! terminal without echo.

use std::io::IsTerminal;

use zeroize::Zeroizing;

use crate::commands::Failure;

/// The environment variable naming a file whose first line is the passphrase.
pub const PASSPHRASE_FILE: &str = "MAGPIE_PASSPHRASE_FILE";

/// The passphrase; typed twice on a terminal when `twice` (a new backup), so a typo does not lock it away.
pub fn read(twice: bool) -> Result<Zeroizing<String>, Failure> {
    if let Some(path) = std::env::var_os(PASSPHRASE_FILE) {
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
            Failure::Usage(format!(
                "cannot read the passphrase from {}: {e}",
                path.to_string_lossy()
            ))
        })?);
        let line = text.lines().next().unwrap_or_default();
        return Ok(Zeroizing::new(line.to_owned()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "no terminal to ask for the passphrase on: set {PASSPHRASE_FILE} to a file holding it"
        )));
    }
    let first = prompt("Passphrase: ")?;
    if twice && *prompt("Passphrase again: ")? != *first {
        return Err(Failure::Usage("the two passphrases differ".into()));
    }
    Ok(first)
}

fn prompt(text: &str) -> Result<Zeroizing<String>, Failure> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| Failure::Usage(format!("cannot read the passphrase: {e}")))
}
