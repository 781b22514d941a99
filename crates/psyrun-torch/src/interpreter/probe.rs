//! The linear probe that reads the backbone's features.

use crate::backbone::FeatureOrder;
use psyrun::plan::Optimizer;
use psyrun::stimuli::rng;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Tensor};

/// The linear probe: `logits = W·[f_first, f_second] + b`, `W` of shape [2, 2F] (for a
/// task of issue 12 with I intervals and C answers, `W·[f_1, …, f_I] + b`, `W` of shape
/// [C, I·F]).
///
/// Each half of `W` holds its weights in the order the features are flattened in
/// ([`FeatureOrder`]): torchvision's (channel, row, column), or (row, column, channel) for a
/// channels-last backbone, whose maps then flatten without a copy. Either way a feature gets
/// the same initial weight, so the probe is the same function; only the order in which
/// floating-point products are summed differs.
pub(super) struct Probe {
    pub(super) vs: nn::VarStore,
    pub(super) weight: Tensor,
    pub(super) bias: Tensor,
    pub(super) features: i64,
}

impl Probe {
    /// nn.Linear's default initialisation, U(±1/√fan_in) for weight and bias, drawn from
    /// psyrun's `probe-init` stream (identical on every device and thread count) in
    /// torchvision's feature order, then laid out in `order` for one image's features of
    /// `shape` (`[C, H, W]`; other shapes have one order).
    pub(super) fn new(shape: &[u32], order: FeatureOrder, seed: u64, device: Device) -> Self {
        Self::with_task(shape, order, seed, device, 2, 2)
    }

    /// A probe over `intervals` images' features with `choices` answers (the tutorial's is
    /// 2 and 2, drawn exactly as [`new`](Self::new)).
    pub(super) fn with_task(
        shape: &[u32],
        order: FeatureOrder,
        seed: u64,
        device: Device,
        intervals: i64,
        choices: i64,
    ) -> Self {
        let features: i64 = shape.iter().map(|&d| i64::from(d)).product();
        let fan_in = intervals * features;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let mut r = rng::stream(seed, rng::PROBE_INIT, 0);
        let mut draw = |n: i64| -> Vec<f32> {
            (0..n)
                .map(|_| rng::uniform_f64(&mut r, -bound, bound) as f32)
                .collect()
        };
        let w = Tensor::from_slice(&draw(choices * fan_in)).reshape([choices, fan_in]);
        let w = match (order, shape) {
            (FeatureOrder::Hwc, &[c, h, wd]) => {
                let dims = [
                    choices,
                    intervals,
                    i64::from(c),
                    i64::from(h),
                    i64::from(wd),
                ];
                w.view(dims)
                    .permute([0, 1, 3, 4, 2])
                    .contiguous()
                    .view([choices, fan_in])
            }
            _ => w,
        };
        let b = Tensor::from_slice(&draw(choices));
        let vs = nn::VarStore::new(device);
        let weight = vs.root().var_copy("weight", &w);
        let bias = vs.root().var_copy("bias", &b);
        Probe {
            vs,
            weight,
            bias,
            features,
        }
    }

    /// The plan's optimiser over the probe's weight and bias.
    pub(super) fn optimizer(&self, o: &Optimizer) -> Result<nn::Optimizer, tch::TchError> {
        match o {
            Optimizer::Sgd {
                lr,
                momentum,
                weight_decay,
                nesterov,
            } => nn::Sgd {
                momentum: *momentum,
                dampening: 0.0,
                wd: *weight_decay,
                nesterov: *nesterov,
            }
            .build(&self.vs, *lr),
            Optimizer::Adam {
                lr,
                betas,
                weight_decay,
            } => nn::Adam {
                beta1: betas.0,
                beta2: betas.1,
                wd: *weight_decay,
                eps: 1e-8,
                amsgrad: false,
            }
            .build(&self.vs, *lr),
        }
    }

    /// Logits of trials whose intervals' features are concatenated, `[N, I·F]`.
    pub(super) fn forward_concat(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }

    pub(super) fn forward(&self, first: &Tensor, second: &Tensor) -> Tensor {
        Tensor::cat(&[first, second], 1).linear(&self.weight, Some(&self.bias))
    }

    /// The two halves of the weight: the part applied to the first image and to the second.
    pub(super) fn halves(&self) -> (Tensor, Tensor) {
        let w = self.weight.detach();
        (
            w.narrow(1, 0, self.features),
            w.narrow(1, self.features, self.features),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{FeatureOrder, Probe};
    use tch::{Device, Kind, Tensor};

    /// A probe laid out for channels-last features is the same function as one in
    /// torchvision's order: the same logits (to float rounding) for the same images.
    #[test]
    fn probe_weights_follow_the_feature_order() {
        let (c, h, w) = (5i64, 3i64, 4i64);
        let shape = [c as u32, h as u32, w as u32];
        let chw = Probe::new(&shape, FeatureOrder::Chw, 7, Device::Cpu);
        let hwc = Probe::new(&shape, FeatureOrder::Hwc, 7, Device::Cpu);
        assert!(chw.bias.equal(&hwc.bias));
        tch::manual_seed(1);
        let maps = |n| Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu));
        let (first, second) = (maps(6), maps(6));
        let by_chw = |m: &Tensor| m.reshape([6, -1]);
        let by_hwc = |m: &Tensor| m.permute([0, 2, 3, 1]).reshape([6, -1]);
        let a = chw.forward(&by_chw(&first), &by_chw(&second));
        let b = hwc.forward(&by_hwc(&first), &by_hwc(&second));
        let diff = (&a - &b).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "logits differ by {diff}");
        // Not the same layout: the weights really were permuted.
        assert!(!chw.weight.equal(&hwc.weight));
        // Feature (c=1, y=2, x=3) of the first image has one weight in both layouts.
        let at_chw = h * w + 2 * w + 3; // (1·h + 2)·w + 3
        let at_hwc = (2 * w + 3) * c + 1;
        assert_eq!(
            chw.weight.double_value(&[0, at_chw]),
            hwc.weight.double_value(&[0, at_hwc])
        );
        // Flat features have one order.
        let flat = Probe::new(&[(c * h * w) as u32], FeatureOrder::Hwc, 7, Device::Cpu);
        assert!(flat.weight.equal(&chw.weight));
    }
}
