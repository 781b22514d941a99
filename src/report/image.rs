//! Stimulus preview sheets (PNG) and NumPy `.npy` arrays.

use super::plot::{encode_png, register_font};
use plotters::prelude::*;

/// Images smaller than this are enlarged by a whole factor (nearest neighbour, so pixels
/// stay pixels) until they are at least this many pixels wide.
const MIN_SHOWN: u32 = 128;
const PAD: u32 = 8;
const CAPTION: u32 = 22;
const FONT_SIZE: u32 = 14;

/// A PNG contact sheet of stimuli: a grid with `columns` images per row (at least 1),
/// each with its caption drawn underneath with the bundled font.
///
/// Each image is `(caption, pixels, size)`: `size`×`size` pixels, HWC RGB in [0, 1]
/// (a single-channel image of `size`×`size` values is accepted as grey). Values outside
/// [0, 1] are clipped, NaN shows as black, missing values as black, extra values are
/// ignored. Images of different sizes are centred in cells of the largest size; small
/// images are enlarged by a whole factor so the largest is at least 128 pixels wide.
/// Captions too long for a cell are shortened with `…`. Never panics; an empty list gives a
/// small blank sheet.
pub fn preview_sheet(images: &[(String, Vec<f32>, u32)], columns: usize) -> Vec<u8> {
    let columns = columns.max(1).min(images.len().max(1));
    let rows = images.len().div_ceil(columns).max(1);
    let largest = images.iter().map(|i| i.2).max().unwrap_or(0).max(1);
    let scale = MIN_SHOWN.div_ceil(largest).max(1);
    let slot = largest.saturating_mul(scale);
    let cell_w = slot + 2 * PAD;
    let cell_h = slot + 2 * PAD + CAPTION;
    let width = cell_w.saturating_mul(columns as u32);
    let height = cell_h.saturating_mul(rows as u32);
    let mut rgb = vec![255u8; width as usize * height as usize * 3];

    for (i, (_, data, size)) in images.iter().enumerate() {
        let (col, row) = ((i % columns) as u32, (i / columns) as u32);
        let shown = size.saturating_mul(scale);
        let x0 = col * cell_w + PAD + (slot - shown) / 2;
        let y0 = row * cell_h + PAD + (slot - shown) / 2;
        // A thin grey frame just outside the image, so grey stimuli show their edges.
        frame(&mut rgb, width, (x0, y0), shown);
        let n = *size as usize;
        let grey = data.len() == n * n && data.len() != n * n * 3;
        for y in 0..shown {
            for x in 0..shown {
                let (sx, sy) = ((x / scale) as usize, (y / scale) as usize);
                let at = (y0 + y) as usize * width as usize + (x0 + x) as usize;
                for c in 0..3 {
                    let index = if grey {
                        sy * n + sx
                    } else {
                        (sy * n + sx) * 3 + c
                    };
                    rgb[at * 3 + c] = to_u8(data.get(index).copied().unwrap_or(0.0));
                }
            }
        }
    }

    register_font();
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let style = TextStyle::from(("sans-serif", FONT_SIZE).into_font())
            .color(&BLACK)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ));
        for (i, (caption, _, _)) in images.iter().enumerate() {
            let (col, row) = ((i % columns) as u32, (i / columns) as u32);
            let text = fit(&root, caption, &style, cell_w.saturating_sub(4));
            let x = (col * cell_w + cell_w / 2) as i32;
            let y = (row * cell_h + PAD + slot + 5) as i32;
            // A caption that cannot be drawn is left out rather than losing the sheet.
            let _ = root.draw_text(&text, &style, (x, y));
        }
        let _ = root.present();
    }
    encode_png(&rgb, width, height).unwrap_or_default()
}

fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

fn frame(rgb: &mut [u8], width: u32, (x0, y0): (u32, u32), shown: u32) {
    let mut set = |x: u32, y: u32| {
        let at = (y as usize * width as usize + x as usize) * 3;
        if let Some(px) = rgb.get_mut(at..at + 3) {
            px.copy_from_slice(&[160, 160, 160]);
        }
    };
    let (left, top) = (x0.saturating_sub(1), y0.saturating_sub(1));
    let (right, bottom) = (x0 + shown, y0 + shown);
    for x in left..=right {
        set(x, top);
        set(x, bottom);
    }
    for y in top..=bottom {
        set(left, y);
        set(right, y);
    }
}

/// The caption, shortened with `…` until it fits `max_width` pixels.
fn fit<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    style: &TextStyle<'_>,
    max_width: u32,
) -> String {
    let fits = |s: &str| {
        root.estimate_text_size(s, style)
            .map(|(w, _)| w <= max_width)
            .unwrap_or(true)
    };
    let caption: String = caption.chars().filter(|c| !c.is_control()).collect();
    if fits(&caption) {
        return caption;
    }
    let mut chars: Vec<char> = caption.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let s: String = chars.iter().collect::<String>() + "…";
        if fits(&s) {
            return s;
        }
    }
    String::new()
}

/// A NumPy `.npy` file (format version 1.0) holding `data` as little-endian `float32`
/// (`<f4`) in C order with the given shape; the header is padded with spaces and ends in
/// a newline so that the data starts at a multiple of 64 bytes.
///
/// # Panics
///
/// If `data.len()` is not the product of `shape` (a programming error: the file would
/// not load).
pub fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let count: usize = shape.iter().product();
    assert_eq!(
        count,
        data.len(),
        "npy_f32: shape {shape:?} holds {count} values, got {}",
        data.len()
    );
    let mut out = npy_f32_header(shape);
    out.reserve(4 * data.len());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The header of an `.npy` file (version 1.0) of little-endian float32 values of `shape`,
/// C order: what comes before the values in [`npy_f32`]'s output, for writers that stream
/// the values after it.
pub fn npy_f32_header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [] => String::new(),
        [n] => format!("{n},"),
        _ => shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // magic (6) + version (2) + header length (2) + header, newline-terminated.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    // Version 1.0 caps the header at 65535 bytes; a shape never comes close.
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// One stimulus as an 8-bit RGB PNG at its own size: `pixels` is HWC RGB in [0, 1]
/// (`size²·3` values) or single-channel (`size²` values, shown as grey). Values are clipped
/// to [0, 1] and rounded; NaN shows as black.
pub fn image_png(pixels: &[f32], size: u32) -> std::io::Result<Vec<u8>> {
    let n = (size as usize).pow(2);
    let rgb: Vec<u8> = if pixels.len() == n {
        pixels.iter().flat_map(|&v| [to_u8(v); 3]).collect()
    } else if pixels.len() == 3 * n {
        pixels.iter().map(|&v| to_u8(v)).collect()
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "image_png: {} values do not make a {size}×{size} image",
                pixels.len()
            ),
        ));
    };
    encode_png(&rgb, size, size)
}
