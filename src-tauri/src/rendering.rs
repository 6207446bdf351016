//! How WebKitGTK draws. Its accelerated compositing needs GL; on a machine without a GPU (a VM, a remote
//! session, CI) that GL is Mesa's software rasterizer, and each frame of Magpie's window cost 50–130 ms there
//! against about 10 ms on WebKit's plain software path, which draws the same page.

use std::path::Path;

/// WebKitGTK's switch to its software path; a value the user set is left alone.
pub const DISABLE_COMPOSITING_ENV: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";

/// True when `dri` (normally `/dev/dri`) offers no GPU render node.
pub fn lacks_gpu(dri: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dri) else {
        return true;
    };
    !entries
        .flatten()
        .any(|entry| entry.file_name().to_string_lossy().starts_with("renderD"))
}

/// Chooses the software path when there is no GPU. Call before any thread starts (it sets an environment
/// variable, which the web process inherits).
pub fn choose() {
    if cfg!(target_os = "linux")
        && std::env::var_os(DISABLE_COMPOSITING_ENV).is_none()
        && lacks_gpu(Path::new("/dev/dri"))
    {
        std::env::set_var(DISABLE_COMPOSITING_ENV, "1");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_render_node_means_a_gpu() {
        let dri = tempfile::tempdir().unwrap();
        std::fs::write(dri.path().join("card0"), b"").unwrap();
        assert!(
            lacks_gpu(dri.path()),
            "a card without a render node (a display-only device) is not a GPU"
        );
        std::fs::write(dri.path().join("renderD128"), b"").unwrap();
        assert!(!lacks_gpu(dri.path()));
        assert!(lacks_gpu(&dri.path().join("missing")));
    }
}
