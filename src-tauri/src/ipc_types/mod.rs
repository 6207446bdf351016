//! Types that cross IPC. TypeScript twins are generated into `ui/src/lib/bindings.ts`.

mod demo;
mod events;
mod views;

use serde::Serialize;
use ts_rs::TS;

pub use crate::error::{IpcError, IpcErrorCode};
pub use demo::*;
pub use events::{SendRefusal, UiEvent, EVENT, ONBOARDING_EVENT};
pub use views::*;

/// What the About box and the first screen show about this installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct AppInfo {
    pub name: String,
    pub version: String,
    /// Where this installation keeps its profiles and history.
    pub data_dir: String,
    pub credential_store: CredentialStore,
}

/// The platform credential store that holds private keys, and whether it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct CredentialStore {
    pub backend: String,
    pub available: bool,
    pub problem: Option<String>,
}

impl From<magpie_core::keystore::CredentialStoreStatus> for CredentialStore {
    fn from(status: magpie_core::keystore::CredentialStoreStatus) -> Self {
        Self {
            backend: status.backend,
            available: status.available,
            problem: status.problem,
        }
    }
}

/// The whole of `ui/src/lib/bindings.ts`, generated from the types above.
pub fn typescript_bindings() -> String {
    let cfg = ts_rs::Config::new();
    let declarations = [
        AppInfo::decl(&cfg),
        CredentialStore::decl(&cfg),
        IpcError::decl(&cfg),
        IpcErrorCode::decl(&cfg),
        ProfileSummary::decl(&cfg),
        ProfilesView::decl(&cfg),
        LockedView::decl(&cfg),
        LockStatus::decl(&cfg),
        RelayChoice::decl(&cfg),
        RelayProbe::decl(&cfg),
        OnboardingStage::decl(&cfg),
        IdentityView::decl(&cfg),
        Direction::decl(&cfg),
        Delivery::decl(&cfg),
        MessageItem::decl(&cfg),
        SearchChat::decl(&cfg),
        SearchHit::decl(&cfg),
        SnippetPiece::decl(&cfg),
        SearchSummary::decl(&cfg),
        BackupProgress::decl(&cfg),
        BackupDone::decl(&cfg),
        PickedBackup::decl(&cfg),
        ExportDone::decl(&cfg),
        FileItem::decl(&cfg),
        ThumbnailItem::decl(&cfg),
        TransferState::decl(&cfg),
        FileStatus::decl(&cfg),
        MessagePage::decl(&cfg),
        ChatSummary::decl(&cfg),
        DiscardedView::decl(&cfg),
        IncomingRequest::decl(&cfg),
        RequestsView::decl(&cfg),
        SafetyNumberView::decl(&cfg),
        ConnectionState::decl(&cfg),
        UiEvent::decl(&cfg),
        SendRefusal::decl(&cfg),
        Theme::decl(&cfg),
        Settings::decl(&cfg),
        DemoAttack::decl(&cfg),
        WireAction::decl(&cfg),
        VerdictKind::decl(&cfg),
        DemoVerdict::decl(&cfg),
        DemoParty::decl(&cfg),
        DemoStatus::decl(&cfg),
        DemoActor::decl(&cfg),
        DemoField::decl(&cfg),
        WireEnvelope::decl(&cfg),
        DemoStep::decl(&cfg),
        DemoMessage::decl(&cfg),
        DemoRun::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/ipc_types/ by `npm run bindings`. Do not edit: a test fails when stale.\n",
    );
    for declaration in declarations {
        out.push_str("\nexport ");
        out.push_str(&declaration);
        out.push('\n');
    }
    out
}
