//! The tray icon as a desktop panel sees it. The test plays the panel's StatusNotifierWatcher on the session bus, so
//! the app's tray library (libayatana-appindicator) registers its item there as on KDE or Xfce; the test then
//! reads the item's label (the unread count) and clicks its menu's entries over `com.canonical.dbusmenu`, as a
//! panel does when a person clicks them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::message::Header;
use zbus::zvariant::{OwnedValue, Value};

use crate::window::{eventually, WAIT};

/// The items registered: (bus name, object path).
type Items = Arc<Mutex<Vec<(String, String)>>>;

struct Watcher(Items);

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(&self, service: String, #[zbus(header)] header: Header<'_>) {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        // Ayatana's items send their object path; others their bus name (then the path is the spec's).
        let (name, path) = match service.starts_with('/') {
            true => (sender, service),
            false => (service, "/StatusNotifierItem".to_owned()),
        };
        self.0.lock().unwrap().push((name, path));
    }

    fn register_status_notifier_host(&self, _service: String) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(name, _)| name.clone()).collect()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

/// A desktop panel on the test's session bus: the app finds a tray there.
pub struct Panel {
    connection: zbus::Connection,
    items: Items,
}

impl Panel {
    /// Takes the watcher's name; start it before the app, as a desktop session would.
    pub async fn start() -> Self {
        let items = Items::default();
        let connection = zbus::connection::Builder::session()
            .unwrap()
            .name("org.kde.StatusNotifierWatcher")
            .unwrap()
            .serve_at("/StatusNotifierWatcher", Watcher(items.clone()))
            .unwrap()
            .build()
            .await
            .expect("the watcher's name is free on the test's private session bus");
        Self { connection, items }
    }

    /// The app's tray item, once it registered: (bus name, object path). Items of an app that quit stay listed,
    /// so the newest is the running app's.
    async fn item(&self) -> (String, String) {
        eventually("the app's tray icon to register with the panel", WAIT, || async {
            self.items.lock().unwrap().last().cloned()
        })
        .await
    }

    async fn item_property(&self, name: &str) -> OwnedValue {
        let (service, path) = self.item().await;
        let proxy = zbus::fdo::PropertiesProxy::builder(&self.connection)
            .destination(service)
            .unwrap()
            .path(path)
            .unwrap()
            .build()
            .await
            .unwrap();
        let interface = zbus::names::InterfaceName::try_from("org.kde.StatusNotifierItem").unwrap();
        proxy.get(interface, name).await.unwrap()
    }

    /// The label the panel shows beside the icon (the unread count; empty for none).
    pub async fn label(&self) -> String {
        String::try_from(self.item_property("XAyatanaLabel").await).unwrap_or_default()
    }

    /// Clicks the menu entry labelled `label`.
    pub async fn click(&self, label: &str) {
        let (service, _) = self.item().await;
        let menu = zbus::zvariant::OwnedObjectPath::try_from(self.item_property("Menu").await).unwrap();
        let dbusmenu = Some("com.canonical.dbusmenu");
        let layout = self
            .connection
            .call_method(
                Some(service.as_str()),
                menu.as_str(),
                dbusmenu,
                "GetLayout",
                &(0i32, -1i32, Vec::<&str>::new()),
            )
            .await
            .unwrap();
        type Node = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);
        let (_revision, (_root, _props, children)): (u32, Node) = layout.body().deserialize().unwrap();
        let mut labels = Vec::new();
        let id = children.into_iter().find_map(|child| {
            let (id, props, _): Node = child.try_into().ok()?;
            let text = props.get("label").and_then(|v| String::try_from(v.clone()).ok())?;
            labels.push(text.clone());
            (text.replace('_', "") == label).then_some(id)
        });
        let id = id.unwrap_or_else(|| panic!("no {label:?} in the tray menu: {labels:?}"));
        self.connection
            .call_method(
                Some(service.as_str()),
                menu.as_str(),
                dbusmenu,
                "Event",
                &(id, "clicked", Value::from(0i32), 0u32),
            )
            .await
            .unwrap();
    }
}
