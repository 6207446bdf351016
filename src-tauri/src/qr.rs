//! The safety number's QR code, drawn here so the UI needs no QR library.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::error::{IpcError, IpcErrorCode};

/// An SVG document of `payload` as a QR code (dark modules on white, with the quiet zone scanners need).
pub fn svg(payload: &str) -> Result<String, IpcError> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .map_err(|e| IpcError::new(IpcErrorCode::Internal, format!("The QR code could not be drawn: {e}")))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_an_svg_document() {
        let drawn = super::svg("magpie-safety:v1:123").unwrap();
        assert!(drawn.starts_with("<?xml"), "{drawn:.40}");
        assert!(drawn.contains("<svg") && drawn.contains("#000000"));
    }
}
