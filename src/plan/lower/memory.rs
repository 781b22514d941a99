//! The estimate of a run's peak memory, and the checks on it: a warning (with the figure)
//! when it exceeds this machine's memory, an error past [`HARD_LIMIT`], which no machine
//! psyrun targets has.

use super::experiment::Sections;
use crate::diag::{Code, Diag};
use crate::models::catalog::{self, Arch};
use crate::plan::types::{Optimizer, Probe, Test, Train};
use crate::plan::values::Cx;

/// 1 TiB: an estimate past this is refused whatever the machine.
pub(super) const HARD_LIMIT: u64 = 1 << 40;

/// libtorch's own footprint (code, thread pools, allocator caches), roughly.
const RUNTIME: u64 = 300 << 20;

/// Images per forward pass of the test phase (the interpreter's chunk).
const TEST_CHUNK: u64 = 64;

/// Peak memory of a run, in bytes, for a catalog network (float32 throughout):
/// the runtime, the probe's parameters with their gradient and optimiser state, and the
/// larger of the training step (both images of a batch in one forward pass, each module's
/// input and output alive at once, the features, and two batches of stimuli: one in use,
/// one being drawn) and a test chunk. The backbone's own weights are not counted (at most
/// about 0.5 GB, for a whole vgg16). `None` where a shape is unknown.
pub(super) fn estimate(
    arch: Arch,
    cut: &str,
    features_per_image: u64,
    probe: &Probe,
    train: &Train,
    test: &Test,
) -> Option<u64> {
    const F32: u64 = 4;
    let batch = u64::from(probe.batch);
    let train_act = catalog::largest_activation(arch, cut, train.size)?;
    let test_act = catalog::largest_activation(arch, cut, test.size)?;
    let image = |size: u32| 3 * u64::from(size) * u64::from(size);
    let sat = |a: u64, b: u64| a.saturating_mul(b);
    let params = sat(4, features_per_image).saturating_add(2);
    let copies = match &probe.optimizer {
        Optimizer::Sgd { momentum, .. } if *momentum > 0.0 => 3, // weight, gradient, momentum
        Optimizer::Sgd { .. } => 2,
        Optimizer::Adam { .. } => 4, // weight, gradient, two moments
    };
    let probe_bytes = sat(sat(params, copies), F32);
    let images = 2 * batch;
    let training = sat(sat(images, sat(2, train_act)), F32)
        .saturating_add(sat(sat(images, features_per_image), F32))
        .saturating_add(sat(sat(2 * images, image(train.size)), F32));
    let testing = sat(sat(TEST_CHUNK, sat(2, test_act)), F32);
    Some(
        RUNTIME
            .saturating_add(probe_bytes)
            .saturating_add(training.max(testing)),
    )
}

/// The memory this run can have, in bytes: `PSYRUN_MEMORY` (bytes) when set, else the
/// smaller of the machine's (`MemTotal` of `/proc/meminfo`) and the control group's limit
/// (`/sys/fs/cgroup/memory.max`: a Slurm job's or a container's). `None` where unknown.
pub(super) fn machine_memory() -> Option<u64> {
    if let Some(v) = std::env::var_os("PSYRUN_MEMORY") {
        return v.to_str()?.trim().parse().ok();
    }
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kb.checked_mul(1024)
        });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `1.5 GB`, `600 GB`: bytes in decimal units, 2–3 significant digits.
pub(super) fn human(bytes: u64) -> String {
    let b = bytes as f64;
    for (unit, size) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6)] {
        if b >= size {
            let v = b / size;
            return if v >= 100.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{:.1} MB", b / 1e6)
}

/// The checks: an error past [`HARD_LIMIT`], a warning past `machine` (this machine's
/// memory, when known). Returns false on the error.
pub(super) fn check(
    cx: &mut Cx,
    sections: &Sections<'_>,
    bytes: u64,
    machine: Option<u64>,
) -> bool {
    let help = "the largest terms are the probe (4 × features per image, times 3 for SGD with momentum) and the activations of a training batch (2 × batch images): pool the features (`pooling avg 4x4`), cut earlier, use smaller images (`size`) or a smaller `batch`";
    let span = sections
        .setting_span("train", "size")
        .or_else(|| sections.setting_span("backbone", "cut"));
    if bytes > HARD_LIMIT {
        let mut d = Diag::error(
            Code::PlanMemoryLimit,
            format!(
                "this run would need about {} of memory, more than psyrun allows ({})",
                human(bytes),
                human(HARD_LIMIT)
            ),
        )
        .with_help(help);
        if let Some(s) = span {
            d = d.at(s, "the images this size");
        }
        cx.push(d);
        return false;
    }
    if let Some(m) = machine.filter(|&m| bytes > m) {
        let mut d = Diag::warning(
            Code::PlanMemory,
            format!(
                "this run would need about {} of memory; it can have {}",
                human(bytes),
                human(m)
            ),
        )
        .with_help(help);
        if let Some(s) = span {
            d = d.at(s, "the images this size");
        }
        cx.push(d);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::compile;
    use crate::source::SourceFile;

    fn plan_of(backbone: &str, size: u32, batch: u32) -> crate::plan::Plan {
        let text = format!(
            "psy 1\nexperiment m {{\n  {backbone}\n  probe {{ batch {batch} }}\n  \
             train {{ size {size} }}\n  test {{ size {size} frequencies [2] }}\n  staircase {{}}\n}}\n"
        );
        compile(&SourceFile::new("m.psy", text))
            .plan
            .expect("plans")
    }

    #[test]
    fn the_tutorial_needs_under_two_gigabytes_and_vgg16_at_4096_px_hundreds() {
        // resnet50 to layer2 at 224 px, batch 32: the largest module output is 802 816 values
        // (conv1 and layer1), the probe 4 × 401 408 parameters.
        let p = plan_of("backbone resnet50 { weights random  cut layer2 }", 224, 32);
        let bytes = p.derived.estimated_peak_bytes.unwrap();
        let expected = RUNTIME
            + 3 * (4 * 401_408 + 2) * 4
            + 64 * 2 * 802_816 * 4
            + 64 * 401_408 * 4
            + 128 * 3 * 224 * 224 * 4;
        assert_eq!(bytes, expected);
        assert!(bytes < 2_000_000_000, "{}", human(bytes));
        // vgg16 cut after features.0 at 4096 px: 64 × 4096² values per image.
        let p = plan_of(
            "backbone vgg16 { weights random  cut features.0 }",
            4096,
            32,
        );
        let bytes = p.derived.estimated_peak_bytes.unwrap();
        assert!(
            bytes > 500_000_000_000 && bytes < HARD_LIMIT,
            "{}",
            human(bytes)
        );
    }

    #[test]
    fn a_machine_too_small_is_warned_and_past_the_hard_limit_is_an_error() {
        use crate::diag::Severity;
        let text = |size: u32, batch: u32| {
            format!(
                "psy 1\nexperiment m {{\n  backbone vgg16 {{ weights random  cut features.0 }}\n  \
                 probe {{ batch {batch} }}\n  train {{ size {size} }}\n  \
                 test {{ size {size} frequencies [2] }}\n  staircase {{}}\n}}\n"
            )
        };
        // Past the hard limit on any machine.
        let l = compile(&SourceFile::new("m.psy", text(4096, 256)));
        assert!(l.plan.is_none());
        assert!(l.diags.iter().any(|d| d.code == Code::PlanMemoryLimit
            && d.severity == Severity::Error
            && d.message.contains("TB")));
        // The warning is a function of the machine: check it with one of 24 GB.
        let mut cx = Cx::default();
        let ast = crate::syntax::parse(&SourceFile::new("m.psy", text(64, 32))).expect("parses");
        let exp = &ast.experiments[0];
        let sections = Sections::collect(&mut cx, exp);
        assert!(check(&mut cx, &sections, 600_000_000_000, Some(24 << 30)));
        assert_eq!(cx.diags.len(), 1);
        assert_eq!(cx.diags[0].code, Code::PlanMemory);
        assert!(
            cx.diags[0].message.contains("600 GB"),
            "{}",
            cx.diags[0].message
        );
        let mut cx = Cx::default();
        let sections = Sections::collect(&mut cx, exp);
        assert!(check(&mut cx, &sections, 1_000_000_000, Some(24 << 30)));
        assert!(cx.diags.is_empty());
        assert!(!check(&mut cx, &sections, HARD_LIMIT + 1, None));
        assert_eq!(human(1_500_000_000), "1.5 GB");
    }
}
