//! What a run writes, against docs/outputs.md: every file of a run folder and every CSV
//! column documented (and nothing documented that a run does not write), `results.json` and
//! `manifest.json` fields likewise; and `report.html` rendered in a real headless browser.

use crate::run::{files, run_in, scratch, text, tiny_with, write};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tiny experiment with two repeats (overlaid curves, a legend) and a fitted function.
fn run_tiny(tag: &str) -> (PathBuf, PathBuf, String) {
    let dir = scratch(tag);
    let blocks = "  observer { decision softmax(temperature: 1) }\n  fit weibull { bootstrap 20 }";
    write(&dir, "tiny.psy", &tiny_with("tiny", 2, blocks));
    let o = run_in(&dir, &["run", "tiny.psy", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = dir.join("out");
    (dir, out, text(&o.stdout))
}

/// The backticked names in the first cell of each table row of `section` (a `## ` or `### `
/// heading's text), in order; a cell may name several (`` `a.png`, `a.svg` ``).
pub(crate) fn documented(doc: &str, section: &str) -> Vec<String> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != section);
    assert!(lines.next().is_some(), "docs/outputs.md has no `{section}`");
    let mut names = Vec::new();
    for l in lines {
        if l.starts_with('#') {
            break;
        }
        let Some(row) = l.strip_prefix('|') else {
            continue;
        };
        let first = row.split('|').next().unwrap_or("");
        for part in first.split(',') {
            let part = part.trim();
            if let Some(name) = part.strip_prefix('`').and_then(|p| p.strip_suffix('`')) {
                names.push(name.to_string());
            }
        }
    }
    names
}

pub(crate) fn outputs_md() -> String {
    fs::read_to_string(crate::root().join("docs/outputs.md")).unwrap()
}

#[test]
fn every_file_and_column_a_run_writes_is_documented_and_nothing_else() {
    let (dir, out, stdout) = run_tiny("documented");
    let doc = outputs_md();

    // Files: the folder holds exactly the documented files (INCOMPLETE only while running).
    let mut listed = documented(&doc, "## Files");
    listed.retain(|f| f != "INCOMPLETE");
    listed.sort();
    assert_eq!(files(&out), listed, "docs/outputs.md's file table");

    // CSV files: own columns, in the documented order, then the identifying columns.
    let identity = documented(&doc, "### Identifying columns");
    assert_eq!(identity.len(), 9);
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let id = manifest["condition"]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 12, "{id}");
    let mut csvs = 0;
    for name in files(&out).iter().filter(|f| f.ends_with(".csv")) {
        csvs += 1;
        let own = documented(&doc, &format!("### `{name}`"));
        let want: Vec<String> = own.iter().chain(&identity).cloned().collect();
        let body = fs::read_to_string(out.join(name)).unwrap();
        let header: Vec<String> = body
            .lines()
            .next()
            .unwrap()
            .split(',')
            .map(String::from)
            .collect();
        assert_eq!(header, want, "{name}: header against docs/outputs.md");
        // Every row has every column, and ends with the run's identity: the last is the
        // condition's id, as the manifest records it.
        for row in body.lines().skip(1) {
            let cells: Vec<&str> = row.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{name}: {row}");
            assert_eq!(
                cells[cells.len() - 9..],
                ["tiny", "resnet18", "layer1", "random", "avg:2x2", "fp32", "3", "0", &id],
                "{name}"
            );
        }
    }
    assert_eq!(csvs, 5);
    // Every documented CSV section names a file the run wrote.
    for l in doc.lines().filter(|l| l.starts_with("### `")) {
        let name = l.trim_start_matches("### `").trim_end_matches('`');
        assert!(
            out.join(name).is_file(),
            "documented but not written: {name}"
        );
    }

    // results.json and manifest.json: the documented fields, no others.
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(out.join(name)).unwrap()).unwrap()
    };
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let results = json("results.json");
    assert_eq!(
        keys(&results),
        sorted(documented(&doc, "## `results.json`")),
        "results.json"
    );
    let manifest = json("manifest.json");
    assert_eq!(
        keys(&manifest),
        sorted(documented(&doc, "## `manifest.json`")),
        "manifest.json"
    );
    assert_eq!(
        results["manifest"], manifest,
        "results.json holds the manifest"
    );
    assert_eq!(results["identity"]["architecture"], "resnet18");
    assert_eq!(results["csf"].as_array().unwrap().len(), 3);
    assert_eq!(
        results["staircases"].as_array().unwrap().len(),
        6,
        "3 × 2 repeats"
    );
    assert_eq!(
        results["training"].as_array().unwrap().len(),
        4,
        "2 epochs × 2"
    );
    // The CSV and JSON hold the same numbers, every digit.
    let csf = fs::read_to_string(out.join("csf.csv")).unwrap();
    let first: Vec<&str> = csf.lines().nth(1).unwrap().split(',').collect();
    let t: f64 = first[1].parse().unwrap();
    assert_eq!(results["csf"][0]["threshold"].as_f64().unwrap(), t);

    // The terminal table: ascending frequencies, four significant digits.
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("frequency"))
        .skip(1)
        .take_while(|l| !l.starts_with("results:"))
        .collect();
    let freqs: Vec<&str> = rows
        .iter()
        .map(|r| r.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(freqs, ["2", "4", "8"], "{stdout}");
    let _ = fs::remove_dir_all(&dir);
}

/// The Chromium to render with: `PSYRUN_CHROMIUM`, else `chromium`, `chromium-browser` or
/// `google-chrome` on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PSYRUN_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs headless Chromium on `page` with `args`, offline (every host name unresolvable) and
/// with a throw-away profile; gives up after two minutes. Returns stdout and stderr (written
/// to files: a pipe nobody reads would stall the browser on a long DOM).
fn headless(browser: &Path, profile: &Path, args: &[String], page: &Path) -> (String, String) {
    let (out_path, err_path) = (profile.with_extension("out"), profile.with_extension("err"));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("chromium starts");
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish in two minutes: {}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (
        fs::read_to_string(&out_path).unwrap_or_default(),
        fs::read_to_string(&err_path).unwrap_or_default(),
    );
    assert!(status.success(), "chromium failed: {err}");
    (out, err)
}

#[test]
fn report_html_renders_in_headless_chromium_with_every_plot() {
    let Some(browser) = chromium() else {
        if std::env::var_os("PSYRUN_REQUIRE_CHROMIUM").is_some_and(|v| v == "1") {
            panic!("PSYRUN_REQUIRE_CHROMIUM=1 but no chromium found (set PSYRUN_CHROMIUM)");
        }
        eprintln!(
            "NOTICE: report_html_renders_in_headless_chromium_with_every_plot skipped: no \
             chromium on the PATH (install it, or set PSYRUN_CHROMIUM; CI requires it)"
        );
        return;
    };
    let (dir, out, _) = run_tiny("chromium");
    let page = out.join("report.html").canonicalize().unwrap();
    let html = fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script"), "no script");
    for attr in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(attr), "nothing fetched: {attr}");
    }

    let profile = dir.join("chromium-profile");
    let (dom, log) = headless(&browser, &profile, &["--dump-dom".to_string()], &page);
    // The browser parsed the whole page: every section, every plot, the preview.
    assert!(dom.contains("</footer>"), "whole page: {dom:.400}");
    let count = |s: &str| dom.matches(s).count();
    assert_eq!(count("<svg"), 4, "four inline plots");
    for id in [
        "plot-csf",
        "plot-csf_linear",
        "plot-psychometric",
        "plot-training",
        "preview",
        "results",
        "warnings",
        "manifest",
        "plan",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(dom.contains("<img alt=\"stimulus preview\" src=\"data:image/png;base64,"));
    assert_eq!(
        count("<tr"),
        3 + 1 + count("<tr><th>"),
        "3 result rows, a header, the manifest"
    );
    assert!(dom.contains("class=\"status complete\""));
    // No load failed and nothing complained on the console.
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("Failed to load resource")
                || l.contains("CONSOLE")
                || l.contains("Uncaught")
                || l.contains("net::ERR")
        })
        .collect();
    assert!(problems.is_empty(), "{problems:?}");

    // A screenshot at a laptop's width is a real picture, not a blank page.
    let shot = dir.join("report.png");
    headless(
        &browser,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1366,2400".to_string(),
            "--hide-scrollbars".to_string(),
        ],
        &page,
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1366, 2400));
    let pixels = &buf[..info.buffer_size()];
    let dark = pixels
        .chunks(info.line_size / info.width as usize)
        .filter(|p| p[0] < 128)
        .count();
    assert!(
        dark > 5000,
        "the page shows text and plots ({dark} dark pixels)"
    );
    if let Some(keep) = std::env::var_os("PSYRUN_KEEP_REPORT") {
        let keep = PathBuf::from(keep);
        let _ = fs::create_dir_all(&keep);
        let _ = fs::copy(&shot, keep.join("report.png"));
        let _ = fs::copy(&page, keep.join("report.html"));
    }
    let _ = fs::remove_dir_all(&dir);
}
