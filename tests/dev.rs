//! `./dev`'s choice of libtorch (docs/setup.md, "Another libtorch"): a version that is not in
//! Cargo.toml's `[workspace.metadata.psyrun] supported` is refused before anything is
//! installed or built, with a message naming the supported ones.

use std::path::Path;
use std::process::{Command, Output};

/// `./dev env` with `vars` set and a cache of its own (nothing may land in it).
fn dev_env(vars: &[(&str, &Path)], cache: &Path) -> Output {
    let mut c = Command::new("bash");
    c.arg(crate::root().join("dev"))
        .arg("env")
        .env("PSYRUN_CACHE", cache)
        .env_remove("LIBTORCH")
        .env_remove("PSYRUN_LIBTORCH")
        .env_remove("PSYRUN_TORCH_PYTHON")
        .env_remove("CARGO_TARGET_DIR");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().expect("bash starts")
}

/// The versions Cargo.toml lists, read independently of `./dev`.
fn supported() -> Vec<String> {
    let toml = std::fs::read_to_string(crate::root().join("Cargo.toml")).unwrap();
    let line = toml
        .lines()
        .find(|l| l.starts_with("supported ="))
        .expect("[workspace.metadata.psyrun] supported");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(|entry| entry.split_whitespace().next().unwrap().to_string())
        .collect()
}

fn refused(o: &Output, version: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(o.stdout.is_empty(), "no exports printed: {err}");
    assert!(
        err.contains(&format!("libtorch {version} is not supported")),
        "{err}"
    );
    let versions = supported();
    assert!(versions.contains(&"2.13.0".to_string()), "{versions:?}");
    assert!(versions.contains(&"2.11.0".to_string()), "{versions:?}");
    for v in &versions {
        assert!(err.contains(v.as_str()), "names {v}: {err}");
    }
}

#[test]
fn dev_refuses_an_unsupported_libtorch_and_names_the_supported_ones() {
    let dir = std::env::temp_dir().join(format!("psyrun-dev-{}", std::process::id()));
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();

    // Asked for by number: tch 0.25, the release for 2.12, was never published.
    let o = dev_env(&[("PSYRUN_LIBTORCH", Path::new("2.12.0"))], &cache);
    refused(&o, "2.12.0");

    // Pointed at: a wheel's torch/ folder says its version in version.py.
    let torch = dir.join("torch");
    std::fs::create_dir_all(torch.join("lib")).unwrap();
    std::fs::write(torch.join("version.py"), "__version__ = '2.10.0+cu128'\n").unwrap();
    let o = dev_env(&[("LIBTORCH", &torch)], &cache);
    refused(&o, "2.10.0");

    // A libtorch zip's folder says it in build-version.
    std::fs::remove_file(torch.join("version.py")).unwrap();
    std::fs::write(torch.join("build-version"), "2.9.1+cpu\n").unwrap();
    let o = dev_env(&[("LIBTORCH", &torch)], &cache);
    refused(&o, "2.9.1");

    // A version asked for that is not the one LIBTORCH points at (e.g. LIBTORCH left over
    // from `./dev env`): refused, saying which is which, rather than building a mix.
    std::fs::remove_file(torch.join("build-version")).unwrap();
    std::fs::write(torch.join("version.py"), "__version__ = '2.13.0+cu130'\n").unwrap();
    let o = dev_env(
        &[
            ("LIBTORCH", &torch),
            ("PSYRUN_LIBTORCH", Path::new("2.11.0")),
        ],
        &cache,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("PSYRUN_LIBTORCH=2.11.0 but LIBTORCH="),
        "{err}"
    );
    assert!(err.contains("is libtorch 2.13.0; unset LIBTORCH"), "{err}");

    // Nothing was installed or copied for any of them.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
