//! The sidecar of a TorchScript backbone: `FILE.json` beside `FILE`, written by
//! `scripts/export_torchscript.py`, saying what a cut module cannot say itself: the model
//! and layer it was cut from, the input size it accepts, its normalisation, and, for a
//! transformer, how its output lays out tokens. psyrun reads it when it plans an experiment
//! with `backbone torchscript "FILE"` and when `psyrun features --torchscript FILE` runs.
//!
//! ```json
//! { "psyrun_sidecar": 1,
//!   "source": "torchvision.models.vit_b_16",
//!   "layer": "encoder.layers.encoder_layer_5",
//!   "input_size": 224,
//!   "normalize": { "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225] },
//!   "tokens": { "layout": "nld", "prefix": 1, "grid": [14, 14] } }
//! ```
//!
//! `input_size`, `normalize` and `tokens` may be `null` (any size; unknown; a feature map).

use super::types::{Normalize, Sidecar, TokenFormat, TokenLayout};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The sidecar format's version this psyrun reads.
pub const VERSION: u32 = 1;

/// Largest sidecar read (bytes): it is a few hundred.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    psyrun_sidecar: u32,
    source: String,
    layer: String,
    input_size: Option<u32>,
    normalize: Option<RawNormalize>,
    tokens: Option<RawTokens>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNormalize {
    mean: [f64; 3],
    std: [f64; 3],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    layout: String,
    prefix: u32,
    grid: Option<(u32, u32)>,
}

/// Where the sidecar of the TorchScript file `module` is: `module` with `.json` appended.
pub fn path_for(module: &Path) -> PathBuf {
    let mut s = module.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Reads the sidecar of `module`: `Ok(None)` when there is none, `Err` (a sentence) when it
/// cannot be read or is not a sidecar psyrun understands.
pub fn read(module: &Path) -> Result<Option<Sidecar>, String> {
    let path = path_for(module);
    let meta = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
        Ok(m) => m,
    };
    if !meta.is_file() {
        return Err(format!("`{}` is not a regular file", path.display()));
    }
    if meta.len() > MAX_BYTES {
        return Err(format!(
            "`{}` is {} bytes; a sidecar is a small JSON file",
            path.display(),
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    parse(&text)
        .map(Some)
        .map_err(|e| format!("`{}`: {e}", path.display()))
}

/// Parses a sidecar's text.
pub fn parse(text: &str) -> Result<Sidecar, String> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| format!("not a psyrun sidecar: {e}"))?;
    if raw.psyrun_sidecar != VERSION {
        return Err(format!(
            "sidecar version {} is not one this psyrun reads (it reads {VERSION})",
            raw.psyrun_sidecar
        ));
    }
    if raw.input_size == Some(0) {
        return Err("`input_size` is 0".into());
    }
    let normalize = match raw.normalize {
        None => None,
        Some(n) => {
            if n.std.iter().any(|&s| !(s.is_finite() && s > 0.0))
                || n.mean.iter().any(|m| !m.is_finite())
            {
                return Err(
                    "`normalize` needs finite means and positive standard deviations".into(),
                );
            }
            Some(Normalize::MeanStd {
                mean: n.mean,
                std: n.std,
            })
        }
    };
    let tokens = match raw.tokens {
        None => None,
        Some(t) => {
            let layout = match t.layout.as_str() {
                "nld" => TokenLayout::Nld,
                "lnd" => TokenLayout::Lnd,
                other => {
                    return Err(format!(
                        "token layout `{other}` is neither `nld` (batch first) nor `lnd` \
                         (sequence first)"
                    ))
                }
            };
            if t.grid.is_some_and(|(h, w)| h == 0 || w == 0) {
                return Err("the token `grid` has a zero side".into());
            }
            Some(TokenFormat {
                layout,
                prefix: t.prefix,
                grid: t.grid,
            })
        }
    };
    Ok(Sidecar {
        source: raw.source,
        layer: raw.layer,
        input_size: raw.input_size,
        normalize,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_reads_and_refuses_what_it_cannot_mean() {
        let ok = r#"{"psyrun_sidecar": 1, "source": "torchvision.models.vit_b_16",
            "layer": "encoder.layers.encoder_layer_5", "input_size": 224,
            "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "tokens": {"layout": "lnd", "prefix": 1, "grid": [14, 14]}}"#;
        let s = parse(ok).unwrap();
        assert_eq!(s.layer, "encoder.layers.encoder_layer_5");
        assert_eq!(s.input_size, Some(224));
        assert_eq!(
            s.tokens,
            Some(TokenFormat {
                layout: TokenLayout::Lnd,
                prefix: 1,
                grid: Some((14, 14))
            })
        );
        let map = r#"{"psyrun_sidecar": 1, "source": "m", "layer": "l", "input_size": null,
            "normalize": null, "tokens": null}"#;
        let s = parse(map).unwrap();
        assert_eq!((s.input_size, s.tokens, s.normalize), (None, None, None));
        for (bad, says) in [
            (ok.replace("\"lnd\"", "\"nl\""), "neither"),
            (
                ok.replace("\"psyrun_sidecar\": 1", "\"psyrun_sidecar\": 2"),
                "version 2",
            ),
            (ok.replace("0.229", "0"), "positive"),
            (ok.replace("[14, 14]", "[0, 14]"), "zero side"),
            (
                ok.replace("\"source\"", "\"sauce\""),
                "not a psyrun sidecar",
            ),
            ("[]".to_string(), "not a psyrun sidecar"),
        ] {
            let e = parse(&bad).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        assert_eq!(
            path_for(Path::new("models/vit.pt")),
            PathBuf::from("models/vit.pt.json")
        );
        assert_eq!(read(Path::new("/nonexistent/psyrun/x.pt")), Ok(None));
    }
}
