//! Derived values: the quantities computed from several blocks (trial counts, a catalog
//! backbone's cut and feature shapes), and the checks that need more than one block (images
//! too small for the cut, pooling larger than the feature map, train and test images that
//! give different feature shapes).

use super::backbone::BackboneOut;
use super::experiment::Sections;
use crate::diag::{Code, Diag, Span};
use crate::models::catalog::{self, Arch, ShapeError};
use crate::plan::types::{Derived, Network, Pooling, Staircase, TargetInterval, Test, Train};
use crate::plan::values::Cx;

/// The derived values, or `None` when the blocks do not fit together (reported).
pub(super) fn lower(
    cx: &mut Cx,
    sections: &Sections<'_>,
    bb: &BackboneOut,
    train: &Train,
    test: &Test,
    staircase: &Staircase,
) -> Option<Derived> {
    let mut derived = counts(train, test, staircase);
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
    let feature_shape = shapes.pool(cx, &cut_shape)?;
    let test_features = if test_shape == cut_shape {
        feature_shape.clone()
    } else {
        shapes.pool(cx, &test_shape)?
    };
    if test_features != feature_shape {
        shapes.different_features(cx, train, test, &feature_shape, &test_features);
        return None;
    }
    derived.set_shapes(cut_shape, feature_shape);
    Some(derived)
}

/// The counts every backbone has; the shapes are filled in later.
fn counts(train: &Train, test: &Test, staircase: &Staircase) -> Derived {
    let intervals: u32 = if test.target_interval == TargetInterval::Both {
        2
    } else {
        1
    };
    let trials = (test.orientations.len() * test.phases.len()) as u64 * u64::from(intervals);
    let Staircase::Bisection { max_steps, .. } = staircase;
    Derived {
        cut_shape: None,
        feature_shape: None,
        features_per_image: None,
        probe_inputs: None,
        probe_parameters: None,
        trials_per_level: u32::try_from(trials).unwrap_or(u32::MAX),
        max_levels_per_frequency: max_steps.saturating_add(1),
        train_images_per_epoch: 2 * u64::from(train.samples),
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
            Err(ShapeError::UnknownLayer) => None,
        }
    }

    /// The feature shape after the backbone's pooling of a cut of this `shape`.
    fn pool(&self, cx: &mut Cx, shape: &[u32]) -> Option<Vec<u32>> {
        let (cut, cut_span) = (self.cut, self.bb.cut_span);
        let (Pooling::Avg { h, w } | Pooling::Max { h, w }) = self.bb.plan.pooling else {
            return Some(shape.to_vec());
        };
        let span = self.bb.pooling_span.unwrap_or(cut_span);
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
