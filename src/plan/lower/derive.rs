//! Derived values: the quantities computed from several blocks (trial counts, a catalog
//! backbone's cut and feature shapes), and the checks that need more than one block (images
//! too small for the cut, pooling larger than the feature map, train and test images that
//! give different feature shapes, a reference contrast above the staircase's range, and
//! `batchnorm train` meeting a BatchNorm layer that would see one value per channel).

use super::backbone::BackboneOut;
use super::experiment::Sections;
use crate::diag::{Code, Diag, Span};
use crate::models::catalog::{self, Arch, ShapeError};
use crate::plan::design::{Design, Readout};
use crate::plan::tokens::{self, Mismatch};
use crate::plan::types::{
    BatchNorm, Derived, Network, Pooling, Probe, Staircase, TargetInterval, Test, Train,
};
use crate::plan::values::Cx;

/// The derived values, or `None` when the blocks do not fit together (reported).
pub(super) fn lower(
    cx: &mut Cx,
    sections: &Sections<'_>,
    bb: &BackboneOut,
    probe: &Probe,
    train: &Train,
    test: &Test,
    staircase: &Staircase,
) -> Option<Derived> {
    let reference_fits = reference_in_range(cx, sections, test, staircase);
    let derived = counts(train, test, staircase);
    let derived = with_shapes(cx, sections, bb, probe, train, test, derived, None)?;
    reference_fits.then_some(derived)
}

/// The derived values of an experiment described by its parts: the counts of its task
/// (counterbalanced conditions, images per trial, the probe's size) and the shapes.
#[allow(clippy::too_many_arguments)]
pub(super) fn lower_design(
    cx: &mut Cx,
    sections: &Sections<'_>,
    bb: &BackboneOut,
    probe: &Probe,
    train: &Train,
    test: &Test,
    staircase: &Staircase,
    design: &Design,
) -> Option<Derived> {
    let mut derived = counts(train, test, staircase);
    derived.trials_per_level = super::design::conditions(design, &design.task);
    derived.train_images_per_epoch =
        u64::from(train.samples) * u64::from(design.train_task().intervals);
    with_shapes(cx, sections, bb, probe, train, test, derived, Some(design))
}

/// `derived` with a catalog backbone's shapes filled in (and the checks on them).
#[allow(clippy::too_many_arguments)]
fn with_shapes(
    cx: &mut Cx,
    sections: &Sections<'_>,
    bb: &BackboneOut,
    probe: &Probe,
    train: &Train,
    test: &Test,
    mut derived: Derived,
    design: Option<&Design>,
) -> Option<Derived> {
    // A TorchScript module's shapes are known only once it is loaded (at run time).
    let Network::Catalog(net) = &bb.plan.network else {
        return Some(derived);
    };
    let shapes = Shapes {
        sections,
        bb,
        arch: net.arch,
        cut: &net.cut,
    };
    let cut_shape = shapes.cut_at(cx, train.size, "train");
    let test_shape = if test.size == train.size {
        cut_shape.clone()
    } else {
        shapes.cut_at(cx, test.size, "test")
    };
    let cut_shape = cut_shape?;
    let test_shape = test_shape?;
    // A cut of tokens is read out (`tokens cls | mean | map`) before any pooling.
    let read = shapes.read_tokens(cx, &cut_shape, train.size)?;
    let feature_shape = shapes.pool(cx, &read)?;
    let test_features = if test_shape == cut_shape {
        feature_shape.clone()
    } else {
        let read = shapes.read_tokens(cx, &test_shape, test.size)?;
        shapes.pool(cx, &read)?
    };
    if test_features != feature_shape {
        shapes.different_features(cx, train, test, &feature_shape, &test_features);
        return None;
    }
    if bb.plan.batchnorm == BatchNorm::Train && !shapes.batchnorm_defined(cx, probe, train) {
        return None;
    }
    derived.set_shapes(cut_shape, feature_shape);
    let per_image = derived.features_per_image.unwrap_or(0);
    if let Some(d) = design {
        // Every interval's features side by side (same/different: |f₁ − f₂|); one logit
        // per answer.
        let inputs = u64::from(d.task.probe_intervals()) * per_image;
        let choices = u64::from(d.task.choices());
        derived.probe_inputs = Some(inputs);
        derived.probe_parameters = Some(match d.readout {
            Readout::Probe => choices * inputs + choices,
            Readout::Distance(_) => 0,
        });
    }
    derived.estimated_peak_bytes =
        super::memory::estimate(net.arch, &net.cut, per_image, probe, train, test);
    if let Some(bytes) = derived.estimated_peak_bytes {
        if !super::memory::check(cx, sections, bytes, super::memory::machine_memory()) {
            return None;
        }
    }
    Some(derived)
}

/// The comparison image's contrast must leave room for a target of higher contrast inside
/// the staircase's range: with `reference` at or above its upper end every level the
/// staircase can test is at most the reference, and the accuracies mean nothing.
fn reference_in_range(
    cx: &mut Cx,
    sections: &Sections<'_>,
    test: &Test,
    staircase: &Staircase,
) -> bool {
    let (low, high) = staircase.range();
    if test.reference < high {
        return pedestal_within_range(cx, sections, test.reference, low);
    }
    let mut d = Diag::error(
        Code::PlanIncompatible,
        format!(
            "the reference contrast {} leaves no room for a target: the staircase searches {}..{}",
            test.reference, low, high
        ),
    )
    .with_help(format!(
        "the target must have a higher contrast than the comparison image; use a `reference` below {high} (0 is a grey comparison, the tutorial's), or raise the staircase's `range`"
    ));
    if let Some(s) = sections.setting_span("test", "reference") {
        d = d.at(s, "the comparison image's contrast");
    }
    if let Some(s) = sections.setting_span("staircase", "range") {
        d = d.also(s, format!("targets searched up to {high}"));
    }
    cx.push(d);
    false
}

/// A pedestal (`reference` > 0) is an increment experiment: the grating is the pedestal
/// plus an increment, always the image of higher contrast. A staircase whose range starts
/// below the pedestal would test gratings of lower contrast than the comparison, where the
/// correct answer flips to the comparison image and accuracy is V-shaped in the contrast
/// (a bisection can then walk to 0). So the range must start at or above the pedestal.
fn pedestal_within_range(cx: &mut Cx, sections: &Sections<'_>, reference: f64, low: f64) -> bool {
    if low >= reference {
        return true;
    }
    let mut d = Diag::error(
        Code::PlanIncompatible,
        format!(
            "the staircase's range starts at {low}, below the pedestal {reference}"
        ),
    )
    .with_help(format!(
        "with a pedestal the grating must always have the higher contrast (pedestal + increment); below {reference} the comparison image would be the higher-contrast one and accuracy would rise again as the contrast falls. Write `range {reference}..1.0`: the threshold is then a contrast above the pedestal, and its increment Δc = threshold − {reference} gives the sensitivity 1/Δc"
    ));
    if let Some(s) = sections.setting_span("test", "reference") {
        d = d.at(s, "the pedestal");
    }
    if let Some(s) = sections.setting_span("staircase", "range") {
        d = d.also(s, format!("starts at {low}"));
    }
    cx.push(d);
    false
}

/// The counts every backbone has; the shapes are filled in later.
fn counts(train: &Train, test: &Test, staircase: &Staircase) -> Derived {
    let intervals: u32 = if test.target_interval == TargetInterval::Both {
        2
    } else {
        1
    };
    let trials = (test.orientations.len() * test.phases.len()) as u64 * u64::from(intervals);
    Derived {
        cut_shape: None,
        feature_shape: None,
        features_per_image: None,
        probe_inputs: None,
        probe_parameters: None,
        trials_per_level: u32::try_from(trials).unwrap_or(u32::MAX),
        max_levels_per_frequency: staircase.max_levels(),
        train_images_per_epoch: 2 * u64::from(train.samples),
        estimated_peak_bytes: None,
    }
}

/// A catalog backbone's shapes, with the spans their errors point at.
struct Shapes<'a> {
    sections: &'a Sections<'a>,
    bb: &'a BackboneOut,
    arch: Arch,
    cut: &'a str,
}

impl Shapes<'_> {
    /// The `size` of the `train` or `test` block (its keyword for the default size).
    fn size_span(&self, which: &str) -> Span {
        self.sections
            .setting_span(which, "size")
            .unwrap_or(self.sections.experiment_keyword())
    }

    /// The cut's output shape for `size` px images of the `which` block.
    fn cut_at(&self, cx: &mut Cx, size: u32, which: &str) -> Option<Vec<u32>> {
        let (arch, cut) = (self.arch, self.cut);
        match catalog::output_shape(arch, cut, size) {
            Ok(s) => Some(s),
            Err(ShapeError::TooSmall { module, min_input }) => {
                cx.push(
                    Diag::error(
                        Code::PlanInputTooSmall,
                        format!(
                            "{size} px {which} images are too small to reach `{}` of {arch}",
                            cut
                        ),
                    )
                    .at(self.size_span(which), format!("{size} px"))
                    .also(self.bb.cut_span, "cut here")
                    .with_help(format!(
                        "the feature map vanishes at `{module}`; use at least {min_input} px"
                    )),
                );
                None
            }
            Err(ShapeError::WrongSize { size: only }) => {
                cx.push(
                    Diag::error(
                        Code::PlanInputSize,
                        format!("{arch} takes {only} px images only, not {size} px"),
                    )
                    .at(self.size_span(which), format!("{size} px"))
                    .also(self.bb.cut_span, format!("cut in {arch}"))
                    .with_help(format!(
                        "write `size {only}` in the `{which}` block: torchvision's {arch} \
                         asserts its image size (its position embedding has one entry per \
                         patch of a {only} px image)"
                    )),
                );
                None
            }
            Err(ShapeError::UnknownLayer) => None,
        }
    }

    /// The shape the backbone's token read-out gives for a cut output of `shape` at `size`
    /// px (the shape itself for a feature map); `None` when `tokens` does not fit the cut
    /// (reported).
    fn read_tokens(&self, cx: &mut Cx, shape: &[u32], size: u32) -> Option<Vec<u32>> {
        let (arch, cut, cut_span) = (self.arch, self.cut, self.bb.cut_span);
        let tokens = self.bb.plan.tokens;
        let format = tokens::catalog_format(arch, cut, size);
        let dims = |s: &[u32]| s.iter().map(u32::to_string).collect::<Vec<_>>().join("x");
        let span = self.bb.tokens_span.unwrap_or(cut_span);
        let written = tokens.map_or("", |r| r.name());
        let err = match tokens::readout_shape(shape, format, tokens) {
            Ok(s) => return Some(s),
            Err(e) => e,
        };
        let diag = match err {
            Mismatch::Missing(f) => {
                let d = shape[shape.len() - 1];
                let (rows, cols) = f.grid.unwrap_or((0, 0));
                let cls = if f.prefix > 0 {
                    format!("`tokens cls` (the class token: {d} features), ")
                } else {
                    String::new()
                };
                Diag::error(
                    Code::PlanMissingSetting,
                    format!("`{cut}` of {arch} outputs tokens: say which become the features"),
                )
                .at(
                    cut_span,
                    format!(
                        "{} tokens of {d} values ({}, {rows}x{cols} patches)",
                        f.prefix + rows * cols,
                        prefix_words(f.prefix)
                    ),
                )
                .with_help(format!(
                    "add {cls}`tokens mean` (the mean of the {} patch tokens: {d} features) or \
                     `tokens map` (the patch tokens as a {d}x{rows}x{cols} feature map, which \
                     `pooling` can reduce) to the backbone",
                    rows * cols
                ))
            }
            Mismatch::NotTokens => Diag::error(
                Code::PlanIncompatible,
                "`tokens` applies to a cut whose output is a sequence of tokens",
            )
            .at(span, format!("tokens {written}"))
            .also(
                cut_span,
                if shape.len() == 1 {
                    format!("a flat vector of {} values", shape[0])
                } else {
                    format!("a {} feature map", dims(shape))
                },
            )
            .with_help(if arch.fixed_input_size().is_some() {
                format!(
                    "remove `tokens`, or cut inside {arch}'s `encoder` (e.g. `encoder.ln`), \
                     whose outputs are tokens"
                )
            } else {
                format!(
                    "remove `tokens`: {arch}'s cuts are feature maps; the catalog's vision \
                     transformers (vit_b_16, vit_b_32, vit_l_16) output tokens inside their \
                     `encoder`"
                )
            }),
            Mismatch::NoClassToken => Diag::error(
                Code::PlanIncompatible,
                format!("`tokens cls` needs a class token, and `{cut}` of {arch} has none"),
            )
            .at(span, "tokens cls")
            .also(cut_span, format!("{} patch tokens only", dims(shape)))
            .with_help(
                "use `tokens mean` (the mean of the patch tokens) or `tokens map` (the patch \
                 tokens as a feature map)",
            ),
            Mismatch::NoGrid => Diag::error(
                Code::PlanIncompatible,
                format!("`tokens map` needs the patch grid of `{cut}`, which is not known"),
            )
            .at(span, "tokens map")
            .with_help("use `tokens cls` or `tokens mean`"),
        };
        cx.push(diag);
        None
    }

    /// The feature shape after the backbone's pooling of a cut of this `shape`.
    fn pool(&self, cx: &mut Cx, shape: &[u32]) -> Option<Vec<u32>> {
        let (cut, cut_span) = (self.cut, self.bb.cut_span);
        let (Pooling::Avg { h, w } | Pooling::Max { h, w }) = self.bb.plan.pooling else {
            return Some(shape.to_vec());
        };
        let span = self.bb.pooling_span.unwrap_or(cut_span);
        if let (Some(r), 1) = (self.bb.plan.tokens, shape.len()) {
            cx.push(
                Diag::error(
                    Code::PlanIncompatible,
                    format!(
                        "`tokens {}` gives a vector of {} values; there is nothing spatial to pool",
                        r.name(),
                        shape[0]
                    ),
                )
                .at(span, "pooling needs a feature map")
                .also(self.bb.tokens_span.unwrap_or(cut_span), "a vector")
                .with_help(
                    "use `pooling none`, or `tokens map` (the patch tokens as a feature map)",
                ),
            );
            return None;
        }
        if shape.len() != 3 {
            cx.push(
                Diag::error(
                    Code::PlanIncompatible,
                    format!(
                        "`{}` outputs a flat vector of {} values; there is nothing spatial to pool",
                        cut, shape[0]
                    ),
                )
                .at(span, "pooling needs a feature map")
                .also(cut_span, "flat output")
                .with_help("use `pooling none`, or cut at a convolutional layer"),
            );
            return None;
        }
        if h > shape[1] || w > shape[2] {
            cx.push(
                Diag::error(
                    Code::PlanPoolingTooLarge,
                    format!(
                        "pooling to {h}x{w} is larger than the {}x{} feature map of `{}`",
                        shape[1], shape[2], cut
                    ),
                )
                .at(span, format!("{h}x{w}"))
                .also(
                    cut_span,
                    format!("{}x{}x{} here", shape[0], shape[1], shape[2]),
                )
                .with_help(format!(
                    "adaptive pooling reduces; use at most {}x{}",
                    shape[1], shape[2]
                )),
            );
            return None;
        }
        Some(vec![shape[0], h, w])
    }

    /// With `batchnorm train`, each BatchNorm normalises every channel over the batch and the
    /// map (`batch × H × W` values; the two images of a trial go through in separate
    /// passes, so a batch of `n` trials is `n` images). One value has no variance: libtorch
    /// then makes the running variance NaN and every test level scores chance. The smallest
    /// batch is the last one of an epoch when `samples` is not a multiple of `batch`.
    fn batchnorm_defined(&self, cx: &mut Cx, probe: &Probe, train: &Train) -> bool {
        let (samples, batch) = (train.samples, probe.batch.max(1));
        let smallest = match samples % batch {
            0 => batch.min(samples),
            last => last,
        };
        if smallest != 1 {
            return true;
        }
        let layers = catalog::batchnorm_shapes(self.arch, self.cut, train.size);
        let Some((layer, shape)) = layers
            .iter()
            .find(|(_, s)| s.len() == 3 && u64::from(s[1]) * u64::from(s[2]) == 1)
        else {
            return true;
        };
        let last_batch = if samples <= batch {
            format!("every batch holds {samples} trial")
        } else {
            format!("{samples} trials in batches of {batch} leave a last batch of 1")
        };
        let mut d = Diag::error(
            Code::PlanBatchnormSingleValue,
            format!(
                "with `batchnorm train`, `{layer}` would normalise a single value per channel: {last_batch}, and its map is {}x{} at {} px",
                shape[1], shape[2], train.size
            ),
        )
        .with_help(format!(
            "the variance of one value is undefined: libtorch makes the running variance NaN and every test level scores chance. Use `samples` that leave no batch of one trial ({}), larger images, an earlier cut, or `batchnorm eval`",
            if samples > batch {
                format!("e.g. {} or {}", samples - 1, samples + 1)
            } else {
                "and `batch` above 1".to_string()
            }
        ));
        d = match self.sections.setting_span("backbone", "batchnorm") {
            Some(s) => d.at(
                s,
                format!(
                    "`{layer}` would see 1 trial × {}x{}: one value",
                    shape[1], shape[2]
                ),
            ),
            None => d,
        };
        if let Some(s) = self.sections.setting_span("train", "samples") {
            d = d.also(s, format!("{samples} trials per epoch"));
        }
        if let Some(s) = self.sections.setting_span("probe", "batch") {
            d = d.also(s, format!("batches of {batch}"));
        }
        d = d.also(
            self.bb.cut_span,
            format!("{}x{} maps before this cut", shape[1], shape[2]),
        );
        cx.push(d);
        false
    }

    fn different_features(
        &self,
        cx: &mut Cx,
        train: &Train,
        test: &Test,
        train_features: &[u32],
        test_features: &[u32],
    ) {
        cx.push(
            Diag::error(
                Code::PlanIncompatible,
                format!("train ({} px) and test ({} px) images give different feature shapes ({} vs {})", train.size, test.size, dims(train_features), dims(test_features)),
            )
            .at(self.size_span("test"), format!("{} px", test.size))
            .also(self.size_span("train"), format!("{} px", train.size))
            .with_help("use the same size for both, or adaptive pooling (`pooling avg 4x4`) so the probe sees a fixed shape"),
        );
    }
}

fn dims(s: &[u32]) -> String {
    s.iter().map(u32::to_string).collect::<Vec<_>>().join("×")
}

/// "1 class token", "no class token", "2 tokens before the patches".
fn prefix_words(prefix: u32) -> String {
    match prefix {
        0 => "no class token".into(),
        1 => "a class token".into(),
        n => format!("{n} tokens before the patches"),
    }
}

#[cfg(test)]
mod tests {
    use crate::diag::Code;
    use crate::models::catalog::{batchnorm_shapes, Arch};
    use crate::plan::compile;
    use crate::source::SourceFile;

    /// The codes of the errors for a resnet18 experiment with these settings.
    fn errors(cut: &str, batchnorm: &str, batch: u32, samples: u32, extra: &str) -> Vec<Code> {
        let text = format!(
            "psy 1\nexperiment t {{\n  backbone resnet18 {{ weights random  cut {cut}  batchnorm {batchnorm} }}\n  \
             probe linear {{ batch {batch} }}\n  train shapes {{ size 32  samples {samples} }}\n  \
             test gratings {{ size 32 {extra} }}\n  staircase bisection {{}}\n}}\n"
        );
        compile(&SourceFile::new("t.psy", text.as_str()))
            .diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code)
            .collect()
    }

    #[test]
    fn batchnorm_shapes_lists_the_batchnorms_a_cut_runs() {
        let layer1 = batchnorm_shapes(Arch::Resnet18, "layer1", 32);
        assert_eq!(
            layer1.first().unwrap(),
            &("bn1".to_string(), vec![64, 16, 16])
        );
        assert_eq!(
            layer1.last().unwrap(),
            &("layer1.1.bn2".to_string(), vec![64, 8, 8])
        );
        assert_eq!(layer1.len(), 5);
        let layer4 = batchnorm_shapes(Arch::Resnet18, "layer4", 32);
        assert_eq!(
            layer4.last().unwrap(),
            &("layer4.1.bn2".to_string(), vec![512, 1, 1])
        );
        // Cut inside a block: its downsample does not run.
        let inside = batchnorm_shapes(Arch::Resnet18, "layer2.0.bn1", 32);
        assert_eq!(inside.last().unwrap().0, "layer2.0.bn1");
        assert!(inside.iter().all(|(p, _)| !p.contains("downsample")));
        assert!(batchnorm_shapes(Arch::Resnet18, "nope", 32).is_empty());
    }

    #[test]
    fn a_batchnorm_that_would_see_one_value_is_refused() {
        let single = [Code::PlanBatchnormSingleValue];
        // The reported case: 257 = 16·16 + 1 leaves a last batch of one trial, 1×1 maps.
        assert_eq!(errors("layer4", "train", 16, 257, ""), single);
        // A batch of one trial throughout.
        assert_eq!(errors("layer4", "train", 1, 64, ""), single);
        assert_eq!(errors("layer4", "train", 16, 1, ""), single);
        // Neighbours, maps larger than 1×1, and frozen BatchNorm are fine.
        for (cut, bn, batch, samples) in [
            ("layer4", "train", 16, 256),
            ("layer4", "train", 16, 258),
            ("layer3", "train", 16, 257),
            ("layer4", "eval", 16, 257),
        ] {
            assert!(
                errors(cut, bn, batch, samples, "").is_empty(),
                "{cut} {bn} {batch} {samples}"
            );
        }
    }

    #[test]
    fn a_reference_at_or_above_the_staircase_range_is_refused() {
        let incompatible = [Code::PlanIncompatible];
        assert_eq!(
            errors("layer1", "eval", 16, 64, "reference 1.0"),
            incompatible
        );
        let text = "psy 1\nexperiment t {\n  backbone resnet18 { weights random  cut layer1 }\n  \
                    probe linear {}\n  train shapes { size 32 }\n  test gratings { size 32  reference 0.5 }\n  \
                    staircase bisection { range 0.0..0.5 }\n}\n";
        let diags = compile(&SourceFile::new("t.psy", text)).diags;
        let d = diags.iter().find(|d| d.is_error()).expect("an error");
        assert_eq!(d.code, Code::PlanIncompatible);
        let p = d.primary.as_ref().expect("points at the reference");
        assert_eq!(&text[p.span.start..p.span.end], "0.5");
        assert_eq!(d.secondary.len(), 1);
    }

    fn diags_of(test: &str, staircase: &str) -> Vec<crate::diag::Diag> {
        let text = format!(
            "psy 1\nexperiment t {{\n  backbone resnet18 {{ weights random  cut layer1 }}\n  \
             probe linear {{}}\n  train shapes {{ size 32 }}\n  test gratings {{ size 32  {test} }}\n  \
             staircase bisection {{ {staircase} }}\n}}\n"
        );
        compile(&SourceFile::new("t.psy", text)).diags
    }

    #[test]
    fn a_staircase_range_below_the_pedestal_is_refused() {
        // The default range 0..1 with a pedestal of 0.5 would test gratings below the
        // pedestal, where the comparison image is the higher-contrast one.
        let codes = |t: &str, s: &str| -> Vec<Code> {
            diags_of(t, s)
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.code)
                .collect()
        };
        assert_eq!(codes("reference 0.5", ""), [Code::PlanIncompatible]);
        assert_eq!(codes("reference 0.99", ""), [Code::PlanIncompatible]);
        assert_eq!(
            codes("reference 0.5", "range 0.25..1.0"),
            [Code::PlanIncompatible]
        );
        let diags = diags_of("reference 0.5", "range 0.25..1.0");
        let d = &diags[0];
        assert!(
            d.message.contains("below the pedestal 0.5"),
            "{}",
            d.message
        );
        assert_eq!(d.secondary.len(), 1, "points at the range too");
        // A range from the pedestal up (an increment staircase) is fine, as is no pedestal.
        assert!(codes("reference 0.5", "range 0.5..1.0").is_empty());
        assert!(codes("reference 0.99", "range 0.99..1.0").is_empty());
        assert!(codes("reference 0.0", "").is_empty());
        assert!(codes("", "range 0.1..1.0").is_empty());
    }
}
