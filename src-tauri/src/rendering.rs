//! How WebKitGTK draws. Its accelerated compositing needs GL; on a machine without a GPU (a VM, a remote
//! session, CI) that GL is Mesa's software rasterizer, and each frame of Magpie's window cost 50–130 ms there
//! against about 10 ms on WebKit's plain software path, which draws the same page.
//!
//! Its DMA-BUF renderer (WebKitGTK 2.42+) shares GPU buffers between the web process and the window. Without a
//! GPU there is nothing to share, yet the window's process still brought up EGL on Mesa (and its LLVM) to probe
//! for it: measured with a 1M-message profile (`scripts/perf-app.sh`), turning it off there took start-up from
//! about 1,000 to 530 ms and the window's process from 98 to 93 MB PSS.

use std::path::Path;

/// WebKitGTK's switch to its software path; a value the user set is left alone.
pub const DISABLE_COMPOSITING_ENV: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";

/// WebKitGTK's switch off its DMA-BUF renderer; a value the user set is left alone.
pub const DISABLE_DMABUF_ENV: &str = "WEBKIT_DISABLE_DMABUF_RENDERER";

/// True when `dri` (normally `/dev/dri`) offers no GPU render node.
pub fn lacks_gpu(dri: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dri) else {
        return true;
    };
    !entries
        .flatten()
        .any(|entry| entry.file_name().to_string_lossy().starts_with("renderD"))
}

/// Chooses the software path, without the DMA-BUF renderer, when there is no GPU. Call before any thread starts
/// (it sets environment variables, which the web process inherits).
pub fn choose() {
    if !cfg!(target_os = "linux") || !lacks_gpu(Path::new("/dev/dri")) {
        return;
    }
    if std::env::var_os(DISABLE_COMPOSITING_ENV).is_none() {
        std::env::set_var(DISABLE_COMPOSITING_ENV, "1");
    }
    // Only on the software path: a window the user has composite anyway never drew its first frame without the
    // DMA-BUF renderer (WebKitGTK 2.50).
    if std::env::var(DISABLE_COMPOSITING_ENV).as_deref() == Ok("1") && std::env::var_os(DISABLE_DMABUF_ENV).is_none() {
        std::env::set_var(DISABLE_DMABUF_ENV, "1");
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
