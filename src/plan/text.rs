//! The short text forms of plan values that the command line, the manifest and feature files
//! use (not the `.psy` language's forms): [`Pooling`] as `none`, `avg:HxW`, `max:HxW`;
//! [`Device`] as `auto`, `cpu`, `cuda:N`; [`Weights`] as `random`, a torchvision weight set
//! (`IMAGENET1K_V1`) or a file path. `Display` and `FromStr` are inverses:
//! `x.to_string().parse() == Ok(x)`.

use super::{Device, Pooling, Weights};
use std::fmt;
use std::str::FromStr;

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pooling::Off => f.write_str("none"),
            Pooling::Avg { h, w } => write!(f, "avg:{h}x{w}"),
            Pooling::Max { h, w } => write!(f, "max:{h}x{w}"),
        }
    }
}

impl FromStr for Pooling {
    type Err = String;

    /// `none`, `avg:HxW` or `max:HxW`, and `avg:N` / `max:N` for `N×N` (each side 1 to
    /// 4096).
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "pooling is `none`, `avg:HxW` or `max:HxW` (e.g. `avg:2x2`)";
        if s == "none" {
            return Ok(Pooling::Off);
        }
        let Some((kind, dims)) = s.split_once(':') else {
            return Err(format!("`{s}`: {usage}"));
        };
        let (h, w) = dims.split_once(['x', 'X']).unwrap_or((dims, dims));
        let side = |v: &str| {
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=4096).contains(n))
        };
        let (Some(h), Some(w)) = (side(h), side(w)) else {
            return Err(format!(
                "`{s}`: the output size must be HxW with each side from 1 to 4096; {usage}"
            ));
        };
        match kind {
            "avg" => Ok(Pooling::Avg { h, w }),
            "max" => Ok(Pooling::Max { h, w }),
            _ => Err(format!("`{s}`: {usage}")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    /// `auto`, `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<u32>().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("`{s}`: the device is `auto`, `cpu`, `cuda` or `cuda:N`")),
        }
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weights::Random => f.write_str("random"),
            Weights::Torchvision(name) | Weights::File(name) => f.write_str(name),
        }
    }
}

impl Weights {
    /// Whether `s` has the form of a torchvision weight set's name: capitals, digits and
    /// underscores, starting with a capital (`IMAGENET1K_V1`, `DEFAULT`).
    pub fn is_set_name(s: &str) -> bool {
        s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    }
}

impl FromStr for Weights {
    type Err = String;

    /// `random`; a weight set's name (see [`Weights::is_set_name`]); anything else is a file
    /// path. Whether the set exists for an architecture, and the `imagenet` alias, are the
    /// planner's to decide (they depend on the architecture).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            Err("the weights are `random`, a torchvision weight set or a file path".into())
        } else if s == "random" {
            Ok(Weights::Random)
        } else if Weights::is_set_name(s) {
            Ok(Weights::Torchvision(s.to_owned()))
        } else {
            Ok(Weights::File(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for p in [
            Pooling::Off,
            Pooling::Avg { h: 2, w: 3 },
            Pooling::Max { h: 4096, w: 1 },
        ] {
            assert_eq!(p.to_string().parse::<Pooling>(), Ok(p));
        }
        assert_eq!("avg:4".parse::<Pooling>(), Ok(Pooling::Avg { h: 4, w: 4 }));
        assert_eq!(Pooling::Avg { h: 2, w: 2 }.to_string(), "avg:2x2");
        for bad in ["avg", "avg:0", "avg:2x4097", "mean:2x2", "", "avg:2xq"] {
            assert!(bad.parse::<Pooling>().is_err(), "{bad}");
        }
        for d in [Device::Auto, Device::Cpu, Device::Cuda(0), Device::Cuda(7)] {
            assert_eq!(d.to_string().parse::<Device>(), Ok(d));
        }
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        for bad in ["gpu", "cuda:", "cuda:-1", "CPU"] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
        for w in [
            Weights::Random,
            Weights::Torchvision("IMAGENET1K_V2".into()),
            Weights::File("nets/resnet18.pth".into()),
            Weights::File("Net.pth".into()),
        ] {
            assert_eq!(w.to_string().parse::<Weights>(), Ok(w.clone()), "{w}");
        }
        assert!("".parse::<Weights>().is_err());
    }
}
