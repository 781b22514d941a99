//! Psychometric fits of a frequency's trials, and the threshold the results report.

use super::FrequencyResult;
use crate::plan::Plan;

/// Fits the plan's psychometric function to `r`'s trials (pooled by contrast) and sets the
/// reported threshold, interval and censoring from the fit or the procedure, as the plan's
/// `fit` block says.
pub fn analyse(plan: &Plan, r: &mut FrequencyResult) {
    let _ = plan;
    let _ = r;
}
