//! A picture to send: a landscape drawn in code (no binary file in the repository), as PNG.

/// A `width` × `height` PNG of hills under a sky.
pub fn landscape_png(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let hill = 0.62 + 0.08 * (fx * 9.0).sin() + 0.05 * (fx * 23.0).cos();
        let sun = ((fx - 0.75).powi(2) + (fy - 0.25).powi(2)).sqrt() < 0.07;
        if sun {
            image::Rgb([255, 214, 102])
        } else if fy > hill {
            let shade = (40.0 + 60.0 * (1.0 - fy)) as u8;
            image::Rgb([shade, (110.0 + 80.0 * (1.0 - fy)) as u8, shade])
        } else {
            image::Rgb([(90.0 + 120.0 * fy) as u8, (150.0 + 80.0 * fy) as u8, 235])
        }
    });
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}
