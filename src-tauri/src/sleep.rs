//! Locks Magpie when the computer goes to sleep or its session is locked, where the platform tells us: on Linux,
//! systemd-logind's `PrepareForSleep(true)` and this session's `Lock` signals on the system bus. (Elsewhere the
//! idle time and Ctrl+L remain.) Without a passphrase set, nothing happens.

use tauri::{AppHandle, Manager as _, Runtime};

/// Starts listening, on a thread of its own; without a system bus or logind (a container), it says so in the log.
pub fn watch<R: Runtime>(app: &AppHandle<R>) {
    #[cfg(target_os = "linux")]
    {
        let app = app.clone();
        let spawned = std::thread::Builder::new().name("sleep-watch".into()).spawn(move || {
            if let Err(error) = linux::listen(&app) {
                tracing::info!(%error, "not locking on sleep: no logind on the system bus");
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "not locking on sleep");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = app;
}

/// Locks the window, if a passphrase is set (the lock screen needs one).
fn lock<R: Runtime>(app: &AppHandle<R>, why: &'static str) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let state = app.state::<crate::state::AppState>();
        match crate::commands::lock::lock_window(&app, &state).await {
            Ok(()) => tracing::info!(why, "locked"),
            Err(error) => tracing::debug!(why, %error, "not locked"),
        }
    });
}

#[cfg(target_os = "linux")]
mod linux {
    use std::time::Duration;

    use dbus::blocking::Connection;
    use dbus::message::MatchRule;
    use tauri::{AppHandle, Runtime};

    const LOGIN1: &str = "org.freedesktop.login1";

    pub fn listen<R: Runtime>(app: &AppHandle<R>) -> Result<(), dbus::Error> {
        let bus = Connection::new_system()?;
        let sleeping = MatchRule::new_signal("org.freedesktop.login1.Manager", "PrepareForSleep").with_sender(LOGIN1);
        let handle = app.clone();
        bus.add_match(sleeping, move |(starting,): (bool,), _, _| {
            if starting {
                super::lock(&handle, "the computer is going to sleep");
            }
            true
        })?;
        // This session's lock (the screen locker, `loginctl lock-session`), when logind knows our session.
        let manager = bus.with_proxy(LOGIN1, "/org/freedesktop/login1", Duration::from_secs(2));
        let session: Result<(dbus::Path<'static>,), _> = manager.method_call(
            "org.freedesktop.login1.Manager",
            "GetSessionByPID",
            (std::process::id(),),
        );
        if let Ok((path,)) = session {
            let locking = MatchRule::new_signal("org.freedesktop.login1.Session", "Lock")
                .with_sender(LOGIN1)
                .with_path(path);
            let handle = app.clone();
            bus.add_match(locking, move |(): (), _, _| {
                super::lock(&handle, "the session was locked");
                true
            })?;
        }
        loop {
            bus.process(Duration::from_secs(3600))?;
        }
    }
}
