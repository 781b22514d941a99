//! `psyrun stimuli FILE --out DIR`: the stimuli of an experiment, to look at (PNG) and to
//! check exactly (`.npy`). Pure Rust: the same code renders what `psyrun run` shows the
//! network, so what is written here is what the network sees (before normalisation).

use super::{Ui, EXIT_INVALID, EXIT_OK, EXIT_RUN, EXIT_USAGE};
use psyrun::diag::{Code, Diag};
use psyrun::plan::Plan;
use psyrun::report::{image_png, npy_f32, preview_sheet, write_atomic};
use psyrun::stimuli::Grating;
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
    let contrast = match args.contrast {
        Some(c) if (0.0..=1.0).contains(&c) => c,
        Some(c) => {
            ui.report(&[Diag::error(
                Code::PlanOutOfRange,
                format!("--contrast must be in [0, 1], got {c}"),
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
