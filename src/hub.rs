//! torchvision's named weight sets (`weights imagenet`, `weights IMAGENET1K_V2`): which file
//! each one is, where torch keeps it, and how it is fetched.
//!
//! torchvision publishes its weights as `https://download.pytorch.org/models/<file>`, and torch
//! hub caches them in `$TORCH_HOME/hub/checkpoints` (`TORCH_HOME` defaults to
//! `$XDG_CACHE_HOME/torch`, else `~/.cache/torch`). psyrun uses the same folder, so a file
//! torchvision already downloaded is reused and the other way round. Every file name carries
//! the first hex digits of the file's SHA-256 (`resnet50-0676ba61.pth`); a cached file is
//! checked against them before use, and so is every download before it gets its final name.
//!
//! Downloads stream into a temporary file in the cache folder, are checked, then renamed: a
//! failed, interrupted or corrupt download leaves nothing under the final name.
//! [`BASE_URL_VAR`] (`PSYRUN_WEIGHTS_URL`) replaces the base URL, for labs with a mirror;
//! proxies are taken from the usual `HTTPS_PROXY`/`NO_PROXY` variables. Offline, put the file
//! into the cache folder by hand.
//!
//! CLIP's and DINOv2's weights are named sets too (`weights openai`, `weights dinov2`, see
//! [`usual_weights`]), published elsewhere ([`WeightFile::url`]) and kept in the same folder
//! under their published names. OpenAI's URLs carry each file's whole SHA-256, which the file
//! is checked against ([`WeightFile::sha256`]); Meta publishes no hash of DINOv2's files, so
//! those are only checked to be complete (the size the server announced) and then to hold
//! exactly the architecture's keys and shapes when loaded; the run's manifest records their
//! SHA-256 either way. A mirror ([`BASE_URL_VAR`]) serves every file under its published name.
//!
//! This module only finds files; loading them is the runner's job.

use crate::models::catalog::{Arch, Family};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Where torchvision publishes its weights; file names are appended after a `/`.
pub const DEFAULT_BASE_URL: &str = "https://download.pytorch.org/models";

/// The environment variable that replaces [`DEFAULT_BASE_URL`] (a mirror).
pub const BASE_URL_VAR: &str = "PSYRUN_WEIGHTS_URL";

/// One weight set as torchvision publishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightFile {
    /// The architecture.
    pub arch: Arch,
    /// torchvision's name of the set, e.g. `IMAGENET1K_V1`.
    pub set: &'static str,
    /// The published file name, e.g. `resnet50-0676ba61.pth`.
    pub file: &'static str,
    /// Where it is published, when not under torchvision's [`DEFAULT_BASE_URL`] (CLIP's and
    /// DINOv2's files).
    pub url: Option<&'static str>,
    /// Its whole SHA-256 when the publisher gives it (OpenAI's URLs carry it); torchvision's
    /// names carry its first hex digits instead ([`hash_prefix`]).
    pub sha256: Option<&'static str>,
}

impl WeightFile {
    const fn new(arch: Arch, set: &'static str, file: &'static str) -> Self {
        Self {
            arch,
            set,
            file,
            url: None,
            sha256: None,
        }
    }

    /// A file published at `url` (its last component is `file`), with its SHA-256 if known.
    const fn at(
        arch: Arch,
        set: &'static str,
        file: &'static str,
        url: &'static str,
        sha256: Option<&'static str>,
    ) -> Self {
        Self {
            arch,
            set,
            file,
            url: Some(url),
            sha256,
        }
    }

    /// What the file's SHA-256 must start with: its whole published hash, else the prefix in
    /// a torchvision file's name; `None` when nothing is published (DINOv2).
    pub fn expected_sha256(&self) -> Option<&'static str> {
        match (self.sha256, self.url) {
            (Some(h), _) => Some(h),
            (None, None) => hash_prefix(self.file),
            (None, Some(_)) => None,
        }
    }
}

/// The keyword an experiment names a network's usual weights by, and the set it stands for:
/// `imagenet` (`IMAGENET1K_V1`) for torchvision's networks, `openai` (`OPENAI`, OpenAI's
/// released CLIP weights) for CLIP's, `dinov2` (`LVD142M`, Meta's released DINOv2 weights)
/// for DINOv2's.
pub fn usual_weights(arch: Arch) -> (&'static str, &'static str) {
    match crate::models::catalog::family(arch) {
        Family::Clip => ("openai", "OPENAI"),
        Family::Dinov2 => ("dinov2", "LVD142M"),
        _ => ("imagenet", "IMAGENET1K_V1"),
    }
}

/// Every weight set of the catalog's architectures, as torchvision 0.28 publishes them.
pub const TABLE: &[WeightFile] = &[
    // scripts/hub_table.py, torchvision 0.28.0+cu130
    WeightFile::new(Arch::Resnet18, "IMAGENET1K_V1", "resnet18-f37072fd.pth"),
    WeightFile::new(Arch::Resnet34, "IMAGENET1K_V1", "resnet34-b627a593.pth"),
    WeightFile::new(Arch::Resnet50, "IMAGENET1K_V1", "resnet50-0676ba61.pth"),
    WeightFile::new(Arch::Resnet50, "IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
    WeightFile::new(Arch::Resnet101, "IMAGENET1K_V1", "resnet101-63fe2227.pth"),
    WeightFile::new(Arch::Resnet101, "IMAGENET1K_V2", "resnet101-cd907fc2.pth"),
    WeightFile::new(Arch::Resnet152, "IMAGENET1K_V1", "resnet152-394f9c45.pth"),
    WeightFile::new(Arch::Resnet152, "IMAGENET1K_V2", "resnet152-f82ba261.pth"),
    WeightFile::new(
        Arch::Resnext50x32x4d,
        "IMAGENET1K_V1",
        "resnext50_32x4d-7cdf4587.pth",
    ),
    WeightFile::new(
        Arch::Resnext50x32x4d,
        "IMAGENET1K_V2",
        "resnext50_32x4d-1a0047aa.pth",
    ),
    WeightFile::new(
        Arch::Resnext101x32x8d,
        "IMAGENET1K_V1",
        "resnext101_32x8d-8ba56ff5.pth",
    ),
    WeightFile::new(
        Arch::Resnext101x32x8d,
        "IMAGENET1K_V2",
        "resnext101_32x8d-110c445d.pth",
    ),
    WeightFile::new(
        Arch::Resnext101x64x4d,
        "IMAGENET1K_V1",
        "resnext101_64x4d-173b62eb.pth",
    ),
    WeightFile::new(
        Arch::WideResnet50x2,
        "IMAGENET1K_V1",
        "wide_resnet50_2-95faca4d.pth",
    ),
    WeightFile::new(
        Arch::WideResnet50x2,
        "IMAGENET1K_V2",
        "wide_resnet50_2-9ba9bcbe.pth",
    ),
    WeightFile::new(
        Arch::WideResnet101x2,
        "IMAGENET1K_V1",
        "wide_resnet101_2-32ee1156.pth",
    ),
    WeightFile::new(
        Arch::WideResnet101x2,
        "IMAGENET1K_V2",
        "wide_resnet101_2-d733dc28.pth",
    ),
    WeightFile::new(Arch::Vgg11, "IMAGENET1K_V1", "vgg11-8a719046.pth"),
    WeightFile::new(Arch::Vgg13, "IMAGENET1K_V1", "vgg13-19584684.pth"),
    WeightFile::new(Arch::Vgg16, "IMAGENET1K_V1", "vgg16-397923af.pth"),
    WeightFile::new(
        Arch::Vgg16,
        "IMAGENET1K_FEATURES",
        "vgg16_features-amdegroot-88682ab5.pth",
    ),
    WeightFile::new(Arch::Vgg19, "IMAGENET1K_V1", "vgg19-dcbb9e9d.pth"),
    WeightFile::new(Arch::Vgg11Bn, "IMAGENET1K_V1", "vgg11_bn-6002323d.pth"),
    WeightFile::new(Arch::Vgg13Bn, "IMAGENET1K_V1", "vgg13_bn-abd245e5.pth"),
    WeightFile::new(Arch::Vgg16Bn, "IMAGENET1K_V1", "vgg16_bn-6c64b313.pth"),
    WeightFile::new(Arch::Vgg19Bn, "IMAGENET1K_V1", "vgg19_bn-c79401a0.pth"),
    WeightFile::new(Arch::Alexnet, "IMAGENET1K_V1", "alexnet-owt-7be5be79.pth"),
    WeightFile::new(
        Arch::MobilenetV2,
        "IMAGENET1K_V1",
        "mobilenet_v2-b0353104.pth",
    ),
    WeightFile::new(
        Arch::MobilenetV2,
        "IMAGENET1K_V2",
        "mobilenet_v2-7ebf99e0.pth",
    ),
    WeightFile::new(
        Arch::MobilenetV3Small,
        "IMAGENET1K_V1",
        "mobilenet_v3_small-047dcff4.pth",
    ),
    WeightFile::new(
        Arch::MobilenetV3Large,
        "IMAGENET1K_V1",
        "mobilenet_v3_large-8738ca79.pth",
    ),
    WeightFile::new(
        Arch::MobilenetV3Large,
        "IMAGENET1K_V2",
        "mobilenet_v3_large-5c1a4163.pth",
    ),
    WeightFile::new(
        Arch::EfficientnetB0,
        "IMAGENET1K_V1",
        "efficientnet_b0_rwightman-7f5810bc.pth",
    ),
    WeightFile::new(
        Arch::EfficientnetB1,
        "IMAGENET1K_V1",
        "efficientnet_b1_rwightman-bac287d4.pth",
    ),
    WeightFile::new(
        Arch::EfficientnetB1,
        "IMAGENET1K_V2",
        "efficientnet_b1-c27df63c.pth",
    ),
    WeightFile::new(
        Arch::EfficientnetB2,
        "IMAGENET1K_V1",
        "efficientnet_b2_rwightman-c35c1473.pth",
    ),
    WeightFile::new(
        Arch::EfficientnetB3,
        "IMAGENET1K_V1",
        "efficientnet_b3_rwightman-b3899882.pth",
    ),
    WeightFile::new(
        Arch::ConvnextTiny,
        "IMAGENET1K_V1",
        "convnext_tiny-983f1562.pth",
    ),
    WeightFile::new(
        Arch::ConvnextSmall,
        "IMAGENET1K_V1",
        "convnext_small-0c510722.pth",
    ),
    WeightFile::new(
        Arch::ConvnextBase,
        "IMAGENET1K_V1",
        "convnext_base-6075fbad.pth",
    ),
    WeightFile::new(
        Arch::Squeezenet1x0,
        "IMAGENET1K_V1",
        "squeezenet1_0-b66bff10.pth",
    ),
    WeightFile::new(
        Arch::Squeezenet1x1,
        "IMAGENET1K_V1",
        "squeezenet1_1-b8a52dc0.pth",
    ),
    WeightFile::new(
        Arch::ShufflenetV2X0x5,
        "IMAGENET1K_V1",
        "shufflenetv2_x0.5-f707e7126e.pth",
    ),
    WeightFile::new(
        Arch::ShufflenetV2X1x0,
        "IMAGENET1K_V1",
        "shufflenetv2_x1-5666bf0f80.pth",
    ),
    WeightFile::new(
        Arch::ShufflenetV2X1x5,
        "IMAGENET1K_V1",
        "shufflenetv2_x1_5-3c479a10.pth",
    ),
    WeightFile::new(
        Arch::ShufflenetV2X2x0,
        "IMAGENET1K_V1",
        "shufflenetv2_x2_0-8be3c8ee.pth",
    ),
    WeightFile::new(
        Arch::RegnetYx400mf,
        "IMAGENET1K_V1",
        "regnet_y_400mf-c65dace8.pth",
    ),
    WeightFile::new(
        Arch::RegnetYx400mf,
        "IMAGENET1K_V2",
        "regnet_y_400mf-e6988f5f.pth",
    ),
    WeightFile::new(
        Arch::RegnetXx400mf,
        "IMAGENET1K_V1",
        "regnet_x_400mf-adf1edd5.pth",
    ),
    WeightFile::new(
        Arch::RegnetXx400mf,
        "IMAGENET1K_V2",
        "regnet_x_400mf-62229a5f.pth",
    ),
    WeightFile::new(
        Arch::Densenet121,
        "IMAGENET1K_V1",
        "densenet121-a639ec97.pth",
    ),
    WeightFile::new(
        Arch::Densenet169,
        "IMAGENET1K_V1",
        "densenet169-b2777c0a.pth",
    ),
    WeightFile::new(Arch::Googlenet, "IMAGENET1K_V1", "googlenet-1378be20.pth"),
    WeightFile::new(
        Arch::InceptionV3,
        "IMAGENET1K_V1",
        "inception_v3_google-0cc3c7bd.pth",
    ),
    WeightFile::new(
        Arch::EfficientnetV2S,
        "IMAGENET1K_V1",
        "efficientnet_v2_s-dd5fe13b.pth",
    ),
    // The ViTs' 224 px sets (IMAGENET1K_V1: resize 256, or 242 for vit_l_16, bilinear, crop
    // 224; SWAG_LINEAR_V1: resize 224 bicubic); the SWAG_E2E sets are for 384 and 512 px
    // networks, whose position embeddings the catalog's 224 px ViTs do not have.
    WeightFile::new(Arch::VitBx16, "IMAGENET1K_V1", "vit_b_16-c867db91.pth"),
    WeightFile::new(
        Arch::VitBx16,
        "IMAGENET1K_SWAG_LINEAR_V1",
        "vit_b_16_lc_swag-4e70ced5.pth",
    ),
    WeightFile::new(Arch::VitBx32, "IMAGENET1K_V1", "vit_b_32-d86f8d99.pth"),
    WeightFile::new(Arch::VitLx16, "IMAGENET1K_V1", "vit_l_16-852ce7e3.pth"),
    WeightFile::new(
        Arch::VitLx16,
        "IMAGENET1K_SWAG_LINEAR_V1",
        "vit_l_16_lc_swag-4d563306.pth",
    ),
    // OpenAI's CLIP (OPENAI), as open_clip 3.3.0's `pretrained.py` lists them: whole
    // TorchScript models, read for their weights; each URL's folder is the file's SHA-256.
    WeightFile::at(
        Arch::ClipRn50,
        "OPENAI",
        "RN50.pt",
        concat!(
            "https://openaipublic.azureedge.net/clip/models/",
            "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"
        ),
        Some("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"),
    ),
    WeightFile::at(
        Arch::ClipVitBx32,
        "OPENAI",
        "ViT-B-32.pt",
        concat!(
            "https://openaipublic.azureedge.net/clip/models/",
            "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt"
        ),
        Some("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"),
    ),
    WeightFile::at(
        Arch::ClipVitBx16,
        "OPENAI",
        "ViT-B-16.pt",
        concat!(
            "https://openaipublic.azureedge.net/clip/models/",
            "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt"
        ),
        Some("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"),
    ),
    // Meta's DINOv2 (LVD142M), as the `dinov2` hub builds their URLs: state dicts, no
    // published hash.
    WeightFile::at(
        Arch::Dinov2Vits14,
        "LVD142M",
        "dinov2_vits14_pretrain.pth",
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
        None,
    ),
    WeightFile::at(
        Arch::Dinov2Vitb14,
        "LVD142M",
        "dinov2_vitb14_pretrain.pth",
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
        None,
    ),
    WeightFile::at(
        Arch::Dinov2Vits14Reg,
        "LVD142M",
        "dinov2_vits14_reg4_pretrain.pth",
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth",
        None,
    ),
    WeightFile::at(
        Arch::Dinov2Vitb14Reg,
        "LVD142M",
        "dinov2_vitb14_reg4_pretrain.pth",
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth",
        None,
    ),
    // Swin (IMAGENET1K_V1: resize 232 for swin_t, 246 for swin_s, bicubic, crop 224).
    WeightFile::new(Arch::SwinT, "IMAGENET1K_V1", "swin_t-704ceda3.pth"),
    WeightFile::new(Arch::SwinS, "IMAGENET1K_V1", "swin_s-5e29d889.pth"),
];

/// The published file of a weight set, if torchvision has one.
pub fn lookup(arch: Arch, set: &str) -> Option<&'static WeightFile> {
    TABLE.iter().find(|w| w.arch == arch && w.set == set)
}

/// The SHA-256 prefix a torch hub file name carries, found as torch hub finds it
/// (`torch.hub.HASH_REGEX`, `-([a-f0-9]*)\.`, its first match): the lower-case hex digits
/// between a `-` and a `.` (`resnet50-0676ba61.pth` → `0676ba61`,
/// `shufflenetv2_x0.5-f707e7126e.pth` → `f707e7126e`). `None` when there are none; such a
/// file cannot be checked.
pub fn hash_prefix(file: &str) -> Option<&str> {
    file.match_indices('-')
        .find_map(|(i, _)| {
            let rest = &file[i + 1..];
            let end = rest
                .bytes()
                .position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))?;
            (rest.as_bytes()[end] == b'.').then_some(&rest[..end])
        })
        .filter(|hex| !hex.is_empty())
}

/// torch's home folder from the values of `TORCH_HOME`, `XDG_CACHE_HOME` and `HOME`, as
/// `torch.hub` finds it; a leading `~` is expanded, and empty values count as unset.
pub fn torch_home(
    torch_home: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = set(home);
    let expand = |p: PathBuf| -> Option<PathBuf> {
        match p.strip_prefix("~") {
            Ok(rest) => home.as_ref().map(|h| h.join(rest)),
            Err(_) => Some(p),
        }
    };
    if let Some(t) = set(torch_home) {
        return expand(t);
    }
    let cache = set(xdg_cache_home).unwrap_or_else(|| PathBuf::from("~/.cache"));
    expand(cache.join("torch"))
}

/// What a fetch is doing, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch<'a> {
    /// A cached file is being hash-checked.
    Checking {
        /// The file.
        path: &'a Path,
    },
    /// A download starts.
    Start {
        /// The file name.
        file: &'a str,
        /// Where it comes from.
        url: &'a str,
        /// The cache folder it goes to.
        dir: &'a Path,
        /// Its size in bytes, when the server says.
        total: Option<u64>,
    },
    /// `n` more bytes arrived.
    Bytes(u64),
    /// The download is complete, checked and in place.
    Done {
        /// The file.
        path: &'a Path,
    },
}

/// Why a weight file could not be had. On any error nothing is left under the file's name
/// that was not there before.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No cache folder: none of `TORCH_HOME`, `XDG_CACHE_HOME`, `HOME` is set.
    #[error("no folder for torchvision weights: set TORCH_HOME (torch keeps its weights in $TORCH_HOME/hub/checkpoints)")]
    NoCacheFolder,
    /// torchvision publishes no such weight set for the architecture.
    #[error("torchvision publishes no weight set `{set}` for {arch}")]
    UnknownSet {
        /// The architecture.
        arch: Arch,
        /// The set asked for.
        set: String,
    },
    /// The cache folder cannot be created.
    #[error("cannot create the weights folder {}: {source}", dir.display())]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file in the cache does not have the hash its name promises.
    #[error("{} is corrupt: its SHA-256 starts with {found}, not {expected} as its name says; delete it so that it is downloaded again", path.display())]
    CachedCorrupt {
        /// The cached file.
        path: PathBuf,
        /// The prefix in its name.
        expected: String,
        /// The start of its actual SHA-256.
        found: String,
    },
    /// The download failed: offline, refused, an HTTP error, or cut short.
    #[error("cannot download {file} from {url}: {reason}; to install it by hand (e.g. offline), download it elsewhere and put it into {}", dir.display())]
    Download {
        /// The file name.
        file: String,
        /// The URL.
        url: String,
        /// The cache folder, where the file can be put by hand.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The downloaded bytes do not have the hash the name promises (nothing was kept).
    #[error("the download of {file} from {url} is corrupt: its SHA-256 starts with {found}, not {expected}; nothing was kept; try again, check the mirror if {BASE_URL_VAR} is set, or put a good copy into {}", dir.display())]
    Corrupt {
        /// The file name.
        file: String,
        /// The URL.
        url: String,
        /// The cache folder.
        dir: PathBuf,
        /// The prefix in its name.
        expected: String,
        /// The start of the downloaded bytes' SHA-256.
        found: String,
    },
    /// The stop flag was set during the download (Ctrl-C); nothing was kept.
    #[error("the download of {file} was interrupted; nothing was kept")]
    Cancelled {
        /// The file name.
        file: String,
    },
    /// Reading or writing a file in the cache failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// A torch hub cache folder and the server that fills it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hub {
    dir: PathBuf,
    base_url: String,
}

impl Hub {
    /// A hub with this checkpoints folder and base URL (a trailing `/` is ignored).
    pub fn new(dir: impl Into<PathBuf>, base_url: &str) -> Self {
        Self {
            dir: dir.into(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// torch's cache folder (`$TORCH_HOME/hub/checkpoints`, see [`torch_home`]) and the base
    /// URL from [`BASE_URL_VAR`], else [`DEFAULT_BASE_URL`].
    pub fn from_env() -> Result<Self, HubError> {
        let var = |k: &str| std::env::var_os(k);
        let home = torch_home(var("TORCH_HOME"), var("XDG_CACHE_HOME"), var("HOME"))
            .ok_or(HubError::NoCacheFolder)?;
        let base = std::env::var(BASE_URL_VAR)
            .ok()
            .filter(|u| !u.trim().is_empty());
        Ok(Self::new(
            home.join("hub").join("checkpoints"),
            base.as_deref().map_or(DEFAULT_BASE_URL, str::trim),
        ))
    }

    /// The checkpoints folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Where a file is downloaded from.
    pub fn url(&self, file: &str) -> String {
        format!("{}/{file}", self.base_url)
    }

    /// Where a weight set's file is downloaded from: its published URL, or under the base
    /// URL when that is a mirror (or the file is torchvision's).
    pub fn url_of(&self, w: &WeightFile) -> String {
        match w.url {
            Some(url) if self.base_url == DEFAULT_BASE_URL => url.to_owned(),
            _ => self.url(w.file),
        }
    }

    /// The checked file of a weight set, downloaded first if it is not in the cache (see
    /// [`Hub::fetch`]; checked against [`WeightFile::expected_sha256`]).
    pub fn resolve(
        &self,
        arch: Arch,
        set: &str,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(Fetch<'_>),
    ) -> Result<PathBuf, HubError> {
        let w = lookup(arch, set).ok_or_else(|| HubError::UnknownSet {
            arch,
            set: set.to_owned(),
        })?;
        self.fetch_from(w.file, &self.url_of(w), w.expected_sha256(), stop, progress)
    }

    /// The checked file `file` of the cache folder, downloaded first if it is not there. The
    /// hash prefix in the name ([`hash_prefix`]) is checked; a name without one is not.
    /// Setting `stop` (e.g. from a Ctrl-C handler) ends a download early with
    /// [`HubError::Cancelled`].
    pub fn fetch(
        &self,
        file: &str,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(Fetch<'_>),
    ) -> Result<PathBuf, HubError> {
        self.fetch_from(file, &self.url(file), hash_prefix(file), stop, progress)
    }

    /// [`Hub::fetch`] from `url`, the file's SHA-256 to start with `expected` (a whole hash
    /// or a prefix; `None`: not checked, a cached file then used as it is).
    fn fetch_from(
        &self,
        file: &str,
        url: &str,
        expected: Option<&str>,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(Fetch<'_>),
    ) -> Result<PathBuf, HubError> {
        let path = self.dir.join(file);
        if path.is_file() && expected.is_none() {
            return Ok(path);
        }
        if path.is_file() {
            progress(Fetch::Checking { path: &path });
            let found = sha256_of(&path).map_err(|source| HubError::Io {
                path: path.clone(),
                source,
            })?;
            return match expected {
                Some(e) if !found.starts_with(e) => Err(HubError::CachedCorrupt {
                    found: found[..e.len().min(found.len())].to_owned(),
                    expected: e.to_owned(),
                    path,
                }),
                _ => Ok(path),
            };
        }
        fs::create_dir_all(&self.dir).map_err(|source| HubError::Folder {
            dir: self.dir.clone(),
            source,
        })?;
        self.download(file, url, &path, expected, stop, progress)?;
        progress(Fetch::Done { path: &path });
        Ok(path)
    }

    fn download(
        &self,
        file: &str,
        url: &str,
        path: &Path,
        expected: Option<&str>,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(Fetch<'_>),
    ) -> Result<(), HubError> {
        let url = url.to_owned();
        let failed = |reason: String| HubError::Download {
            file: file.to_owned(),
            url: url.clone(),
            dir: self.dir.clone(),
            reason,
        };
        let mut response = agent(&url).get(&url).call().map_err(|e| {
            failed(match e {
                ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
                e => e.to_string(),
            })
        })?;
        let total = response.body().content_length();
        let mut reader = response.body_mut().as_reader();

        let partial = Partial::create(&self.dir, file)?;
        progress(Fetch::Start {
            file,
            url: &url,
            dir: &self.dir,
            total,
        });
        let mut out = &partial.file;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut received = 0u64;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(HubError::Cancelled {
                    file: file.to_owned(),
                });
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let of = total.map_or(String::new(), |t| format!(" of {t}"));
                    return Err(failed(format!(
                        "the transfer broke off after {received}{of} bytes ({e})"
                    )));
                }
            };
            let chunk = &buf[..n];
            hasher.update(chunk);
            out.write_all(chunk).map_err(|e| partial.io(e))?;
            received += n as u64;
            progress(Fetch::Bytes(n as u64));
        }
        if let Some(t) = total.filter(|&t| t != received) {
            return Err(failed(format!(
                "the transfer broke off after {received} of {t} bytes"
            )));
        }
        out.flush().map_err(|e| partial.io(e))?;
        partial.file.sync_all().map_err(|e| partial.io(e))?;
        let found = hex(&hasher.finalize());
        if let Some(e) = expected.filter(|e| !found.starts_with(e)) {
            return Err(HubError::Corrupt {
                file: file.to_owned(),
                url,
                dir: self.dir.clone(),
                expected: e.to_owned(),
                found: found[..e.len().min(found.len())].to_owned(),
            });
        }
        partial.persist(path)
    }
}

/// The HTTP client: bounded waits, so that a dead network fails instead of hanging.
fn agent(url: &str) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .user_agent(concat!("psyrun/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)));
    if is_loopback(url) {
        // A server on this machine (a local mirror, the tests) is never behind a proxy.
        config = config.proxy(None);
    }
    config.build().into()
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost") || host.starts_with("127.") || host == "::1"
}

/// A temporary file in the cache folder, removed on drop unless persisted.
struct Partial {
    path: PathBuf,
    file: File,
    kept: bool,
}

impl Partial {
    fn create(dir: &Path, name: &str) -> Result<Self, HubError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{name}.{}.{n}.partial", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| HubError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            file,
            kept: false,
        })
    }

    fn io(&self, source: io::Error) -> HubError {
        HubError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Renames the file to `to` (atomic within a folder).
    fn persist(mut self, to: &Path) -> Result<(), HubError> {
        fs::rename(&self.path, to).map_err(|e| self.io(e))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests;
