//! Each stimulus kind mapped onto the stimulus library: parameters read by name from the
//! plan (evaluated at the trial's level and axis value, list values and random draws), the
//! library's parameter struct filled in, rendered on the design's background.

use super::{Ctx, Stim, TaskError};
use crate::plan::design::{Param, ParamDefault, StimulusKind, StimulusSpec};
use crate::stimuli::folder::{load_folder, Colour, FolderParams, Luma, Resample};
use crate::stimuli::gabor::{Envelope, GaborParams, GaborPhase};
use crate::stimuli::gratings::{GratingParams, Waveform};
use crate::stimuli::noise::{NoiseParams, Source, Spectrum};
use crate::stimuli::patch::{PatchParams, PatchShape};
use crate::stimuli::sum::SumParams;
use crate::stimuli::vernier::{Flankers, Orientation, Polarity, Sampling, VernierParams};
use crate::stimuli::{repeat_channels, Clip, Display, Image, StimulusError, Window};
use std::path::Path;

/// Reads one stimulus's parameters at a trial's values.
struct Reader<'a> {
    stim: &'a Stim,
    size: u32,
    ctx: &'a Ctx<'a>,
}

impl Reader<'_> {
    fn err(&self, message: String) -> TaskError {
        TaskError::new(&self.stim.name, message)
    }

    /// The default of parameter `name` from the kind's table.
    fn default(&self, name: &str) -> Option<ParamDefault> {
        self.stim
            .kind
            .params()
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.default)
    }

    /// A number: an expression at (level, axis), the condition's list value, the trial's
    /// random draw, or the table's default when the plan leaves it out.
    fn num(&self, name: &str) -> Result<f64, TaskError> {
        match self.stim.params.get(name) {
            Some(Param::Value(e)) => Ok(e.eval(self.ctx.level, self.ctx.axis)),
            Some(Param::List(_)) => self
                .ctx
                .lists
                .iter()
                .find(|(n, _)| n == name)
                .map(|&(_, v)| v)
                .ok_or_else(|| self.err(format!("`{name}`: no list value in this condition"))),
            Some(Param::Uniform { lo, hi }) => {
                let u = self.draw(name)?;
                Ok(lo + (hi - lo) * u)
            }
            Some(Param::LogUniform { lo, hi }) => {
                let u = self.draw(name)?;
                let (a, b) = (lo.ln(), hi.ln());
                Ok((a + (b - a) * u).exp())
            }
            Some(Param::Word(w)) => {
                Err(self.err(format!("`{name}` must be a number, not the word `{w}`")))
            }
            Some(Param::Path(p)) => {
                Err(self.err(format!("`{name}` must be a number, not the path \"{p}\"")))
            }
            None => match self.default(name) {
                Some(ParamDefault::Num(x)) => Ok(x),
                Some(ParamDefault::SizeOver(k)) => Ok(f64::from(self.size) / k),
                _ => Err(self.err(format!("`{name}` is not given and has no numeric default"))),
            },
        }
    }

    fn draw(&self, name: &str) -> Result<f64, TaskError> {
        self.ctx
            .draws
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, u)| u)
            .ok_or_else(|| self.err(format!("`{name}`: no random draw in this trial")))
    }

    /// A word, or the table's default.
    fn word(&self, name: &str) -> Result<String, TaskError> {
        match self.stim.params.get(name) {
            Some(Param::Word(w)) => Ok(w.clone()),
            Some(_) => Err(self.err(format!("`{name}` must be a word"))),
            None => match self.default(name) {
                Some(ParamDefault::Word(w)) => Ok(w.to_string()),
                _ => Err(self.err(format!("`{name}` is not given and has no default"))),
            },
        }
    }

    /// One of `words`, as its index.
    fn choice(&self, name: &str, words: &[&str]) -> Result<usize, TaskError> {
        let w = self.word(name)?;
        words.iter().position(|&x| x == w).ok_or_else(|| {
            self.err(format!(
                "`{name}` is `{w}`, but it must be one of: {}",
                words.join(", ")
            ))
        })
    }

    /// A flag: the word `true` or `false`.
    fn flag(&self, name: &str) -> Result<bool, TaskError> {
        Ok(self.choice(name, &["false", "true"])? == 1)
    }

    /// A library error as a task error: the library's parameter named as in `.psy` files,
    /// with the trial's level and axis value.
    fn lib(&self, e: StimulusError, rename: &[(&str, &str)]) -> TaskError {
        let at = format!("level {}, axis {}", self.ctx.level, self.ctx.axis);
        let message = match e {
            StimulusError::Invalid {
                param,
                value,
                expected,
            } => {
                let name = rename
                    .iter()
                    .find(|(lib, _)| *lib == param)
                    .map_or(param, |&(_, psy)| psy);
                format!("`{name}` is {value} at {at}, but it must be {expected}")
            }
            other => format!("{other} (at {at})"),
        };
        self.err(message)
    }

    fn window(&self) -> Result<Window, TaskError> {
        Ok(
            match self.choice("window", &["none", "gaussian", "circle"])? {
                0 => Window::None,
                1 => Window::Gaussian {
                    sigma: self.num("sigma")?,
                },
                _ => Window::Circular {
                    radius: self.num("radius")?,
                    edge: self.num("edge")?,
                },
            },
        )
    }
}

const WINDOW_NAMES: &[(&str, &str)] = &[
    ("window sigma", "sigma"),
    ("window radius", "radius"),
    ("window edge", "edge"),
];

/// Renders stimulus `s` at the trial's values as RGB HWC f32 (`size² · 3` values).
pub(super) fn render(
    s: &Stim,
    size: u32,
    background: f64,
    ctx: &Ctx<'_>,
    photo: Option<f64>,
    seed: u64,
) -> Result<Vec<f32>, TaskError> {
    let r = Reader { stim: s, size, ctx };
    let display = Display {
        background,
        clip: Clip::Error,
    };
    let grey = |img: Result<Image, StimulusError>, rename: &[(&str, &str)]| {
        img.map(|i| repeat_channels(&i.to_f32()))
            .map_err(|e| r.lib(e, rename))
    };
    match s.kind {
        StimulusKind::Grating => grey(grating(&r, "")?.render(&display), WINDOW_NAMES),
        StimulusKind::Gabor => grey(gabor(&r)?.render(&display), &[]),
        StimulusKind::Plaid => {
            let (a, b) = (grating(&r, "")?, grating(&r, "2")?);
            // Check each component first, so that an error names its parameter.
            a.validate().map_err(|e| r.lib(e, WINDOW_NAMES))?;
            b.validate().map_err(|e| {
                r.lib(
                    e,
                    &[
                        ("frequency", "frequency2"),
                        ("orientation", "orientation2"),
                        ("phase", "phase2"),
                        ("contrast", "contrast2"),
                        ("window sigma", "sigma"),
                        ("window radius", "radius"),
                        ("window edge", "edge"),
                    ],
                )
            })?;
            grey(SumParams::plaid(a, b).render(&display), &[])
        }
        StimulusKind::Noise => grey(
            noise(&r, seed)?.render(&display),
            &[("rms_contrast", "contrast")],
        ),
        StimulusKind::Vernier => grey(vernier(&r)?.render(&display), &[("bar_width", "width")]),
        StimulusKind::Patch => grey(
            patch(&r)?.render(&display),
            &[("half", "radius"), ("centre x", "x"), ("centre y", "y")],
        ),
        StimulusKind::Images => images(&r, &display, photo),
    }
}

/// A grating from the parameters named `frequency{suffix}`, …; the window is shared.
fn grating(r: &Reader<'_>, suffix: &str) -> Result<GratingParams, TaskError> {
    let waveform = if suffix.is_empty() && r.stim.kind == StimulusKind::Grating {
        match r.choice("waveform", &["sine", "square"])? {
            0 => Waveform::Sine,
            _ => Waveform::Square,
        }
    } else {
        Waveform::Sine
    };
    Ok(GratingParams {
        size: r.size,
        frequency: r.num(&format!("frequency{suffix}"))?,
        orientation_deg: r.num(&format!("orientation{suffix}"))?,
        phase_deg: r.num(&format!("phase{suffix}"))?,
        contrast: r.num(&format!("contrast{suffix}"))?,
        waveform,
        window: r.window()?,
    })
}

fn gabor(r: &Reader<'_>) -> Result<GaborParams, TaskError> {
    Ok(GaborParams {
        size: r.size,
        frequency: r.num("frequency")?,
        orientation_deg: r.num("orientation")?,
        phase: match r.choice("phase", &["cosine", "sine"])? {
            0 => GaborPhase::Cosine,
            _ => GaborPhase::Sine,
        },
        contrast: r.num("contrast")?,
        envelope: match r.choice("envelope", &["sigma", "cycles"])? {
            0 => Envelope::Sigma(r.num("sigma")?),
            _ => Envelope::Cycles(r.num("cycles")?),
        },
        dc_free: r.flag("dc_free")?,
    })
}

fn noise(r: &Reader<'_>, seed: u64) -> Result<NoiseParams, TaskError> {
    Ok(NoiseParams {
        size: r.size,
        source: match r.choice("source", &["gaussian", "uniform"])? {
            0 => Source::Gaussian,
            _ => Source::Uniform,
        },
        spectrum: match r.choice("spectrum", &["white", "power", "band"])? {
            0 => Spectrum::White,
            1 => Spectrum::Power {
                alpha: r.num("alpha")?,
            },
            _ => Spectrum::Band {
                centre: r.num("centre")?,
                octaves: r.num("octaves")?,
            },
        },
        rms_contrast: r.num("contrast")?,
        seed,
        index: 0,
    })
}

fn vernier(r: &Reader<'_>) -> Result<VernierParams, TaskError> {
    Ok(VernierParams {
        size: r.size,
        offset: r.num("offset")?,
        bar_width: r.num("width")?,
        length: r.num("length")?,
        gap: r.num("gap")?,
        contrast: r.num("contrast")?,
        polarity: match r.choice("polarity", &["bright", "dark"])? {
            0 => Polarity::Bright,
            _ => Polarity::Dark,
        },
        sampling: Sampling::Area,
        flankers: match r.choice("flankers", &["none", "lines", "surround"])? {
            0 => Flankers::None,
            1 => Flankers::Lines {
                spacing: r.num("spacing")?,
                length: None,
            },
            _ => Flankers::Surround {
                margin: r.num("margin")?,
            },
        },
        orientation: match r.choice("orientation", &["vertical", "horizontal"])? {
            0 => Orientation::Vertical,
            _ => Orientation::Horizontal,
        },
    })
}

fn patch(r: &Reader<'_>) -> Result<PatchParams, TaskError> {
    let radius = r.num("radius")?;
    Ok(PatchParams {
        size: r.size,
        shape: match r.choice("shape", &["disc", "square"])? {
            0 => PatchShape::Disc { radius },
            _ => PatchShape::Square { half: radius },
        },
        contrast: r.num("contrast")?,
        edge: r.num("edge")?,
        centre: (r.num("x")?, r.num("y")?),
    })
}

/// The trial's photo with its contrast about the background: `L = L0 + c·(v − mean)`, the
/// mean over all pixels and channels, clamped to [0, 1] (photos are not centred on the
/// background, so at contrast 1 most would leave [0, 1] somewhere).
fn images(r: &Reader<'_>, display: &Display, photo: Option<f64>) -> Result<Vec<f32>, TaskError> {
    display.validate().map_err(|e| r.lib(e, &[]))?;
    let contrast = r.num("contrast")?;
    if !(contrast.is_finite() && contrast >= 0.0) {
        return Err(r.err(format!(
            "`contrast` is {contrast} at level {}, axis {}, but it must be finite and >= 0",
            r.ctx.level, r.ctx.axis
        )));
    }
    let imgs = &r.stim.images;
    if imgs.is_empty() {
        return Err(r.err("the image folder holds no images".into()));
    }
    let u = photo.unwrap_or(0.0);
    let k = ((u * imgs.len() as f64) as usize).min(imgs.len() - 1);
    Ok(apply_contrast(&imgs[k], display.background, contrast))
}

/// `L = L0 + c·(v − mean(v))`, clamped to [0, 1], as RGB HWC f32.
pub(super) fn apply_contrast(img: &Image, background: f64, contrast: f64) -> Vec<f32> {
    let mean = img.mean();
    let values: Vec<f32> = img
        .pixels
        .iter()
        .map(|&v| (background + contrast * (v - mean)).clamp(0.0, 1.0) as f32)
        .collect();
    if img.channels == 1 {
        repeat_channels(&values)
    } else {
        values
    }
}

/// The prepared images of an `images` stimulus (its folder relative to `base`).
pub(super) fn load_images(
    spec: &StimulusSpec,
    size: u32,
    base: &Path,
) -> Result<Vec<Image>, TaskError> {
    let err = |m: String| TaskError::new(&spec.name, m);
    let folder = match spec.params.get("folder") {
        Some(Param::Path(p)) => p,
        Some(_) => return Err(err("`folder` must be a path".into())),
        None => return Err(err("`folder` is not given".into())),
    };
    let word = |name: &str, default: &str| match spec.params.get(name) {
        Some(Param::Word(w)) => Ok(w.clone()),
        None => Ok(default.to_string()),
        Some(_) => Err(err(format!("`{name}` must be a word"))),
    };
    let colour = match word("colour", "grey")?.as_str() {
        "grey" => Colour::Grey(Luma::Rec601),
        "rgb" => Colour::Rgb,
        w => {
            return Err(err(format!(
                "`colour` is `{w}`, but it must be rgb or grey"
            )))
        }
    };
    let resample = match word("resample", "area")?.as_str() {
        "area" => Resample::Area,
        "bilinear" => Resample::Bilinear,
        w => {
            return Err(err(format!(
                "`resample` is `{w}`, but it must be area or bilinear"
            )))
        }
    };
    let params = FolderParams {
        size,
        colour,
        resample,
    };
    let images = load_folder(&base.join(folder), &params).map_err(|e| err(e.to_string()))?;
    Ok(images.into_iter().map(|(_, img)| img).collect())
}
