//! `psyrun features`: the command line turned into `psyrun_torch::features` options;
//! resolves, extracts, writes.

use psyrun_cli::progress::Terminal;
use psyrun_cli::{FeaturesArgs, FeaturesNormalize, Ui, EXIT_OK};
use psyrun_torch::features::{
    extract, output_files, resolve, write, FeaturesOptions, ImageNormalize,
};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

/// The command line as the library's options (threads and BatchNorm are handled here:
/// threads before libtorch starts, BatchNorm is always `eval`).
fn options(args: &FeaturesArgs) -> FeaturesOptions {
    FeaturesOptions {
        arch: args.arch.clone(),
        inputs: args.inputs.clone(),
        cut: args.cut.first().cloned(),
        more_cuts: args.cut.iter().skip(1).cloned().collect(),
        weights: args.weights.clone(),
        torchscript: args.torchscript.clone(),
        pooling: args.pooling,
        seed: args.seed,
        size: args.size,
        normalize: args.normalize.map(|n| match n {
            FeaturesNormalize::Imagenet => ImageNormalize::Imagenet,
            FeaturesNormalize::Clip => ImageNormalize::Clip,
            FeaturesNormalize::None => ImageNormalize::None,
        }),
        device: args.device,
        out: args.out.clone(),
        experiment: args.experiment.clone(),
        count: args.count,
        contrast: args.contrast,
        tokens: args.tokens,
    }
}

/// `psyrun features`. Never panics on libtorch errors (they become `psy::run::torch`).
pub(crate) fn command(args: &FeaturesArgs, ui: &Ui) -> ExitCode {
    let (request, notes) = match resolve(&options(args)) {
        Ok(r) => r,
        Err(f) => {
            ui.report(&f.diags);
            return ExitCode::from(f.exit);
        }
    };
    ui.report(&notes.diags);
    let stop = AtomicBool::new(false);
    let mut term = Terminal::new(ui.color);
    let source = notes.file.as_ref();
    let outcome = extract(&request, source, &mut term, &stop).and_then(|features| {
        write(&request, &features)?;
        Ok(features)
    });
    drop(term);
    match outcome {
        Ok(features) => {
            let n = features.names.len();
            let files = output_files(&request, &features);
            for (i, o) in features.outputs.iter().enumerate() {
                let mut shape = vec![n];
                shape.extend(&o.shape);
                let what = if features.outputs.len() > 1 {
                    format!("`{}`", o.name)
                } else {
                    request.backbone.describe()
                };
                println!(
                    "wrote features {shape:?} of {n} image{} ({what}, pooling {}) to {}",
                    if n == 1 { "" } else { "s" },
                    request.backbone.pooling,
                    files.get(i).unwrap_or(&files[0]).display()
                );
            }
            ExitCode::from(EXIT_OK)
        }
        Err(f) => {
            ui.report(&f.diags);
            ExitCode::from(f.exit)
        }
    }
}
