//! What kind of PyTorch file a path holds, from its first bytes and (for zip archives) its
//! entry names: used to tell a user who gives a state dict where a TorchScript module is
//! expected (or the other way round) what they have and what to do.

use std::io::{self, Read};
use std::path::Path;
use zip::ZipArchive;

/// The kinds of file psyrun tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A TorchScript archive (`torch.jit.save`): a zip with `code/` and `constants.pkl`.
    TorchScript,
    /// A `torch.save` zip archive (a state dict or any pickled object): `data.pkl`, no code.
    TorchSave,
    /// The pre-1.6 `torch.save` format: pickles back to back.
    LegacyTorchSave,
    /// A `.safetensors` file.
    Safetensors,
    /// A zip archive that is neither of the above.
    OtherZip,
    /// Anything else (including an empty file).
    Unknown,
}

impl FileKind {
    /// How the kind is called in messages.
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::TorchScript => "a TorchScript module (torch.jit.save)",
            FileKind::TorchSave => "a torch.save checkpoint (e.g. a state dict), not TorchScript",
            FileKind::LegacyTorchSave => {
                "an old-format torch.save checkpoint (PyTorch < 1.6), not TorchScript"
            }
            FileKind::Safetensors => "a safetensors weights file, not TorchScript",
            FileKind::OtherZip => "a zip archive that is neither TorchScript nor torch.save",
            FileKind::Unknown => "not a PyTorch file",
        }
    }
}

/// Classifies the file at `path` (reads its first bytes and, for a zip, its directory).
pub fn file_kind(path: &Path) -> io::Result<FileKind> {
    let mut f = crate::source::open_regular(path)?;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        let Ok(zip) = ZipArchive::new(crate::source::open_regular(path)?) else {
            return Ok(FileKind::Unknown);
        };
        // A name that cannot be decoded makes the directory as unreadable as a broken one.
        let Ok(names) = zip.file_names().collect::<Result<Vec<_>, _>>() else {
            return Ok(FileKind::Unknown);
        };
        return Ok(zip_kind(names.iter().map(|n| n.as_ref())));
    }
    // Pickle protocol 2+ starts with PROTO (0x80) and the protocol number.
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Ok(FileKind::LegacyTorchSave);
    }
    // safetensors: an 8-byte little-endian header length, then the JSON header.
    if head.len() >= 9 && head[8] == b'{' {
        return Ok(FileKind::Safetensors);
    }
    Ok(FileKind::Unknown)
}

/// Classifies a zip archive by its entry names (`<prefix>/<record>`).
pub fn zip_kind<'a>(names: impl Iterator<Item = &'a str>) -> FileKind {
    let (mut code, mut constants, mut data) = (false, false, false);
    for name in names {
        let record = name.split_once('/').map_or(name, |(_, rest)| rest);
        code |= record.starts_with("code/");
        constants |= record == "constants.pkl";
        data |= record == "data.pkl";
    }
    if code || constants {
        FileKind::TorchScript
    } else if data {
        FileKind::TorchSave
    } else {
        FileKind::OtherZip
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("psyrun-kind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn zip_with(names: &[&str]) -> Vec<u8> {
        let mut buf = io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        for n in names {
            w.start_file(*n, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"x").unwrap();
        }
        w.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn zip_archives_are_told_apart_by_their_records() {
        let script = zip_with(&[
            "net/data.pkl",
            "net/code/__torch__/torchvision/models/resnet.py",
            "net/constants.pkl",
            "net/version",
        ]);
        let saved = zip_with(&["net/data.pkl", "net/data/0", "net/version", "net/byteorder"]);
        let other = zip_with(&["readme.txt"]);
        assert_eq!(
            file_kind(&temp("s.pt", &script)).unwrap(),
            FileKind::TorchScript
        );
        assert_eq!(
            file_kind(&temp("d.pth", &saved)).unwrap(),
            FileKind::TorchSave
        );
        assert_eq!(
            file_kind(&temp("o.zip", &other)).unwrap(),
            FileKind::OtherZip
        );
    }

    #[test]
    fn files_written_by_pytorch_are_recognised() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let kind = |p: &str| file_kind(&dir.join(p)).unwrap();
        assert_eq!(kind("checkpoint/torchscript.pt"), FileKind::TorchScript);
        assert_eq!(kind("torchscript/tiny_cnn.pt"), FileKind::TorchScript);
        assert_eq!(kind("checkpoint/mixed.pth"), FileKind::TorchSave);
        assert_eq!(kind("checkpoint/nested.pth"), FileKind::TorchSave);
        assert_eq!(kind("checkpoint/legacy.pth"), FileKind::LegacyTorchSave);
    }

    #[test]
    fn other_formats_by_their_first_bytes() {
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{}");
        assert_eq!(
            file_kind(&temp("w.safetensors", &st)).unwrap(),
            FileKind::Safetensors
        );
        assert_eq!(
            file_kind(&temp("old.pth", &[0x80, 0x02, 0x8a, 0x0a])).unwrap(),
            FileKind::LegacyTorchSave
        );
        assert_eq!(file_kind(&temp("e.pt", b"")).unwrap(), FileKind::Unknown);
        assert_eq!(
            file_kind(&temp("t.pt", b"hello, world, not a model")).unwrap(),
            FileKind::Unknown
        );
        // A file that starts like a zip but is cut short.
        assert_eq!(
            file_kind(&temp("cut.pt", b"PK\x03\x04\x14\x00")).unwrap(),
            FileKind::Unknown
        );
        assert!(file_kind(Path::new("/nonexistent/psyrun/x.pt")).is_err());
    }
}
