//! Image folders: natural images for training a probe, read from PNG and JPEG files,
//! optionally made grey, and resampled and centre-cropped to the stimulus size.
//!
//! # Reading
//!
//! [`list_images`] lists a folder's regular files (symbolic links followed), skipping hidden
//! names (starting with `.`) and subfolders, sorted by file name (byte order on Unix), so
//! the order never depends on the file system. Every listed file must be an image: the
//! format is told by its first bytes (the PNG signature, or JPEG's `FF D8 FF`), not by its
//! extension, and anything else is [`FolderError::NotAnImage`], naming the file.
//!
//! Decoding ([`decode`]) gives values `v/255` in [0, 1], as stored (gamma-encoded, no colour
//! management):
//! * PNG (the `png` crate): palettes and bit depths below 8 expanded, 16-bit samples reduced
//!   to their high byte (as the feature extractor and PIL's `convert("RGB")` do), alpha
//!   dropped (not composited), grey kept as one channel.
//! * JPEG (the `jpeg-decoder` crate): grey and RGB (YCbCr converted by the decoder); 16-bit
//!   grey (lossless JPEG) as `v/65535`; CMYK is [`FolderError::Unsupported`].
//!
//! # Preparing ([`prepare`])
//!
//! 1. Colour: [`Colour::Rgb`] keeps three channels (a grey file repeated); [`Colour::Grey`]
//!    takes the luma of the stored values, `Y = kr·R + kg·G + kb·B`, with Rec. 601
//!    (0.299, 0.587, 0.114, as PIL's `convert("L")` and JPEG's YCbCr) or Rec. 709
//!    (0.2126, 0.7152, 0.0722) weights.
//! 2. Crop and resample together: the central square of side `s = min(width, height)` (in
//!    continuous coordinates, so an odd difference leaves half a pixel on each side) is
//!    resampled to `size × size`; output pixel `j` covers source `x ∈ [o + j·k, o + (j+1)·k]`
//!    with `k = s/size` and `o = (width − s)/2` (rows likewise), separably:
//!    * [`Resample::Area`]: the mean of the source over that interval, each source pixel
//!      weighted by its overlap (exact box averaging; for downscaling);
//!    * [`Resample::Bilinear`]: linear interpolation at the interval's centre,
//!      `o + (j + ½)·k − ½` in source pixel indices, clamped to the edge pixels (no
//!      prefilter: it aliases when shrinking by more than 2).
//!
//! The result is an [`Image`] of `size × size × channels`, values in [0, 1] (rounding
//! beyond them is clamped).

use std::path::{Path, PathBuf};

use super::common::{check_size, Image, StimulusError};

/// Luma weights for grey conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Luma {
    /// Rec. 601: 0.299 R + 0.587 G + 0.114 B.
    #[default]
    Rec601,
    /// Rec. 709: 0.2126 R + 0.7152 G + 0.0722 B.
    Rec709,
}

impl Luma {
    /// `(kr, kg, kb)`.
    pub fn weights(self) -> [f64; 3] {
        match self {
            Luma::Rec601 => [0.299, 0.587, 0.114],
            Luma::Rec709 => [0.2126, 0.7152, 0.0722],
        }
    }
}

/// The output's colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Colour {
    /// Three channels, RGB.
    #[default]
    Rgb,
    /// One channel: the luma.
    Grey(Luma),
}

/// The resampling filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resample {
    /// Box averaging over each output pixel's footprint.
    #[default]
    Area,
    /// Linear interpolation at each output pixel's centre.
    Bilinear,
}

/// How a folder's images are prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderParams {
    /// Output side, px.
    pub size: u32,
    /// Colour or grey.
    pub colour: Colour,
    /// Resampling filter.
    pub resample: Resample,
}

impl Default for FolderParams {
    /// 224 px, RGB, area resampling.
    fn default() -> Self {
        FolderParams {
            size: 224,
            colour: Colour::Rgb,
            resample: Resample::Area,
        }
    }
}

/// Why a folder or an image cannot be read. Every message names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// The folder cannot be listed.
    #[error("cannot list the image folder `{path}`: {source}", path = .path.display())]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The folder holds no image.
    #[error("the image folder `{path}` holds no files", path = .path.display())]
    Empty {
        /// The folder.
        path: PathBuf,
    },
    /// A file cannot be read.
    #[error("cannot read the image `{path}`: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is neither PNG nor JPEG.
    #[error("`{path}` is not a PNG or JPEG image", path = .path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// A PNG or JPEG file that does not decode.
    #[error("cannot decode the image `{path}`: {reason}", path = .path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A valid image of a kind psyrun does not read.
    #[error("the image `{path}` is {what}, which psyrun does not read", path = .path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The preparation's parameters are invalid.
    #[error(transparent)]
    Params(#[from] StimulusError),
}

/// The largest decoded image accepted, in bytes (larger ones are a decode error).
const MAX_DECODED_BYTES: usize = 1 << 30;

/// The folder's image files, sorted by name (see the module documentation).
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    let err = |source| FolderError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follow links; skip subfolders. A broken link is reported when it is read.
        if std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            continue;
        }
        files.push((name, path));
    }
    files.sort();
    if files.is_empty() {
        return Err(FolderError::Empty {
            path: dir.to_path_buf(),
        });
    }
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Decodes one file at its own size: 1 (grey) or 3 (RGB) channels, values in [0, 1].
pub fn decode(path: &Path) -> Result<Image, FolderError> {
    let read = |source| FolderError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = crate::source::open_regular(path).map_err(read)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(read)?;
    let decoder: fn(&Path, &[u8]) -> Result<Image, FolderError> =
        if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            decode_png
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            decode_jpeg
        } else {
            return Err(FolderError::NotAnImage {
                path: path.to_path_buf(),
            });
        };
    // The decoders are other crates: should one panic on a malformed file, that is this
    // file's decode error, not a crash.
    std::panic::catch_unwind(|| decoder(path, &bytes)).unwrap_or_else(|_| {
        Err(FolderError::Decode {
            path: path.to_path_buf(),
            reason: "the decoder failed on this file".into(),
        })
    })
}

fn decode_png(path: &Path, bytes: &[u8]) -> Result<Image, FolderError> {
    let fail = |e: &dyn std::fmt::Display| FolderError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            bytes: MAX_DECODED_BYTES,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| fail(&e))?;
    let len = reader
        .output_buffer_size()
        .ok_or_else(|| fail(&"the image is too large"))?;
    let mut buf = vec![0u8; len];
    let frame = reader.next_frame(&mut buf).map_err(|e| fail(&e))?;
    let (stride, channels) = match frame.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        png::ColorType::Indexed => return Err(fail(&"a palette left unexpanded")),
    };
    if frame.bit_depth != png::BitDepth::Eight {
        return Err(fail(&format!("unexpected bit depth {:?}", frame.bit_depth)));
    }
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut pixels = Vec::with_capacity(w * h * channels);
    for y in 0..h {
        let start = y * frame.line_size;
        let row = buf
            .get(start..start + w * stride)
            .ok_or_else(|| fail(&"truncated image data"))?;
        for px in row.chunks_exact(stride) {
            pixels.extend(px[..channels].iter().map(|&v| f64::from(v) / 255.0));
        }
    }
    Ok(Image {
        width: frame.width,
        height: frame.height,
        channels: channels as u8,
        pixels,
        clipped: 0,
    })
}

fn decode_jpeg(path: &Path, bytes: &[u8]) -> Result<Image, FolderError> {
    let fail = |e: &dyn std::fmt::Display| FolderError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES);
    let data = decoder.decode().map_err(|e| fail(&e))?;
    let info = decoder.info().ok_or_else(|| fail(&"no image header"))?;
    let (w, h) = (usize::from(info.width), usize::from(info.height));
    let (channels, pixels): (u8, Vec<f64>) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (1, data.iter().map(|&v| f64::from(v) / 255.0).collect()),
        jpeg_decoder::PixelFormat::RGB24 => {
            (3, data.iter().map(|&v| f64::from(v) / 255.0).collect())
        }
        jpeg_decoder::PixelFormat::L16 => (
            1,
            data.chunks_exact(2)
                .map(|b| f64::from(u16::from_ne_bytes([b[0], b[1]])) / 65535.0)
                .collect(),
        ),
        jpeg_decoder::PixelFormat::CMYK32 => {
            return Err(FolderError::Unsupported {
                path: path.to_path_buf(),
                what: "a CMYK JPEG",
            })
        }
    };
    if pixels.len() != w * h * usize::from(channels) {
        return Err(fail(&"truncated image data"));
    }
    Ok(Image {
        width: u32::from(info.width),
        height: u32::from(info.height),
        channels,
        pixels,
        clipped: 0,
    })
}

/// Per output index, the source indices and weights that make it (see the module
/// documentation): `src` source pixels, offset `o`, step `k`.
fn weights(src: usize, o: f64, k: f64, out: usize, method: Resample) -> Vec<Vec<(usize, f64)>> {
    let last = src.saturating_sub(1);
    (0..out)
        .map(|j| match method {
            Resample::Area => {
                let (a, b) = (o + j as f64 * k, o + (j + 1) as f64 * k);
                let first = (a.floor().max(0.0) as usize).min(last);
                let end = (b.ceil().max(0.0) as usize).min(src);
                (first..end)
                    .filter_map(|p| {
                        let overlap = b.min(p as f64 + 1.0) - a.max(p as f64);
                        (overlap > 0.0).then_some((p, overlap / (b - a)))
                    })
                    .collect()
            }
            Resample::Bilinear => {
                let s = (o + (j as f64 + 0.5) * k - 0.5).clamp(0.0, last as f64);
                let p0 = s.floor() as usize;
                let t = s - p0 as f64;
                let p1 = (p0 + 1).min(last);
                if t == 0.0 || p1 == p0 {
                    vec![(p0, 1.0)]
                } else {
                    vec![(p0, 1.0 - t), (p1, t)]
                }
            }
        })
        .collect()
}

/// Converts, crops and resamples a decoded image (see the module documentation).
pub fn prepare(img: &Image, params: &FolderParams) -> Result<Image, StimulusError> {
    check_size(params.size)?;
    let (w, h) = (img.width as usize, img.height as usize);
    let src_ch = usize::from(img.channels);
    if w == 0 || h == 0 || !(src_ch == 1 || src_ch == 3) || img.pixels.len() != w * h * src_ch {
        return Err(StimulusError::Invalid {
            param: "image",
            value: img.pixels.len() as f64,
            expected: "a non-empty grey or RGB image of width × height × channels values",
        });
    }
    // 1. Colour.
    let (ch, colour): (usize, Vec<f64>) = match (params.colour, src_ch) {
        (Colour::Rgb, 3) | (Colour::Grey(_), 1) => (src_ch, img.pixels.clone()),
        (Colour::Rgb, _) => (3, img.pixels.iter().flat_map(|&v| [v, v, v]).collect()),
        (Colour::Grey(luma), _) => {
            let [kr, kg, kb] = luma.weights();
            (
                1,
                img.pixels
                    .chunks_exact(3)
                    .map(|p| kr * p[0] + kg * p[1] + kb * p[2])
                    .collect(),
            )
        }
    };
    // 2. Crop the central square and resample, rows then columns.
    let n = params.size as usize;
    let s = w.min(h) as f64;
    let k = s / n as f64;
    let wx = weights(w, (w as f64 - s) / 2.0, k, n, params.resample);
    let wy = weights(h, (h as f64 - s) / 2.0, k, n, params.resample);
    // Horizontal pass: h × n × ch.
    let mut across = vec![0.0; h * n * ch];
    for y in 0..h {
        for (j, ws) in wx.iter().enumerate() {
            for c in 0..ch {
                across[(y * n + j) * ch + c] = ws
                    .iter()
                    .map(|&(x, wt)| wt * colour[(y * w + x) * ch + c])
                    .sum();
            }
        }
    }
    let mut pixels = vec![0.0; n * n * ch];
    for (i, ws) in wy.iter().enumerate() {
        for j in 0..n {
            for c in 0..ch {
                let v: f64 = ws
                    .iter()
                    .map(|&(y, wt)| wt * across[(y * n + j) * ch + c])
                    .sum();
                pixels[(i * n + j) * ch + c] = v.clamp(0.0, 1.0);
            }
        }
    }
    Ok(Image {
        width: params.size,
        height: params.size,
        channels: ch as u8,
        pixels,
        clipped: 0,
    })
}

/// Decodes and prepares one file.
pub fn load_image(path: &Path, params: &FolderParams) -> Result<Image, FolderError> {
    check_size(params.size)?;
    Ok(prepare(&decode(path)?, params)?)
}

/// Every image of a folder, in [`list_images`]'s order, prepared; the first failure stops
/// it and names its file.
pub fn load_folder(
    dir: &Path,
    params: &FolderParams,
) -> Result<Vec<(PathBuf, Image)>, FolderError> {
    check_size(params.size)?;
    list_images(dir)?
        .into_iter()
        .map(|p| load_image(&p, params).map(|img| (p, img)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "psyrun-stimuli-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_png(path: &Path, w: u32, h: u32, colour: png::ColorType, data: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(data).unwrap();
    }

    /// A minimal baseline greyscale JPEG whose 8 × 8 blocks are uniform: quantisation 1,
    /// DC coefficients `8·(v − 128)` only (the standard luminance DC Huffman table, an AC
    /// table holding only end-of-block), so it decodes to exactly `v` in each block.
    fn write_jpeg(path: &Path, blocks_x: usize, blocks_y: usize, values: &[u8]) {
        let mut out = vec![0xFF, 0xD8];
        // DQT: table 0, all ones.
        out.extend([0xFF, 0xDB, 0, 67, 0]);
        out.extend([1u8; 64]);
        // SOF0: 8-bit, height, width, one component (id 1, 1×1 sampling, table 0).
        let (w, h) = ((blocks_x * 8) as u16, (blocks_y * 8) as u16);
        out.extend([0xFF, 0xC0, 0, 11, 8]);
        out.extend(h.to_be_bytes());
        out.extend(w.to_be_bytes());
        out.extend([1, 1, 0x11, 0]);
        // DHT: DC table 0 (Annex K.3), AC table 0 with the single symbol EOB (code "0").
        let dc_bits: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        out.extend([0xFF, 0xC4, 0, 2 + 1 + 16 + 12, 0x00]);
        out.extend(dc_bits);
        out.extend(0u8..12);
        out.extend([0xFF, 0xC4, 0, 2 + 1 + 16 + 1, 0x10, 1]);
        out.extend([0u8; 15]);
        out.push(0x00);
        // Canonical codes of the DC table: (code, length) per category.
        let mut codes = Vec::new();
        let mut code = 0u32;
        for (len, &count) in dc_bits.iter().enumerate() {
            for _ in 0..count {
                codes.push((code, len as u32 + 1));
                code += 1;
            }
            code <<= 1;
        }
        // SOS.
        out.extend([0xFF, 0xDA, 0, 8, 1, 1, 0x00, 0, 63, 0]);
        let mut bits: Vec<bool> = Vec::new();
        fn push(v: u32, n: u32, bits: &mut Vec<bool>) {
            for b in (0..n).rev() {
                bits.push((v >> b) & 1 == 1);
            }
        }
        let mut prev = 0i32;
        for &v in values {
            let dc = 8 * (i32::from(v) - 128);
            let diff = dc - prev;
            prev = dc;
            let cat = 32 - diff.unsigned_abs().leading_zeros();
            let (c, l) = codes[cat as usize];
            push(c, l, &mut bits);
            let extra = if diff >= 0 {
                diff
            } else {
                diff + (1 << cat) - 1
            };
            push(extra as u32, cat, &mut bits);
            push(0, 1, &mut bits); // EOB
        }
        while !bits.len().is_multiple_of(8) {
            bits.push(true);
        }
        for byte in bits.chunks(8) {
            let b = byte
                .iter()
                .fold(0u8, |acc, &bit| (acc << 1) | u8::from(bit));
            out.push(b);
            if b == 0xFF {
                out.push(0);
            }
        }
        out.extend([0xFF, 0xD9]);
        std::fs::write(path, out).unwrap();
    }

    fn grey(size: u32, resample: Resample) -> FolderParams {
        FolderParams {
            size,
            colour: Colour::Grey(Luma::Rec601),
            resample,
        }
    }

    #[test]
    fn jpeg_crop_and_resample() {
        let dir = TempDir::new("jpeg");
        let path = dir.0.join("two.jpg");
        // 16 × 8: a block of 40 on the left, 200 on the right.
        write_jpeg(&path, 2, 1, &[40, 200]);
        let raw = decode(&path).unwrap();
        assert_eq!((raw.width, raw.height, raw.channels), (16, 8, 1));
        for y in 0..8 {
            for x in 0..16 {
                let want = if x < 8 { 40.0 } else { 200.0 } / 255.0;
                assert_eq!(raw.at(y, x, 0), want, "({x}, {y})");
            }
        }
        // Central 8 × 8 is x ∈ [4, 12]. Area to 4 px: 2 × 2 source pixels each.
        let img = load_image(&path, &grey(4, Resample::Area)).unwrap();
        for i in 0..4 {
            let row: Vec<f64> = (0..4).map(|j| img.at(i, j, 0) * 255.0).collect();
            for (got, want) in row.iter().zip([40.0, 40.0, 200.0, 200.0]) {
                assert!((got - want).abs() < 1e-9, "{row:?}");
            }
        }
        // To 5 px, k = 1.6: column 2 covers [7.2, 8.8], 0.8 of 40 and 0.8 of 200: 120;
        // bilinear samples x = 4.3, 5.9, 7.5, 9.1, 10.7: 7.5 is halfway, also 120.
        for method in [Resample::Area, Resample::Bilinear] {
            let img = load_image(&path, &grey(5, method)).unwrap();
            let row: Vec<f64> = (0..5).map(|j| img.at(2, j, 0) * 255.0).collect();
            for (got, want) in row.iter().zip([40.0, 40.0, 120.0, 200.0, 200.0]) {
                assert!((got - want).abs() < 1e-9, "{method:?}: {row:?}");
            }
        }
        // As RGB: the grey repeated in three channels.
        let rgb = load_image(
            &path,
            &FolderParams {
                colour: Colour::Rgb,
                ..grey(4, Resample::Area)
            },
        )
        .unwrap();
        assert_eq!(rgb.channels, 3);
        assert_eq!(rgb.pixels.len(), 48);
        assert!((rgb.at(1, 3, 2) * 255.0 - 200.0).abs() < 1e-9);
    }

    #[test]
    fn png_luma_and_odd_crop() {
        let dir = TempDir::new("png");
        // 2 × 2 RGB: red, green / blue, white.
        let rgb = dir.0.join("rgb.png");
        write_png(
            &rgb,
            2,
            2,
            png::ColorType::Rgb,
            &[255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255],
        );
        for (luma, [kr, kg, kb]) in [
            (Luma::Rec601, [0.299, 0.587, 0.114]),
            (Luma::Rec709, [0.2126, 0.7152, 0.0722]),
        ] {
            let p = FolderParams {
                size: 2,
                colour: Colour::Grey(luma),
                resample: Resample::Area,
            };
            let img = load_image(&rgb, &p).unwrap();
            for (got, want) in img.pixels.iter().zip([kr, kg, kb, 1.0]) {
                assert!((got - want).abs() < 1e-12, "{luma:?}");
            }
            // Averaged to one pixel: (kr + kg + kb + 1)/4 = ½ for both.
            let one = load_image(&rgb, &FolderParams { size: 1, ..p }).unwrap();
            assert!((one.pixels[0] - 0.5).abs() < 1e-12);
        }
        // RGBA: alpha dropped.
        let rgba = dir.0.join("rgba.png");
        write_png(&rgba, 1, 1, png::ColorType::Rgba, &[10, 20, 30, 0]);
        let img = load_image(
            &rgba,
            &FolderParams {
                size: 1,
                colour: Colour::Rgb,
                resample: Resample::Area,
            },
        )
        .unwrap();
        assert_eq!(img.pixels, vec![10.0 / 255.0, 20.0 / 255.0, 30.0 / 255.0]);
        // 3 × 2 grey: the central 2 × 2 square starts at x = 0.5, so each output column
        // averages two half pixels: (10 + 20)/2, (20 + 30)/2; (40 + 50)/2, (50 + 60)/2.
        let odd = dir.0.join("odd.png");
        write_png(
            &odd,
            3,
            2,
            png::ColorType::Grayscale,
            &[10, 20, 30, 40, 50, 60],
        );
        let img = load_image(&odd, &grey(2, Resample::Area)).unwrap();
        for (got, want) in img.pixels.iter().zip([15.0, 25.0, 45.0, 55.0]) {
            assert!((got * 255.0 - want).abs() < 1e-9, "{:?}", img.pixels);
        }
        // Upscaling 2 × 2 (0, 100 / 200, 40) to 3: bilinear samples at −⅙ (clamped to 0), ½
        // and 7/6 (clamped to 1) in x and y; area gives each output pixel ⅔ of a source
        // pixel, the middle one a third of each. The same nine values here, by hand.
        let small = dir.0.join("small.png");
        write_png(&small, 2, 2, png::ColorType::Grayscale, &[0, 100, 200, 40]);
        let want = [0.0, 50.0, 100.0, 100.0, 85.0, 70.0, 200.0, 120.0, 40.0];
        for method in [Resample::Area, Resample::Bilinear] {
            let img = load_image(&small, &grey(3, method)).unwrap();
            for (got, want) in img.pixels.iter().zip(want) {
                assert!(
                    (got * 255.0 - want).abs() < 1e-9,
                    "{method:?}: {:?}",
                    img.pixels
                );
            }
        }
        // A portrait image is cropped vertically: 1 × 3 column 0, 100, 200 → its middle.
        let tall = dir.0.join("tall.png");
        write_png(&tall, 1, 3, png::ColorType::Grayscale, &[0, 100, 200]);
        let img = load_image(&tall, &grey(1, Resample::Area)).unwrap();
        assert!((img.pixels[0] * 255.0 - 100.0).abs() < 1e-9);
    }

    #[test]
    fn folder_order_and_errors() {
        let dir = TempDir::new("folder");
        let d = &dir.0;
        write_png(&d.join("b.png"), 1, 1, png::ColorType::Grayscale, &[20]);
        write_jpeg(&d.join("a.jpg"), 1, 1, &[96]);
        write_png(&d.join("c.PNG"), 1, 1, png::ColorType::Grayscale, &[255]);
        std::fs::write(d.join(".DS_Store"), b"junk").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let names: Vec<String> = list_images(d)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.jpg", "b.png", "c.PNG"]);
        let loaded = load_folder(d, &grey(1, Resample::Area)).unwrap();
        let values: Vec<f64> = loaded
            .iter()
            .map(|(_, img)| img.pixels[0] * 255.0)
            .collect();
        for (got, want) in values.iter().zip([96.0, 20.0, 255.0]) {
            assert!((got - want).abs() < 1e-9, "{values:?}");
        }
        assert_eq!(loaded, load_folder(d, &grey(1, Resample::Area)).unwrap());
        // A text file, even named .png, is not an image: the error names it.
        std::fs::write(d.join("d.png"), b"not an image").unwrap();
        let e = load_folder(d, &grey(1, Resample::Area)).unwrap_err();
        assert!(matches!(e, FolderError::NotAnImage { .. }), "{e:?}");
        assert!(e.to_string().contains("d.png"), "{e}");
        // A truncated PNG: a decode error naming the file.
        std::fs::remove_file(d.join("d.png")).unwrap();
        let mut bytes = std::fs::read(d.join("b.png")).unwrap();
        bytes.truncate(20);
        std::fs::write(d.join("e.png"), &bytes).unwrap();
        let e = load_folder(d, &grey(1, Resample::Area)).unwrap_err();
        assert!(matches!(e, FolderError::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains("e.png"), "{e}");
        // A truncated JPEG likewise.
        std::fs::remove_file(d.join("e.png")).unwrap();
        std::fs::write(d.join("f.jpg"), [0xFF, 0xD8, 0xFF, 0xDB, 0x00]).unwrap();
        let e = load_folder(d, &grey(1, Resample::Area)).unwrap_err();
        assert!(matches!(e, FolderError::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains("f.jpg"), "{e}");
        // Missing and empty folders; an invalid size.
        let missing = d.join("nowhere");
        let e = list_images(&missing).unwrap_err();
        assert!(matches!(e, FolderError::ReadDir { .. }));
        assert!(e.to_string().contains("nowhere"));
        let empty = TempDir::new("empty");
        assert!(matches!(
            list_images(&empty.0),
            Err(FolderError::Empty { .. })
        ));
        assert!(matches!(
            load_folder(d, &grey(0, Resample::Area)),
            Err(FolderError::Params(StimulusError::Size(0)))
        ));
    }

    #[test]
    fn prepare_rejects_malformed_images() {
        let bad = Image {
            width: 2,
            height: 2,
            channels: 3,
            pixels: vec![0.0; 5],
            clipped: 0,
        };
        assert!(prepare(&bad, &grey(2, Resample::Area)).is_err());
        let empty = Image {
            width: 0,
            height: 3,
            channels: 1,
            pixels: vec![],
            clipped: 0,
        };
        assert!(prepare(&empty, &grey(2, Resample::Bilinear)).is_err());
    }
}
