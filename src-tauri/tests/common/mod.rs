//! What the desktop's integration tests share: the app on Tauri's mock runtime with its real commands, and a
//! stand-in notification daemon on the test's private D-Bus session.
#![allow(dead_code, reason = "each test binary uses some of these")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use magpie_core::{Client, Event};
use magpie_desktop::state::AppState;
use serde_json::Value;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{App, Manager as _, WebviewWindow};

pub const APP_ORIGIN: &str = "http://localhost:1420";
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Desktop {
    pub app: App<MockRuntime>,
    pub window: WebviewWindow<MockRuntime>,
}

impl Desktop {
    pub fn start() -> Self {
        let app = magpie_desktop::build_app(mock_builder(), tauri::generate_context!(test = true)).unwrap();
        let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        Self { app, window }
    }

    /// The open profile's client, as the commands see it.
    pub fn client(&self) -> Client {
        tauri::async_runtime::block_on(self.app.state::<AppState>().client()).unwrap()
    }

    pub fn call(&self, command: &str, args: Value) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: command.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: APP_ORIGIN.parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&self.window, request).map(|body| body.deserialize::<Value>().unwrap())
    }

    pub fn ok(&self, command: &str, args: Value) -> Value {
        self.call(command, args.clone())
            .map_err(|error| format!("{command} {args} failed: {error}"))
            .unwrap()
    }

    /// Polls `command` until `done` holds.
    pub fn wait_for(&self, command: &str, args: Value, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let answer = self.ok(command, args.clone());
            if done(&answer) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{command} never became what was awaited: {answer}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One notification a daemon was asked to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The id the daemon gave it.
    pub id: u32,
    pub summary: String,
    pub body: String,
    pub actions: Vec<String>,
}

/// What the stand-in daemon saw: notifications shown, and ids the app asked it to close.
#[derive(Debug, Default)]
pub struct Seen {
    pub shown: Vec<Shown>,
    pub closed: Vec<u32>,
}

pub type Notifications = Arc<Mutex<Seen>>;

/// Records notifications instead of showing them; owns org.freedesktop.Notifications on the test's private session
/// bus, where the app's notification plugin finds it like a desktop's daemon.
struct FakeNotificationDaemon(Notifications);

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl FakeNotificationDaemon {
    #[allow(clippy::too_many_arguments, reason = "the freedesktop Notify signature")]
    fn notify(
        &self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut seen = self.0.lock().unwrap();
        let id = u32::try_from(seen.shown.len() + 1).unwrap();
        seen.shown.push(Shown {
            id,
            summary,
            body,
            actions,
        });
        id
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into(), "actions".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        ("fake".into(), "magpie tests".into(), "1".into(), "1.2".into())
    }

    fn close_notification(&self, id: u32) {
        self.0.lock().unwrap().closed.push(id);
    }
}

/// The daemon's connection (it serves while this lives) and what it sees.
pub async fn notification_daemon() -> (zbus::Connection, Notifications) {
    let seen = Notifications::default();
    let connection = zbus::connection::Builder::session()
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .serve_at("/org/freedesktop/Notifications", FakeNotificationDaemon(seen.clone()))
        .unwrap()
        .build()
        .await
        .expect("the notification name is free on the test's private D-Bus session");
    (connection, seen)
}

/// A click on notification `id`, as a daemon reports it (the spec's `default` action).
pub async fn click(daemon: &zbus::Connection, id: u32) {
    daemon
        .emit_signal(
            None::<&str>,
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications",
            "ActionInvoked",
            &(id, "default"),
        )
        .await
        .unwrap();
}

/// Waits until the daemon has shown `n` notifications; their summaries and bodies.
pub fn wait_shown(seen: &Notifications, n: usize) -> Vec<Shown> {
    let deadline = Instant::now() + PATIENCE;
    while seen.lock().unwrap().shown.len() < n {
        assert!(
            Instant::now() < deadline,
            "{n} notifications never came: {:?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.lock().unwrap().shown.clone()
}

pub fn error_code(error: Value) -> String {
    error["code"].as_str().unwrap_or_default().to_owned()
}

pub async fn wait_event(events: &mut tokio::sync::broadcast::Receiver<Event>, want: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.unwrap();
            if want(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the awaited event came")
}
