//! The tray icon: the unread count (the icon's label on Linux and macOS, the tooltip on Windows and macOS, the
//! window's badge where the desktop shows one) and a menu: Open Magpie, Lock, Quit. With "Keep running in the tray"
//! on, closing the window hides it and Magpie keeps receiving.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};

use tauri::{AppHandle, Emitter as _, Manager as _, Runtime};

use crate::ipc_types::{UiEvent, EVENT};
use crate::state::AppState;

/// The tray icon's id.
pub const TRAY_ID: &str = "magpie";

/// Puts the icon in the tray. Where the desktop has no tray library (Linux without libayatana-appindicator), says
/// so in the log and goes on without one.
pub fn create<R: Runtime>(app: &AppHandle<R>) {
    // libappindicator-sys panics when the library is missing, in the first call that needs it.
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(app)));
    match built {
        Ok(Ok(_)) => tracing::debug!("tray icon shown"),
        Ok(Err(error)) => tracing::warn!(%error, "no tray icon"),
        Err(_) => tracing::warn!("no tray icon: this desktop has no tray library (libayatana-appindicator3)"),
    }
}

fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<TrayIcon<R>> {
    let menu = Menu::with_items(
        app,
        &[
            &MenuItem::with_id(app, "open", "Open Magpie", true, None::<&str>)?,
            &MenuItem::with_id(app, "lock", "Lock", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "quit", "Quit Magpie", true, None::<&str>)?,
        ],
    )?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Magpie")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(on_menu)
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_window(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, event: MenuEvent) {
    match event.id().as_ref() {
        "open" => show_window(app),
        "lock" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let state = app.state::<AppState>();
                if let Err(error) = crate::commands::lock::lock_window(&app, &state).await {
                    // No passphrase set (or no profile): the window says why.
                    show_window(&app);
                    let _ = app.emit(EVENT, UiEvent::Notice { message: error.message });
                }
            });
        }
        "quit" => app.exit(0),
        _ => {}
    }
}

/// Shows the window, brought to the front.
pub fn show_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// Shows `count` unread messages on the tray icon and the window's badge (nothing for 0).
pub fn show_unread<R: Runtime>(app: &AppHandle<R>, count: usize) {
    let label = (count > 0).then(|| count.to_string());
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let tooltip = match count {
            0 => "Magpie".to_owned(),
            1 => "Magpie: 1 unread message".to_owned(),
            n => format!("Magpie: {n} unread messages"),
        };
        let _ = tray.set_tooltip(Some(tooltip));
        let _ = tray.set_title(label.as_deref());
    }
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.set_badge_count(i64::try_from(count).ok().filter(|n| *n > 0));
    }
}

/// A count is due or under way: others asked meanwhile join it.
static COUNT_DUE: AtomicBool = AtomicBool::new(false);

/// Counts the open profile's unread messages again soon, once for a burst of arrivals (a catch-up brings
/// hundreds; each count reads every chat).
pub fn refresh_unread_soon<R: Runtime>(app: &AppHandle<R>) {
    if COUNT_DUE.swap(true, Relaxed) {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        COUNT_DUE.store(false, Relaxed);
        refresh_unread(&app).await;
    });
}

/// One count at a time, so a later one lands last.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Counts the open profile's unread messages (up to 100 per chat) and shows the count.
pub async fn refresh_unread<R: Runtime>(app: &AppHandle<R>) {
    let _one_at_a_time = COUNTING.lock().await;
    let client = match app.state::<AppState>().active().lock().await.as_ref() {
        Some(active) => active.client.clone(),
        None => return show_unread(app, 0),
    };
    let count = tauri::async_runtime::spawn_blocking(move || {
        let contacts = client.contacts().unwrap_or_default();
        contacts
            .iter()
            .map(|c| client.unread(&c.username, crate::convert::UNREAD_CAP).unwrap_or(0))
            .sum::<usize>()
    })
    .await
    .unwrap_or(0);
    show_unread(app, count);
}

/// Whether closing the window should keep Magpie in the tray by default: where the desktop shows tray icons. On
/// Linux that is where a StatusNotifierWatcher runs (KDE, Xfce, Cinnamon, GNOME with its AppIndicator extension).
pub fn desktop_has_tray() -> bool {
    #[cfg(target_os = "linux")]
    {
        let watcher = || -> Result<bool, dbus::Error> {
            let bus = dbus::blocking::Connection::new_session()?;
            let proxy = bus.with_proxy(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                std::time::Duration::from_millis(500),
            );
            let (owned,): (bool,) = proxy.method_call(
                "org.freedesktop.DBus",
                "NameHasOwner",
                ("org.kde.StatusNotifierWatcher",),
            )?;
            Ok(owned)
        };
        watcher().unwrap_or(false)
    }
    #[cfg(not(target_os = "linux"))]
    true
}
