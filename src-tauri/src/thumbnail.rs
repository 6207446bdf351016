//! The small preview an image file carries inside its message: at most 320 pixels on its longer side, a JPEG that
//! fits the protocol's 20 KiB (quality lowered, then the picture made smaller, until it does).

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageReader, Limits};
use magpie_proto::file::{Thumbnail, MAX_THUMBNAIL_BYTES};

/// Images larger than this on disk are sent without a preview (decoding them would take the window's memory).
const MOST_DECODED_BYTES: u64 = 64 << 20;

/// A preview of the image at `path`, if it is one this build decodes (JPEG, PNG, GIF, WebP); `None` otherwise.
pub fn of_file(path: &Path) -> Option<Thumbnail> {
    let mut reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MOST_DECODED_BYTES);
    reader.limits(limits);
    of_image(&reader.decode().ok()?)
}

fn of_image(image: &DynamicImage) -> Option<Thumbnail> {
    for side in [320u32, 240, 160, 96] {
        let small = image.thumbnail(side, side).to_rgb8();
        for quality in [75u8, 60, 45] {
            let mut data = Vec::new();
            JpegEncoder::new_with_quality(Cursor::new(&mut data), quality)
                .encode_image(&small)
                .ok()?;
            if data.len() <= MAX_THUMBNAIL_BYTES {
                return Some(Thumbnail {
                    media_type: "image/jpeg".into(),
                    width: small.width().max(1),
                    height: small.height().max(1),
                    data,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_large_photo_gets_a_small_preview_and_other_files_none() {
        let dir = tempfile::tempdir().unwrap();
        let photo = dir.path().join("photo.png");
        let noisy = image::RgbImage::from_fn(1600, 1200, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, ((x ^ y) % 256) as u8])
        });
        noisy.save(&photo).unwrap();
        let preview = of_file(&photo).unwrap();
        assert_eq!(preview.media_type, "image/jpeg");
        assert!(preview.width <= 320 && preview.height <= 320);
        assert_eq!(preview.width * 3, preview.height * 4, "the photo's shape is kept");
        assert!(preview.data.len() <= MAX_THUMBNAIL_BYTES);
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not an image").unwrap();
        assert!(of_file(&text).is_none());
    }
}
