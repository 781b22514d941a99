//! `psyrun stimuli FILE --out DIR`: the stimuli of an experiment, to look at (PNG) and to
//! check exactly (`.npy`). Pure Rust: the same code renders what `psyrun run` shows the
//! network, so what is written here is what the network sees (before normalisation).

use super::{Ui, EXIT_INVALID, EXIT_OK, EXIT_RUN, EXIT_USAGE};
use psyrun::diag::{Code, Diag};
use psyrun::plan::design::Design;
use psyrun::plan::Plan;
use psyrun::report::{image_png, npy_f32, preview_sheet, write_atomic};
use psyrun::stimuli::Grating;
use psyrun::tasks::{preview_images as design_preview_images, preview_trials, TaskError};
use psyrun::trials::{grating_spec, test_trials, TestTrial, TrainingStimuli};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `psyrun stimuli`.
#[derive(Clone, Debug, clap::Args)]
pub struct StimuliArgs {
    /// The experiment file (`.psy`).
    pub file: std::path::PathBuf,
    /// Folder to write into (created if missing; files of the same names are replaced).
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Training trials to write (the first trials of epoch 1).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub count: u64,
    /// Contrast of the test gratings (default: the staircase's first contrast).
    #[arg(long)]
    pub contrast: Option<f64>,
    /// The level of the test trials of an experiment written with `stimulus`, `task` and
    /// `level` blocks (default: the staircase's first level); for `train shapes` / `test
    /// gratings` experiments, the same as --contrast.
    #[arg(long, conflicts_with = "contrast", allow_negative_numbers = true)]
    pub level: Option<f64>,
}

pub(super) fn stimuli(args: &StimuliArgs, ui: &Ui) -> ExitCode {
    let (file, lowered) = match super::commands::load(&args.file) {
        Ok(x) => x,
        Err(d) => {
            ui.report(&[d]);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    ui.report(&lowered.diags);
    let Some(plan) = lowered.plan else {
        return ExitCode::from(EXIT_INVALID);
    };
    if let Some(design) = &plan.design {
        let level = match args.level.or(args.contrast) {
            Some(l) if l.is_finite() => l,
            Some(l) => {
                ui.report(&[Diag::error(
                    Code::PlanOutOfRange,
                    format!("--level must be a finite number, got {l}"),
                )]);
                return ExitCode::from(EXIT_USAGE);
            }
            None => plan.staircase.start(),
        };
        let base = args.file.parent().unwrap_or(Path::new("."));
        return match write_design_stimuli(&plan, design, base, args.count, level, &args.out) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::from(EXIT_OK)
            }
            Err(DesignStimuliError::Task(e)) => {
                ui.report(&[Diag::error(
                    Code::PlanOutOfRange,
                    format!("cannot make the stimuli of `{}`: {e}", file.name),
                )
                .with_help("choose another level with --level")]);
                ExitCode::from(EXIT_INVALID)
            }
            Err(DesignStimuliError::Io(e)) => {
                ui.report(&[Diag::error(
                    Code::RunOutputFolder,
                    format!("cannot write the stimuli of `{}`: {e}", file.name),
                )
                .with_help("choose a writable folder with --out")]);
                ExitCode::from(EXIT_RUN)
            }
        };
    }
    let contrast = match args.contrast.or(args.level) {
        Some(c) if (0.0..=1.0).contains(&c) => c,
        Some(c) => {
            ui.report(&[Diag::error(
                Code::PlanOutOfRange,
                format!(
                    "--{} must be in [0, 1], got {c}",
                    if args.contrast.is_some() {
                        "contrast"
                    } else {
                        "level"
                    }
                ),
            )]);
            return ExitCode::from(EXIT_USAGE);
        }
        None => plan.staircase.start(),
    };
    match write_stimuli(&plan, args.count, contrast, &args.out) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            ui.report(&[Diag::error(
                Code::RunOutputFolder,
                format!("cannot write the stimuli of `{}`: {e}", file.name),
            )
            .with_help("choose a writable folder with --out")]);
            ExitCode::from(EXIT_RUN)
        }
    }
}

/// Writes the stimuli of `plan` into `dir`; returns a summary of what was written.
///
/// * `train/NNN_a.png`, `train/NNN_b.png`: the first `count` training trials of epoch 1;
/// * `train_a.npy`, `train_b.npy`: the same as `[count, size, size, 3]` float32 in [0, 1];
/// * `train.csv`: trial, shape, colour, contrasts and the correct answer;
/// * `test/f<F>_o<O>_p<P>.png`: each frequency × orientation × phase at `contrast`;
/// * `test_target.npy`: `[frequencies, orientations·phases, size, size]` float32 (one
///   channel; the network sees it repeated to RGB), `test_reference.npy`: the comparison
///   images at the reference contrast, same shape;
/// * `test.csv`: the index of each image in the arrays with its parameters;
/// * `preview.png`: a contact sheet, the one every run also writes.
pub fn write_stimuli(
    plan: &Plan,
    count: u64,
    contrast: f64,
    dir: &Path,
) -> std::io::Result<String> {
    std::fs::create_dir_all(dir.join("train"))?;
    std::fs::create_dir_all(dir.join("test"))?;
    let t = &plan.train;
    let stimuli = TrainingStimuli::of(plan);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut csv =
        String::from("trial,shape,colour_r,colour_g,colour_b,contrast_a,contrast_b,answer\n");
    for i in 0..count {
        let p = stimuli.pair(0, i);
        write_atomic(
            dir.join(format!("train/{i:03}_a.png")),
            &image_png(&p.first, t.size)?,
        )?;
        write_atomic(
            dir.join(format!("train/{i:03}_b.png")),
            &image_png(&p.second, t.size)?,
        )?;
        let c = p.params.colour;
        let _ = writeln!(
            csv,
            "{i},{:?},{},{},{},{},{},{}",
            p.params.kind(),
            c[0],
            c[1],
            c[2],
            p.contrasts[0],
            p.contrasts[1],
            if p.label == 1 { "b" } else { "a" }
        );
        a.extend_from_slice(&p.first);
        b.extend_from_slice(&p.second);
    }
    let n = t.size as usize;
    write_atomic(
        dir.join("train_a.npy"),
        &npy_f32(&[count as usize, n, n, 3], &a),
    )?;
    write_atomic(
        dir.join("train_b.npy"),
        &npy_f32(&[count as usize, n, n, 3], &b),
    )?;
    write_atomic(dir.join("train.csv"), csv.as_bytes())?;

    let test = &plan.test;
    // One image per orientation × phase: the interval does not change the images.
    let conditions: Vec<TestTrial> = test_trials(test)
        .into_iter()
        .filter(|t| !t.target_first || test.target_interval == psyrun::plan::TargetInterval::First)
        .collect();
    let m = test.size as usize;
    let (mut target, mut reference) = (Vec::new(), Vec::new());
    let mut csv = String::from("frequency_index,condition_index,frequency_cpi,orientation_deg,phase_deg,contrast,reference\n");
    for (fi, &f) in test.frequencies.iter().enumerate() {
        for (ci, cond) in conditions.iter().enumerate() {
            let g = Grating::new(&grating_spec(test, f, cond));
            let img = g.render(contrast);
            let name = format!("test/f{f}_o{}_p{}.png", cond.orientation, cond.phase);
            write_atomic(dir.join(name), &image_png(&img, test.size)?)?;
            target.extend_from_slice(&img);
            reference.extend_from_slice(&g.render(test.reference));
            let _ = writeln!(
                csv,
                "{fi},{ci},{f},{},{},{contrast},{}",
                cond.orientation, cond.phase, test.reference
            );
        }
    }
    let shape = [test.frequencies.len(), conditions.len(), m, m];
    write_atomic(dir.join("test_target.npy"), &npy_f32(&shape, &target))?;
    write_atomic(dir.join("test_reference.npy"), &npy_f32(&shape, &reference))?;
    write_atomic(dir.join("test.csv"), csv.as_bytes())?;
    let sheet = preview_sheet(
        &psyrun::trials::preview_images(plan, count.min(8), contrast),
        8,
    );
    write_atomic(dir.join("preview.png"), &sheet)?;
    Ok(format!(
        "wrote {count} training pairs and {} test gratings (contrast {contrast}) to {}",
        test.frequencies.len() * conditions.len(),
        dir.display()
    ))
}

/// Why the stimuli of a design could not be written.
#[derive(Debug)]
pub enum DesignStimuliError {
    /// A stimulus cannot be made (a parameter out of range at this level, an image folder
    /// that cannot be read).
    Task(TaskError),
    /// A file cannot be written.
    Io(std::io::Error),
}

impl std::fmt::Display for DesignStimuliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DesignStimuliError::Task(e) => e.fmt(f),
            DesignStimuliError::Io(e) => e.fmt(f),
        }
    }
}

impl From<std::io::Error> for DesignStimuliError {
    fn from(e: std::io::Error) -> Self {
        DesignStimuliError::Io(e)
    }
}

/// Writes the stimuli of a plan with a design (`stimulus`, `task`, `level` and `axis`
/// blocks) into `dir`; image folders are read relative to `base` (the experiment's folder).
/// Returns a summary of what was written.
///
/// * `test/a<A>_c<C>_i<K>.png`: for each axis value `A` (its index) one trial of each
///   condition `C` of the test task at `level`, interval `K` (from 1);
/// * `test.npy`: the same as `[axis values, conditions, intervals, size, size, 3]` float32
///   in [0, 1] (what the network sees, before normalisation);
/// * `test.csv`: axis index and value, condition, level, description, layout, answer;
/// * `train/NNN_i<K>.png`, `train.csv`: the first `count` training trials of epoch 1 (when
///   the probe is trained);
/// * `preview.png`: the sheet: each test trial a row, intervals side by side, captioned
///   with the condition and the right answer; then up to 8 training trials when the probe
///   trains on another task than the test's.
pub fn write_design_stimuli(
    plan: &Plan,
    design: &Design,
    base: &Path,
    count: u64,
    level: f64,
    dir: &Path,
) -> Result<String, DesignStimuliError> {
    let trials =
        preview_trials(design, plan.seed, base, level, count).map_err(DesignStimuliError::Task)?;
    std::fs::create_dir_all(dir.join("test"))?;
    let size = design.size;
    let (mut test, mut tests) = (Vec::new(), 0usize);
    let mut test_csv =
        String::from("axis_index,axis,condition,level,description,layout,answer,answer_name\n");
    let mut train_csv =
        String::from("trial,axis,condition,level,description,layout,answer,answer_name\n");
    let intervals = trials.first().map_or(0, |t| t.images.len());
    let conditions =
        trials.iter().filter(|t| t.set == "test").count() / design.axis.values.len().max(1);
    for t in &trials {
        let layout: Vec<&str> = t
            .layout
            .iter()
            .map(|r| match r {
                psyrun::tasks::Role::Reference => "reference",
                psyrun::tasks::Role::Target => "target",
            })
            .collect();
        // The description holds no quote or line break (names, numbers and units).
        let row = format!(
            "{},{},\"{}\",{},{},{}",
            t.condition,
            t.level,
            t.description,
            layout.join(" "),
            t.answer,
            t.answer_name
        );
        if t.set == "test" {
            let ai = t.index / conditions.max(1);
            for (k, img) in t.images.iter().enumerate() {
                let name = format!("test/a{ai}_c{}_i{}.png", t.condition, k + 1);
                write_atomic(dir.join(name), &image_png(img, size)?)?;
                test.extend_from_slice(img);
            }
            tests += 1;
            let _ = writeln!(test_csv, "{ai},{},{row}", t.axis);
        } else {
            std::fs::create_dir_all(dir.join("train"))?;
            for (k, img) in t.images.iter().enumerate() {
                let name = format!("train/{:03}_i{}.png", t.index, k + 1);
                write_atomic(dir.join(name), &image_png(img, size)?)?;
            }
            let _ = writeln!(train_csv, "{},{},{row}", t.index, t.axis);
        }
    }
    let n = size as usize;
    write_atomic(
        dir.join("test.npy"),
        &npy_f32(
            &[design.axis.values.len(), conditions, intervals, n, n, 3],
            &test,
        ),
    )?;
    write_atomic(dir.join("test.csv"), test_csv.as_bytes())?;
    let trained = trials.len() - tests;
    if trained > 0 {
        write_atomic(dir.join("train.csv"), train_csv.as_bytes())?;
    }
    // The sheet: the test trials, and training trials when they are of another task.
    let other_task = design.train.as_ref().is_some_and(|t| t.task.is_some());
    let mut shown: Vec<_> = trials.iter().filter(|t| t.set == "test").cloned().collect();
    if other_task {
        shown.extend(trials.iter().filter(|t| t.set == "train").take(8).cloned());
    }
    let (images, columns) = design_preview_images(design, &shown);
    write_atomic(dir.join("preview.png"), &preview_sheet(&images, columns))?;
    Ok(format!(
        "wrote {tests} test trials ({} axis values × {conditions} conditions, level {level}) \
         and {trained} training trials to {}",
        design.axis.values.len(),
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use psyrun::plan::design::{
        Answer, Axis, DesignTrain, Draw, Expr, Level, Param, Position, Readout, StimulusKind,
        StimulusSpec, Task, TaskKind,
    };
    use psyrun::tasks::TaskTrials;

    fn task(kind: TaskKind, intervals: u32) -> Task {
        Task {
            kind,
            reference: "blank".into(),
            target: "gabor".into(),
            answer: Answer::Differs,
            intervals,
            position: Position::All,
        }
    }

    /// quick_csf's plan with a design: a Gabor against a blank, frequency the axis,
    /// contrast the level, 2AFC; the probe trains on yes/no.
    fn plan() -> (Plan, Design) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let file =
            psyrun::source::SourceFile::read(&root.join("experiments/quick_csf.psy")).unwrap();
        let mut plan = psyrun::plan::compile(&file).plan.unwrap();
        let stim = |name: &str, params: Vec<(&str, Param)>| StimulusSpec {
            name: name.into(),
            kind: StimulusKind::Gabor,
            params: params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        let design = Design {
            size: 16,
            background: 0.5,
            normalize: psyrun::plan::Normalize::Off,
            stimuli: vec![
                stim(
                    "blank",
                    vec![
                        ("contrast", Param::Value(Expr::Num(0.0))),
                        ("frequency", Param::Value(Expr::Axis)),
                    ],
                ),
                stim(
                    "gabor",
                    vec![
                        ("contrast", Param::Value(Expr::Level)),
                        ("frequency", Param::Value(Expr::Axis)),
                        ("orientation", Param::List(vec![0.0, 90.0])),
                    ],
                ),
            ],
            task: task(TaskKind::TwoAfc, 2),
            level: Level {
                name: "contrast".into(),
                unit: String::new(),
            },
            axis: Axis {
                name: "frequency".into(),
                unit: "cpi".into(),
                values: vec![2.0, 4.0, 8.0],
            },
            readout: Readout::Probe,
            train: Some(DesignTrain {
                samples: 8,
                level: Draw::LogUniform { lo: 0.01, hi: 1.0 },
                task: Some(task(TaskKind::YesNo, 1)),
            }),
        };
        plan.design = Some(design.clone());
        (plan, design)
    }

    #[test]
    fn design_stimuli_show_every_condition_at_every_axis_value() {
        let (plan, design) = plan();
        let dir =
            std::env::temp_dir().join(format!("psyrun-design-stimuli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let summary = write_design_stimuli(&plan, &design, Path::new("."), 3, 0.25, &dir).unwrap();
        assert!(
            summary.starts_with("wrote 12 test trials (3 axis values × 4 conditions, level 0.25) and 3 training trials"),
            "{summary}"
        );
        // test.npy: [3, 4, 2, 16, 16, 3], each trial as TaskTrials renders it.
        let bytes = std::fs::read(dir.join("test.npy")).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("(3, 4, 2, 16, 16, 3)"), "{header}");
        let values: Vec<f32> = bytes[10 + header_len..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let trials = TaskTrials::new(&design, &design.task, Path::new(".")).unwrap();
        let n = 16 * 16 * 3;
        for (ai, &f) in design.axis.values.iter().enumerate() {
            for c in 0..4 {
                let mut rng = psyrun::stimuli::rng::stream(
                    plan.seed,
                    "preview",
                    ((ai as u64) << 32) | c as u64,
                );
                let imgs = trials.render(f, 0.25, c, &mut rng).unwrap();
                for (k, img) in imgs.iter().enumerate() {
                    let at = ((ai * 4 + c) * 2 + k) * n;
                    assert_eq!(&values[at..at + n], &img[..], "axis {f} condition {c}");
                    assert!(dir
                        .join(format!("test/a{ai}_c{c}_i{}.png", k + 1))
                        .is_file());
                }
            }
        }
        // test.csv: the description and the right answer of each trial.
        let csv = std::fs::read_to_string(dir.join("test.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 13);
        assert_eq!(
            rows[4],
            "0,2,3,0.25,\"target in interval 2 · orientation 90°\",reference target,1,interval 2"
        );
        // Training trials of the yes/no task, one interval each.
        let train = std::fs::read_to_string(dir.join("train.csv")).unwrap();
        assert_eq!(train.lines().count(), 4);
        assert!(dir.join("train/000_i1.png").is_file());
        assert!(!dir.join("train/000_i2.png").exists());
        assert!(std::fs::read(dir.join("preview.png"))
            .unwrap()
            .starts_with(b"\x89PNG"));
        // A level the stimuli cannot show is a task error naming the stimulus.
        match write_design_stimuli(&plan, &design, Path::new("."), 0, 1.5, &dir) {
            Err(DesignStimuliError::Task(e)) => assert_eq!(e.stimulus, "gabor"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
