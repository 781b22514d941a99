use super::*;
use crate::plan::{compile, Plan};
use crate::source::SourceFile;
use crate::staircase::Procedure;
use chrono::{TimeZone, Utc};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "psyrun-report-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn plan() -> Plan {
    let file = SourceFile::new(
        "experiments/quick_csf.psy",
        include_str!("../../experiments/quick_csf.psy"),
    );
    compile(&file).plan.expect("quick_csf.psy compiles")
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 31, 12, 34, 56).unwrap()
}

fn manifest(plan: &Plan) -> Manifest {
    Manifest {
        psyrun_version: PSYRUN_VERSION.to_string(),
        libtorch_version: "2.13.0".to_string(),
        device: "cpu".to_string(),
        seed: plan.seed,
        experiment_file: "experiments/quick_csf.psy".to_string(),
        experiment_sha256: sha256_bytes(include_bytes!("../../experiments/quick_csf.psy")),
        weights: "random".to_string(),
        weights_sha256: None,
        started: rfc3339(now()),
        finished: None,
        command_line: vec!["psyrun".into(), "experiments/quick_csf.psy".into()],
        threads: 2,
        complete: false,
        phase_seconds: vec![("training".into(), 1.5)],
        precision: "fp32".into(),
        peak_rss_bytes: Some(2 << 30),
        stimuli: "host".into(),
        decision_noise: None,
        resumed: Vec::new(),
        warnings: vec!["psy::plan::example: a warning the run gave".into()],
        overrides: Vec::new(),
        condition: None,
        sources: Vec::new(),
    }
}

/// A 2AFC Weibull observer whose threshold rises with frequency.
fn results() -> Results {
    let plan = plan();
    let staircases: Vec<FrequencyResult> = plan
        .test
        .frequencies
        .iter()
        .map(|&f| {
            let alpha = 0.01 * f;
            run_procedure(&plan, f, |c| {
                0.5 + 0.5 * (1.0 - (-(c / alpha).powf(2.0)).exp())
            })
        })
        .collect();
    let training = (1..=3)
        .map(|epoch| EpochRecord {
            repeat: 0,
            epoch,
            loss: 0.7 / epoch as f64,
            accuracy: 0.5 + 0.1 * epoch as f64,
        })
        .collect();
    let csf = summarize(&plan, &staircases);
    Results {
        manifest: manifest(&plan),
        plan,
        training,
        staircases,
        csf,
    }
}

/// The plan's procedure run to its end against an observer with expected accuracy
/// `accuracy(contrast)`, counts rounded.
fn run_procedure(plan: &Plan, frequency: f64, accuracy: impl Fn(f64) -> f64) -> FrequencyResult {
    let mut p = Procedure::from_plan(&plan.staircase, 16);
    while let Some(r) = p.next() {
        let k = (accuracy(r.contrast) * f64::from(r.trials)).round() as u32;
        p.record(k.min(r.trials));
    }
    FrequencyResult::from_procedure(frequency, 0, &p, 0.0).unwrap()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().expect("PNG decodes");
    (reader.info().width, reader.info().height)
}

/// The rows of a CSV file whose header is `header` followed by the identity's columns.
fn csv_rows(path: &Path, header: &str) -> Vec<Vec<String>> {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = format!("{header},{}", Identity::COLUMNS.join(","));
    assert_eq!(lines.next(), Some(header.as_str()), "{}", path.display());
    lines
        .map(|l| {
            let cells: Vec<String> = l.split(',').map(str::to_string).collect();
            assert_eq!(cells.len(), header.split(',').count(), "{l}");
            cells
        })
        .collect()
}

#[test]
fn a_full_run_folder_has_every_file_and_each_parses() {
    let tmp = TempDir::new("full");
    let mut results = results();
    let folder = RunFolder::create_default(&tmp.0, "quick_csf", now()).unwrap();
    let dir = folder.path().to_path_buf();
    assert_eq!(dir, tmp.0.join("quick_csf").join("20250131-123456"));
    assert!(dir.join(INCOMPLETE).is_file());
    assert!(fs::read_to_string(dir.join(INCOMPLETE))
        .unwrap()
        .contains("has not finished"));

    folder.begin(&results.plan, &results.manifest).unwrap();
    let m: Manifest =
        serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(!m.complete && m.finished.is_none());

    folder.write_partial(&results).unwrap();
    assert!(dir.join(INCOMPLETE).is_file());

    let finished = now() + chrono::Duration::seconds(61);
    let out = folder.finish(&mut results, finished).unwrap();
    assert_eq!(out, dir);
    assert!(!dir.join(INCOMPLETE).exists());

    // plan.ron round-trips.
    let plan: Plan = ron::from_str(&fs::read_to_string(dir.join("plan.ron")).unwrap()).unwrap();
    assert_eq!(plan, results.plan);
    // manifest.json is the final one.
    let m: Manifest =
        serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m, results.manifest);
    assert!(m.complete);
    assert_eq!(m.finished.as_deref(), Some("2025-01-31T12:35:57Z"));

    let training = csv_rows(&dir.join("training.csv"), "epoch,loss,accuracy,repeat");
    assert_eq!(training.len(), 3);
    assert_eq!(
        training[2][1].parse::<f64>().unwrap(),
        0.7 / 3.0,
        "round-trips"
    );

    let steps: usize = results.staircases.iter().map(|f| f.steps.len()).sum();
    let staircase = csv_rows(
        &dir.join("staircase.csv"),
        "frequency_cpi,step,contrast,accuracy,trials,correct,repeat",
    );
    assert_eq!(staircase.len(), steps);
    let first = &results.staircases[0].steps[1];
    assert_eq!(staircase[1][2].parse::<f64>().unwrap(), first.contrast);

    let csf = csv_rows(
        &dir.join("csf.csv"),
        "frequency_cpi,threshold_contrast,sensitivity,steps,stopped,ci_low,ci_high,\
         sensitivity_ci_low,sensitivity_ci_high,method,censored,censored_repeats,repeats,trials",
    );
    assert_eq!(csf.len(), results.staircases.len());
    for (row, f) in csf.iter().zip(&results.staircases) {
        assert_eq!(row[0].parse::<f64>().unwrap(), f.frequency);
        assert_eq!(row[1].parse::<f64>().unwrap(), f.threshold);
        assert_eq!(row[2].parse::<f64>().unwrap(), f.sensitivity);
        assert_eq!(row[3].parse::<usize>().unwrap(), f.steps.len());
        assert!(row[4] == "converged" || row[4] == "max_steps");
        assert_eq!(row[12], "1", "one repeat");
        assert_eq!(row[13].parse::<u64>().unwrap(), f.trials());
    }
    let pooled = csv_rows(
        &dir.join("psychometric.csv"),
        "frequency_cpi,repeat,contrast,trials,correct",
    );
    let trials: u64 = pooled.iter().map(|r| r[3].parse::<u64>().unwrap()).sum();
    assert_eq!(
        trials,
        results.staircases.iter().map(|f| f.trials()).sum::<u64>()
    );
    let per_repeat = csv_rows(
        &dir.join("thresholds.csv"),
        "frequency_cpi,repeat,procedure,procedure_threshold,fit,fit_threshold,fit_ci_low,\
         fit_ci_high,deviance,deviance_p,threshold_contrast,ci_low,ci_high,sensitivity,censored,\
         stopped,trials",
    );
    assert_eq!(per_repeat.len(), results.staircases.len());

    for stem in ["csf", "csf_linear", "training"] {
        let png = fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert_eq!(png_size(&png), (PLOT_WIDTH, PLOT_HEIGHT), "{stem}.png");
        let svg = fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{stem}.svg");
    }
    assert!(fs::read_to_string(dir.join("csf.svg"))
        .unwrap()
        .contains("quick_csf"));
    // Every CSV row ends with the identity, taken from the plan.
    let id = Identity::of(&results);
    assert_eq!(id.architecture, "resnet18");
    assert_eq!(
        id.condition_id,
        crate::plan::sweep::condition_id(&results.plan)
    );
    assert_eq!(id.condition_id.len(), 12);
    for row in &csf {
        let n = row.len();
        assert_eq!(row[n - 9], id.experiment);
        assert_eq!(row[n - 8], "resnet18");
        assert_eq!(row[n - 3], id.seed.to_string());
        assert_eq!(row[n - 2], "0");
        assert_eq!(row[n - 1], id.condition_id);
    }

    // results.json holds the same numbers for programs.
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["format"], 1);
    assert_eq!(json["complete"], true);
    assert_eq!(json["identity"]["experiment"], id.experiment.as_str());
    assert_eq!(json["csf"].as_array().unwrap().len(), results.csf.len());
    assert_eq!(
        json["csf"][0]["threshold"].as_f64().unwrap(),
        results.csf[0].threshold
    );
    assert_eq!(
        json["staircases"][0]["steps"].as_array().unwrap().len(),
        results.staircases[0].steps.len()
    );
    assert_eq!(json["training"].as_array().unwrap().len(), 3);
    assert_eq!(json["manifest"]["seed"], results.manifest.seed);
    assert_eq!(json["warnings"][0], results.manifest.warnings[0].as_str());

    // report.html: one page, every plot inline, the preview absent (never written here).
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 4, "four plots inline");
    for id in [
        "plot-csf",
        "plot-psychometric",
        "plot-training",
        "results",
        "warnings",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("a warning the run gave"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "nothing fetched"
    );
    assert!(!html.contains("<script"), "no script");
    assert!(html.contains("class=\"status complete\""));

    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The whole Results serialises to JSON and back (serde_json's default parser may
    // differ in the last bit of a float; the CSV files are exact).
    let json = serde_json::to_string(&results).unwrap();
    let back: Results = serde_json::from_str(&json).unwrap();
    assert_eq!((back.plan, back.manifest), (results.plan, results.manifest));
}

#[test]
fn a_taken_default_folder_gets_a_numeric_suffix() {
    let tmp = TempDir::new("suffix");
    let a = RunFolder::create_default(&tmp.0, "x", now()).unwrap();
    let b = RunFolder::create_default(&tmp.0, "x", now()).unwrap();
    let c = RunFolder::create_default(&tmp.0, "x", now()).unwrap();
    assert!(a.path().ends_with("x/20250131-123456"));
    assert!(b.path().ends_with("x/20250131-123456-2"));
    assert!(c.path().ends_with("x/20250131-123456-3"));
    // A hostile experiment name stays one path component under the root.
    let d = RunFolder::create_default(&tmp.0, "../../evil/name", now()).unwrap();
    assert!(d.path().starts_with(&tmp.0));
    assert_eq!(d.path().parent().unwrap().parent().unwrap(), tmp.0);
}

#[test]
fn out_into_a_non_empty_folder_is_refused() {
    let tmp = TempDir::new("out");
    let full = tmp.0.join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("old.csv"), "x\n").unwrap();
    let e = RunFolder::create(Some(&full), "x", now()).unwrap_err();
    assert!(matches!(e, FolderError::NotEmpty { .. }), "{e:?}");
    assert_eq!(e.path(), full);
    assert!(e.to_string().contains(&full.display().to_string()), "{e}");
    assert!(!full.join(INCOMPLETE).exists(), "nothing written");
    let io: std::io::Error = e.into();
    assert_eq!(io.kind(), std::io::ErrorKind::AlreadyExists);

    // A file is not a folder.
    let file = tmp.0.join("file");
    fs::write(&file, "x").unwrap();
    let e = RunFolder::create(Some(&file), "x", now()).unwrap_err();
    assert!(matches!(e, FolderError::NotAFolder { .. }), "{e:?}");

    // An empty folder is used; a missing one is created.
    let empty = tmp.0.join("empty");
    fs::create_dir(&empty).unwrap();
    let f = RunFolder::create(Some(&empty), "x", now()).unwrap();
    assert!(f.path().join(INCOMPLETE).is_file());
    let missing = tmp.0.join("a/b/c");
    let f = RunFolder::create(Some(&missing), "x", now()).unwrap();
    assert!(f.path().join(INCOMPLETE).is_file());
}

#[test]
fn write_atomic_replaces_whole_files_and_leaves_nothing_on_error() {
    let tmp = TempDir::new("atomic");
    let path = tmp.0.join("a.txt");
    write_atomic(&path, b"first version, long").unwrap();
    write_atomic(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");

    // A missing folder: an error naming the path, and no file.
    let missing = tmp.0.join("nope/a.txt");
    let e = write_atomic(&missing, b"x").unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(!missing.exists());

    // The rename fails (a non-empty folder is in the way) after the temporary file was
    // written: the error is reported, the temporary file removed, the target untouched.
    let blocked = tmp.0.join("blocked");
    fs::create_dir(&blocked).unwrap();
    fs::write(blocked.join("inside"), "keep").unwrap();
    assert!(write_atomic(&blocked, b"x").is_err());
    assert!(blocked.is_dir());
    let names: Vec<String> = fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");

    // A read-only folder (meaningless as root, who may write anyway).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = tmp.0.join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        let probe = ro.join("probe");
        let can_write_anyway = fs::write(&probe, "x").is_ok();
        let _ = fs::remove_file(&probe);
        if !can_write_anyway {
            let target = ro.join("a.csv");
            assert!(write_atomic(&target, b"x").is_err());
            assert_eq!(fs::read_dir(&ro).unwrap().count(), 0);
            let e = RunFolder::create(Some(&ro), "x", now()).unwrap_err();
            assert!(matches!(e, FolderError::NotWritable { .. }), "{e:?}");
        }
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn folder_write_accepts_plain_names_only() {
    let tmp = TempDir::new("names");
    let f = RunFolder::create(Some(&tmp.0.join("run")), "x", now()).unwrap();
    assert!(f.write("../escape.txt", b"x").is_err());
    assert!(f.write("a/b.txt", b"x").is_err());
    assert!(f.write(INCOMPLETE, b"x").is_err());
    assert!(f.write("", b"x").is_err());
    f.write("ok.txt", b"x").unwrap();
    assert!(!tmp.0.join("escape.txt").exists());
}

fn freq(frequency: f64, threshold: f64) -> FrequencyResult {
    FrequencyResult {
        frequency,
        repeat: 0,
        procedure: "bisection".into(),
        steps: vec![crate::staircase::Step {
            step: 0,
            contrast: threshold,
            trials: 16,
            correct: 12,
            accuracy: 0.75,
        }],
        stop: crate::staircase::Stop::Converged,
        procedure_threshold: threshold,
        procedure_interval: None,
        fit: None,
        threshold,
        ci: None,
        sensitivity: 1.0 / threshold,
        censored: None,
    }
}

/// `r` with these results and its CSF summarised again.
fn with(r: &mut Results, staircases: Vec<FrequencyResult>) {
    r.staircases = staircases;
    r.csf = summarize(&r.plan, &r.staircases);
}

fn all_plots(r: &Results) -> Vec<Plot> {
    let plots = vec![
        csf_plot(r).unwrap(),
        csf_linear_plot(r).unwrap(),
        training_plot(r).unwrap(),
    ];
    for p in &plots {
        assert_eq!(png_size(&p.png), (PLOT_WIDTH, PLOT_HEIGHT));
        assert!(p.svg.contains("<svg"));
    }
    plots
}

#[test]
fn plots_survive_edge_cases() {
    let base = results();
    // One frequency, one epoch.
    let mut r = base.clone();
    let mut first = r.staircases.clone();
    first.truncate(1);
    with(&mut r, first);
    r.training.truncate(1);
    let p = all_plots(&r);
    assert!(p.iter().all(|p| p.notes.is_empty()), "{:?}", p[0].notes);

    // Non-finite and non-positive values.
    let mut r = base.clone();
    with(
        &mut r,
        vec![
            freq(2.0, 0.1),
            freq(4.0, 0.0),
            freq(8.0, f64::NAN),
            freq(16.0, -0.5),
            freq(f64::INFINITY, 0.2),
        ],
    );
    r.training[1].loss = f64::NAN;
    r.training[2].accuracy = f64::INFINITY;
    let p = all_plots(&r);
    assert!(
        p[0].notes.iter().any(|n| n.contains("4, 8, inf")),
        "{:?}",
        p[0].notes
    );
    assert!(
        p[0].notes.iter().any(|n| n.contains("≤ 0 at 16")),
        "{:?}",
        p[0].notes
    );
    assert_eq!(
        p[1].notes.len(),
        1,
        "negative values are drawn on linear axes"
    );
    assert_eq!(p[2].notes.len(), 2, "{:?}", p[2].notes);
    assert!(p[0].svg.contains("not shown"));

    // Every sensitivity non-finite: an empty chart.
    let mut r = base.clone();
    with(&mut r, vec![freq(2.0, 0.0), freq(4.0, f64::NAN)]);
    all_plots(&r);

    // All-equal values.
    let mut r = base.clone();
    with(&mut r, vec![freq(2.0, 0.5), freq(2.0, 0.5), freq(2.0, 0.5)]);
    for t in &mut r.training {
        t.loss = 0.0;
        t.accuracy = 0.5;
    }
    all_plots(&r);

    // Nothing at all; huge and tiny numbers.
    let mut r = base.clone();
    with(&mut r, Vec::new());
    r.training.clear();
    let p = all_plots(&r);
    assert!(!p[0].notes.is_empty() && !p[2].notes.is_empty());
    let mut r = base;
    with(
        &mut r,
        vec![freq(1e-300, 1e-300), freq(1e300, 1e300), freq(3.0, 0.5)],
    );
    r.training[0].loss = 1e300;
    let p = all_plots(&r);
    assert!(
        p[0].notes.iter().any(|n| n.contains("outside")),
        "{:?}",
        p[0].notes
    );
    assert!(
        p[2].notes.iter().any(|n| n.contains("outside")),
        "{:?}",
        p[2].notes
    );
}

#[test]
fn preview_sheet_is_a_grid_of_padded_clipped_images() {
    let grating = |size: u32| -> Vec<f32> {
        (0..size * size * 3)
            .map(|i| ((i / 3 % size) as f32 / 3.0).sin() * 0.8 + 0.5) // exceeds [0, 1]
            .collect()
    };
    let images = vec![
        ("2 c/img, 0°".to_string(), grating(64), 64),
        (
            "a caption far too long to fit under one small image at all, really".to_string(),
            grating(32),
            32,
        ),
        ("short data".to_string(), vec![f32::NAN; 10], 48),
    ];
    // Largest 64 px → enlarged 2× to 128; cells 144 × 166; 2 columns, 2 rows.
    let png = preview_sheet(&images, 2);
    assert_eq!(png_size(&png), (288, 332));
    let png = preview_sheet(&images, 0);
    assert_eq!(png_size(&png), (144, 3 * 166));
    let png = preview_sheet(&images, 10);
    assert_eq!(png_size(&png), (3 * 144, 166));
    let png = preview_sheet(&[], 4);
    assert_eq!(png_size(&png), (144, 166));
    // A large image is not enlarged; grey input is accepted.
    let png = preview_sheet(&[("grey".into(), vec![0.5; 200 * 200], 200)], 3);
    assert_eq!(png_size(&png), (216, 238));

    // Pixels land where expected: image 0's top-left pixel, clipped.
    let decoder = png::Decoder::new(std::io::Cursor::new(preview_sheet(&images[..1], 1)));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    let width = 144usize;
    let at = |x: usize, y: usize| &buf[(y * width + x) * 3..(y * width + x) * 3 + 3];
    assert_eq!(at(8, 8), &[128, 128, 128]); // sin(0)·0.8 + 0.5
    assert_eq!(at(7, 7), &[160, 160, 160], "frame");
}

/// Parses a `.npy` v1.0 header: (header text, data offset).
fn npy_header(bytes: &[u8]) -> (String, usize) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len])
        .unwrap()
        .to_string();
    (header, 10 + len)
}

#[test]
fn npy_headers_follow_the_spec() {
    for (shape, text) in [
        (vec![2, 3], "(2, 3)"),
        (vec![5], "(5,)"),
        (vec![], "()"),
        (vec![0, 4], "(0, 4)"),
        (vec![1, 3, 224, 224], "(1, 3, 224, 224)"),
    ] {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
        let bytes = npy_f32(&shape, &data);
        let (header, offset) = npy_header(&bytes);
        assert_eq!(offset % 64, 0, "{header:?}");
        assert!(header.ends_with('\n'));
        assert_eq!(
            header.trim_end(),
            format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {text}, }}")
        );
        assert_eq!(bytes.len(), offset + 4 * n);
        let back: Vec<f32> = bytes[offset..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, data);
    }
}

#[test]
#[should_panic(expected = "npy_f32")]
fn npy_refuses_a_shape_that_does_not_match() {
    npy_f32(&[2, 2], &[1.0; 3]);
}

#[test]
#[cfg_attr(
    not(psyrun_python_tests),
    ignore = "needs python with torch, torchvision and numpy (PSYRUN_PYTHON or python3; ./dev sets it)"
)]
fn npy_loads_in_numpy() {
    let python = std::env::var_os("PSYRUN_PYTHON").unwrap_or_else(|| "python3".into());
    let tmp = TempDir::new("npy");
    let path = tmp.0.join("a.npy");
    let data: Vec<f32> = (0..24).map(|i| i as f32 / 7.0 - 1.0).collect();
    write_atomic(&path, &npy_f32(&[2, 3, 4], &data)).unwrap();
    let script = "import sys, numpy as np\n\
                  a = np.load(sys.argv[1])\n\
                  assert a.shape == (2, 3, 4), a.shape\n\
                  assert a.dtype == np.dtype('<f4'), a.dtype\n\
                  assert a.flags['C_CONTIGUOUS']\n\
                  b = (np.arange(24, dtype=np.float32) / np.float32(7) - np.float32(1)).reshape(2, 3, 4)\n\
                  assert (a == b).all(), (a, b)\n";
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn csf_table_lists_every_frequency() {
    let r = results();
    let table = csf_table(&r);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + r.staircases.len());
    assert!(lines[0].starts_with("frequency (c/img)"));
    assert!(lines[1].trim_start().starts_with('2'));
    assert!(lines.iter().all(|l| l == &l.trim_end()));
    let mut r = r;
    with(&mut r, vec![freq(2.0, 0.0), freq(4.0, 1e-7)]);
    let table = csf_table(&r);
    assert!(
        table.contains("inf") && table.contains("1.000e7"),
        "{table}"
    );
}

#[test]
fn sha256_of_bytes_and_files() {
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(sha256_bytes(b"abc"), abc);
    let tmp = TempDir::new("sha");
    let path = tmp.0.join("abc");
    fs::write(&path, "abc").unwrap();
    assert_eq!(sha256_file(&path).unwrap(), abc);
    assert!(sha256_file(tmp.0.join("missing")).is_err());
}

#[test]
fn from_procedure_needs_a_finished_procedure() {
    let plan = plan();
    let p = Procedure::from_plan(&plan.staircase, 16);
    assert!(FrequencyResult::from_procedure(2.0, 0, &p, 0.0).is_none());
    let f = run_procedure(&plan, 2.0, |_| 0.75);
    assert_eq!(f.steps[0].trials, 16);
    assert_eq!(f.steps[0].correct, 12);
    assert_eq!(f.trials(), 16 * f.steps.len() as u64);
    assert!(f.sensitivity > 0.0 && (f.sensitivity * f.threshold - 1.0).abs() < 1e-12);
}

#[test]
fn peak_memory_is_read_from_vm_hwm() {
    let status = "Name:\tpsyrun\nVmPeak:\t 4000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
    assert_eq!(super::parse_vm_hwm(status), Some(2048 * 1024));
    assert_eq!(super::parse_vm_hwm("VmRSS: 10 kB\n"), None);
    assert_eq!(super::parse_vm_hwm("VmHWM: lots kB\n"), None);
    // This process has used some memory, and not more than the machine has.
    let own = super::peak_rss_bytes();
    if cfg!(target_os = "linux") {
        let own = own.expect("Linux has /proc/self/status");
        assert!(own > 1 << 20 && own < 1 << 40, "{own}");
    }
}

#[test]
fn a_fitted_function_crosses_its_level_at_the_reported_threshold() {
    // The default fit (Weibull, ML) on a procedure run against a Weibull observer.
    let plan = plan();
    let mut r = run_procedure(&plan, 4.0, |c| {
        0.5 + 0.49 * (1.0 - (-(c / 0.08_f64).powf(2.5)).exp())
    });
    analyse(&plan, &mut r);
    let fit = r.fit.clone().expect("the default plan fits a Weibull");
    assert_eq!(fit.function, "weibull");
    assert_eq!(
        r.threshold, fit.threshold,
        "threshold from the fit by default"
    );
    // ψ as stored (and drawn) passes through the plan's level at the threshold...
    let at = super::plot::psi_of(&fit, fit.threshold).unwrap();
    assert!((at - plan.fit.level).abs() < 1e-6, "ψ(threshold) = {at}");
    // ...rises with contrast, from near chance to near 1.
    let lo = super::plot::psi_of(&fit, fit.threshold / 10.0).unwrap();
    let hi = super::plot::psi_of(&fit, (fit.threshold * 10.0).min(1.0)).unwrap();
    assert!(lo < at && at < hi, "{lo} {at} {hi}");
    assert!(lo < 0.6 && hi > 0.9, "{lo} {hi}");
    // The bootstrap interval holds the threshold, and the truth (0.08·ln(2 / 0.98·…)) is
    // near: the observer's 75 % point.
    let (a, b) = r.ci.expect("a bootstrap interval");
    assert!(
        a <= r.threshold && r.threshold <= b,
        "{a} {} {b}",
        r.threshold
    );
    let truth = 0.08 * (-(1.0 - 0.25 / 0.49_f64).ln()).powf(1.0 / 2.5);
    assert!(
        (r.threshold / truth - 1.0).abs() < 0.3,
        "{} vs {truth}",
        r.threshold
    );
    // And the figure draws that curve.
    let mut results = results();
    results.staircases = vec![r];
    let fig = psychometric_plot(&results).unwrap();
    assert!(
        fig.svg.contains("<polyline") || fig.svg.contains("<path"),
        "a curve"
    );
}

#[test]
fn log_axes_get_enough_labelled_ticks_whatever_the_range() {
    use super::plot::log_ticks;
    // quick_csf's sensitivities (3 to 15): one decade alone would label only 10.
    let (bold, light) = log_ticks(2.5, 16.0);
    // Only 10 is a decade and 5, 10 the 1-2-5 values: every multiple is labelled.
    assert_eq!(bold, [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
    assert!(light.contains(&3.0) && light.contains(&10.0));
    // Several decades: the decades.
    assert_eq!(log_ticks(0.5, 2000.0).0, [1.0, 10.0, 100.0, 1000.0]);
    // 1-2-5 when it gives three or more.
    assert_eq!(log_ticks(0.9, 60.0).0, [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
    // A narrow range (a pedestal run, 3.7 to 4.0) still has two labels.
    assert!(log_ticks(3.7, 4.0).0.len() >= 2);
    assert!(log_ticks(0.0, 1.0).0.is_empty());
    // And the figure's SVG has those labels as text.
    let mut r = results();
    let svg = csf_plot(&r).unwrap().svg;
    let labelled = [
        "2", "3", "4", "5", "6", "7", "8", "9", "10", "20", "50", "100",
    ]
    .iter()
    .filter(|t| svg.contains(&format!(">\n{t}\n</text>")))
    .count();
    assert!(labelled >= 3, "{labelled} tick labels");
    r.csf.truncate(1);
    assert!(csf_plot(&r).unwrap().svg.contains("</text>"));
}

#[test]
fn titles_and_axes_say_what_was_measured() {
    let mut r = results();
    let detection = csf_plot(&r).unwrap().svg;
    assert!(detection.contains("Contrast sensitivity function"));
    assert!(detection.contains("contrast sensitivity (1 / threshold contrast)"));
    assert!(detection.contains("spatial frequency (cycles per image)"));
    // A pedestal: increment thresholds, and the page and the plots say so.
    r.plan.test.reference = 0.2;
    let pedestal = csf_plot(&r).unwrap().svg;
    assert!(pedestal.contains("Increment sensitivity on a pedestal of contrast 0.2"));
    assert!(pedestal.contains("increment sensitivity (1 / (threshold − pedestal))"));
    assert!(!pedestal.contains("Contrast sensitivity function"));
    let psy = psychometric_plot(&r).unwrap().svg;
    assert!(psy.contains("target contrast (pedestal 0.2)"), "x axis");
    let html = report_html(&r, &r.manifest, &[], None);
    assert!(html.contains("Increment-threshold sensitivity on a pedestal of contrast 0.2000"));
}

#[test]
fn overlaid_repeats_get_a_legend() {
    let mut r = results();
    let one = psychometric_plot(&r).unwrap().svg;
    assert!(!one.contains("repeat 2"));
    assert!(
        one.contains("reported threshold"),
        "legend of the single-repeat figure"
    );
    // A second repeat: every frequency again, and a second training curve.
    let mut second = r.staircases.clone();
    for s in &mut second {
        s.repeat = 1;
    }
    r.staircases.extend(second);
    r.csf = summarize(&r.plan, &r.staircases);
    let extra: Vec<EpochRecord> = r
        .training
        .iter()
        .map(|e| EpochRecord { repeat: 1, ..*e })
        .collect();
    r.training.extend(extra);
    for svg in [
        psychometric_plot(&r).unwrap().svg,
        training_plot(&r).unwrap().svg,
    ] {
        assert!(svg.contains("repeat 1") && svg.contains("repeat 2"));
    }
}

#[test]
fn numbers_for_people_have_four_significant_digits_and_the_table_is_in_frequency_order() {
    assert_eq!(display_number(0.125), "0.1250");
    assert_eq!(display_number(2.8109), "2.811");
    assert_eq!(display_number(0.0881), "0.08810");
    assert_eq!(display_number(12.5), "12.50");
    assert_eq!(display_number(0.0003), "3.000e-4");
    let mut r = results();
    r.csf.reverse();
    let table = csf_table(&r);
    let freqs: Vec<f64> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(freqs.windows(2).all(|w| w[0] < w[1]), "{table}");
}

#[test]
fn a_censored_fit_reports_the_edge_of_the_contrasts_tested_not_an_extrapolation() {
    let plan = plan();
    let at = |levels: &[(f64, u32)]| {
        let mut r = freq(4.0, 0.5);
        r.steps = levels
            .iter()
            .enumerate()
            .map(|(i, &(c, correct))| crate::staircase::Step {
                step: i as u32,
                contrast: c,
                trials: 16,
                correct,
                accuracy: f64::from(correct) / 16.0,
            })
            .collect();
        analyse(&plan, &mut r);
        r
    };
    // Chance at every contrast up to 0.4: the threshold lies above 0.4, and that is all
    // the data say (the fitted function may put its crossing anywhere beyond).
    let r = at(&[(0.1, 8), (0.2, 7), (0.4, 8)]);
    assert_eq!(
        r.censored,
        Some(crate::staircase::Censor::AboveRange),
        "{r:?}"
    );
    assert_eq!(r.threshold, 0.4);
    assert_eq!(r.sensitivity, 1.0 / 0.4);
    assert!(r.ci.is_none());
    // Every trial right down to 0.05: below the lowest contrast tested.
    let r = at(&[(0.05, 16), (0.1, 16), (0.2, 16)]);
    assert_eq!(
        r.censored,
        Some(crate::staircase::Censor::BelowRange),
        "{r:?}"
    );
    assert_eq!(r.threshold, 0.05);
    assert!(r.fit.is_some(), "the fit itself is kept beside the bound");
    // A measured crossing is reported as fitted.
    let r = at(&[(0.05, 8), (0.1, 10), (0.2, 14), (0.4, 16)]);
    assert_eq!(r.censored, None, "{r:?}");
    assert_eq!(r.threshold, r.fit.as_ref().unwrap().threshold);
}
