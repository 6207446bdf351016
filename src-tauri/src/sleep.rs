//! Locks Magpie when the computer goes to sleep or its session is locked, where the platform tells us: on Linux,
//! systemd-logind's `PrepareForSleep(true)` and this session's `Lock` signals on the system bus, with a delay lock
//! on sleep so the lock screen is drawn before the computer sleeps. (Elsewhere the idle time and Ctrl+L remain.)
//! Without a passphrase set, nothing happens.

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

/// Locks the window, if a passphrase is set (the lock screen needs one); `hold` (a delay on sleep) is let go once
/// the lock screen had time to be drawn.
fn lock<R: Runtime>(app: &AppHandle<R>, why: &'static str, hold: impl Send + 'static) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let state = app.state::<crate::state::AppState>();
        match crate::commands::lock::lock_window(&app, &state).await {
            Ok(()) => {
                tracing::info!(why, "locked");
                // A few frames for the lock screen, so the screen does not sleep showing the chats.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(error) => tracing::debug!(why, %error, "not locked"),
        }
        drop(hold);
    });
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use dbus::arg::OwnedFd;
    use dbus::blocking::Connection;
    use dbus::message::MatchRule;
    use tauri::{AppHandle, Runtime};

    const LOGIN1: &str = "org.freedesktop.login1";

    /// A delay lock on sleep: logind waits for its release (at most its InhibitDelayMaxSec, 5 s by default) before
    /// the computer sleeps, so the lock screen is up first.
    fn inhibit(bus: &Connection) -> Option<OwnedFd> {
        let manager = bus.with_proxy(LOGIN1, "/org/freedesktop/login1", Duration::from_secs(2));
        let why = ("sleep", "Magpie", "Locking Magpie before the computer sleeps", "delay");
        match manager.method_call::<(OwnedFd,), _, _, _>("org.freedesktop.login1.Manager", "Inhibit", why) {
            Ok((fd,)) => Some(fd),
            Err(error) => {
                tracing::debug!(%error, "no delay on sleep");
                None
            }
        }
    }

    pub fn listen<R: Runtime>(app: &AppHandle<R>) -> Result<(), dbus::Error> {
        let bus = Connection::new_system()?;
        let held = Arc::new(Mutex::new(inhibit(&bus)));
        let resumed = Arc::new(AtomicBool::new(false));
        let sleeping = MatchRule::new_signal("org.freedesktop.login1.Manager", "PrepareForSleep").with_sender(LOGIN1);
        let (handle, hold, woke) = (app.clone(), held.clone(), resumed.clone());
        bus.add_match(sleeping, move |(starting,): (bool,), _, _| {
            match starting {
                true => {
                    let delay = hold.lock().ok().and_then(|mut held| held.take());
                    super::lock(&handle, "the computer is going to sleep", delay);
                }
                // Taken again outside this callback (a call from inside one would wait on itself).
                false => woke.store(true, Relaxed),
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
                super::lock(&handle, "the session was locked", ());
                true
            })?;
        }
        loop {
            bus.process(Duration::from_secs(3600))?;
            if resumed.swap(false, Relaxed) {
                if let Ok(mut held) = held.lock() {
                    *held = inhibit(&bus);
                }
            }
        }
    }
}
