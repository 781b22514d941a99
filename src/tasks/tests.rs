use super::*;
use crate::plan::design::{Axis, DesignTrain, Expr, Level, Readout, StimulusSpec, Task, TaskKind};
use crate::plan::Normalize;
use crate::stimuli::folder::{load_folder, Colour, FolderParams, Luma, Resample};
use crate::stimuli::gabor::{Envelope, GaborParams, GaborPhase};
use crate::stimuli::gratings::{GratingParams, Waveform};
use crate::stimuli::noise::{NoiseParams, Source, Spectrum};
use crate::stimuli::patch::{PatchParams, PatchShape};
use crate::stimuli::sum::SumParams;
use crate::stimuli::vernier::{Flankers, Orientation, Polarity, Sampling, VernierParams};
use crate::stimuli::{repeat_channels, Clip, Display, Window};
use std::collections::BTreeMap;
use std::path::PathBuf;

const SIZE: u32 = 24;

fn num(x: f64) -> Param {
    Param::Value(Expr::Num(x))
}

fn word(w: &str) -> Param {
    Param::Word(w.to_string())
}

fn stim(name: &str, kind: StimulusKind, params: &[(&str, Param)]) -> StimulusSpec {
    StimulusSpec {
        name: name.to_string(),
        kind,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn task(kind: TaskKind, intervals: u32) -> Task {
    Task {
        kind,
        reference: "reference".into(),
        target: "target".into(),
        answer: Answer::Differs,
        intervals,
        position: Position::All,
    }
}

fn design(stimuli: Vec<StimulusSpec>, task: Task) -> Design {
    Design {
        size: SIZE,
        background: 0.5,
        normalize: Normalize::Off,
        stimuli,
        task,
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
            samples: 10,
            level: Draw::Uniform { lo: 0.0, hi: 1.0 },
            task: None,
        }),
    }
}

/// A contrast-detection design: a blank gabor (contrast 0) and a gabor at `contrast =
/// level`, frequency = axis.
fn detection(kind: TaskKind, intervals: u32) -> Design {
    let reference = stim(
        "reference",
        StimulusKind::Gabor,
        &[
            ("frequency", Param::Value(Expr::Axis)),
            ("contrast", num(0.0)),
        ],
    );
    let target = stim(
        "target",
        StimulusKind::Gabor,
        &[
            ("frequency", Param::Value(Expr::Axis)),
            ("contrast", Param::Value(Expr::Level)),
        ],
    );
    design(vec![reference, target], task(kind, intervals))
}

fn trials(d: &Design) -> TaskTrials {
    TaskTrials::new(d, &d.task, Path::new(".")).unwrap()
}

fn seeded(i: u64) -> ChaCha8Rng {
    rng::stream(42, "tasks-test", i)
}

fn display() -> Display {
    Display {
        background: 0.5,
        clip: Clip::Error,
    }
}

fn rgb(img: Image) -> Vec<f32> {
    repeat_channels(&img.to_f32())
}

#[test]
fn condition_counts_per_kind() {
    use Role::{Reference as R, Target as T};
    for (kind, n, count) in [
        (TaskKind::TwoAfc, 2, 2),
        (TaskKind::Nafc, 4, 4),
        (TaskKind::Oddity, 3, 3),
        (TaskKind::SameDifferent, 2, 4),
        (TaskKind::YesNo, 1, 2),
    ] {
        let t = trials(&detection(kind, n));
        assert_eq!(t.conditions(), count, "{kind:?}");
        assert_eq!(t.intervals(), n as usize, "{kind:?}");
        for c in 0..count {
            assert_eq!(t.layout(c).len(), n as usize);
        }
    }
    let t = trials(&detection(TaskKind::Nafc, 3));
    assert_eq!(t.layout(0), vec![T, R, R]);
    assert_eq!(t.layout(1), vec![R, T, R]);
    assert_eq!(t.layout(2), vec![R, R, T]);
    let t = trials(&detection(TaskKind::SameDifferent, 2));
    let layouts: Vec<_> = (0..4).map(|c| t.layout(c)).collect();
    assert_eq!(layouts, [vec![R, R], vec![T, T], vec![R, T], vec![T, R]]);
    let t = trials(&detection(TaskKind::YesNo, 1));
    assert_eq!((t.layout(0), t.layout(1)), (vec![T], vec![R]));
    // Indices wrap.
    assert_eq!(t.layout(2), vec![T]);

    // A fixed position: one condition.
    let mut d = detection(TaskKind::TwoAfc, 2);
    d.task.position = Position::Fixed(1);
    let t = trials(&d);
    assert_eq!(t.conditions(), 1);
    assert_eq!(t.layout(0), vec![R, T]);
    d.task.position = Position::Fixed(2);
    assert!(TaskTrials::new(&d, &d.task, Path::new(".")).is_err());
}

#[test]
fn list_dimensions_multiply_the_conditions() {
    // orientation listed by both (same values), phase listed by the target only.
    let orientations = Param::List(vec![0.0, 45.0, 90.0]);
    let reference = stim(
        "reference",
        StimulusKind::Grating,
        &[
            ("orientation", orientations.clone()),
            ("contrast", num(0.1)),
        ],
    );
    let target = stim(
        "target",
        StimulusKind::Grating,
        &[
            ("orientation", orientations),
            ("phase", Param::List(vec![0.0, 180.0])),
            ("contrast", Param::Value(Expr::Level)),
        ],
    );
    let d = design(vec![reference, target], task(TaskKind::TwoAfc, 2));
    let t = trials(&d);
    assert_eq!(t.conditions(), 2 * 3 * 2);
    // Layout outermost; then orientation, then phase (name order), phase fastest.
    let v = |c| t.list_values(c);
    let pair = |o: f64, p: f64| vec![("orientation".to_string(), o), ("phase".to_string(), p)];
    assert_eq!(v(0), pair(0.0, 0.0));
    assert_eq!(v(1), pair(0.0, 180.0));
    assert_eq!(v(2), pair(45.0, 0.0));
    assert_eq!(v(5), pair(90.0, 180.0));
    assert_eq!(v(6), pair(0.0, 0.0));
    assert_eq!(t.layout(5), vec![Role::Target, Role::Reference]);
    assert_eq!(t.layout(6), vec![Role::Reference, Role::Target]);
    assert_eq!(
        t.describe(3),
        "target in interval 1 · orientation 45° · phase 180°"
    );
    assert_eq!(
        t.describe(7),
        "target in interval 2 · orientation 0° · phase 180°"
    );
    // Every (layout, orientation, phase) once.
    let mut seen: Vec<_> = (0..12)
        .map(|c| (t.layout(c), format!("{:?}", t.list_values(c))))
        .collect();
    seen.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    seen.dedup();
    assert_eq!(seen.len(), 12);
    // Each stimulus takes the condition's values: condition 3 is orientation 45, phase 180.
    let imgs = t.render(4.0, 0.3, 3, &mut seeded(0)).unwrap();
    let lib = |phase, contrast| GratingParams {
        size: SIZE,
        frequency: 8.0,
        orientation_deg: 45.0,
        phase_deg: phase,
        contrast,
        waveform: Waveform::Sine,
        window: Window::None,
    };
    assert_eq!(imgs[0], rgb(lib(180.0, 0.3).render(&display()).unwrap()));
    // The reference does not list the phase: it keeps its own (the default 0°).
    assert_eq!(imgs[1], rgb(lib(0.0, 0.1).render(&display()).unwrap()));

    // Different values for one name, or an empty list, are errors.
    let mut bad = d.clone();
    bad.stimuli[0]
        .params
        .insert("orientation".into(), Param::List(vec![0.0, 90.0]));
    let e = TaskTrials::new(&bad, &bad.task, Path::new(".")).unwrap_err();
    assert!(e.message.contains("orientation"), "{e}");
    bad.stimuli[0]
        .params
        .insert("orientation".into(), Param::List(vec![]));
    assert!(TaskTrials::new(&bad, &bad.task, Path::new(".")).is_err());
    // Layouts × lists for same/different too.
    let mut sd = d.clone();
    sd.task = task(TaskKind::SameDifferent, 2);
    assert_eq!(trials(&sd).conditions(), 4 * 6);
}

#[test]
fn answer_table_for_every_kind() {
    let t = trials(&detection(TaskKind::TwoAfc, 2));
    assert_eq!([t.answer(0, 0.1), t.answer(1, 0.1)], [0, 1]);
    // `differs` ignores the sign of the level.
    assert_eq!([t.answer(0, -0.1), t.answer(1, -0.1)], [0, 1]);
    let t = trials(&detection(TaskKind::Nafc, 4));
    assert_eq!(
        (0..4).map(|c| t.answer(c, 0.5)).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let t = trials(&detection(TaskKind::Oddity, 3));
    assert_eq!(
        (0..3).map(|c| t.answer(c, 0.5)).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let t = trials(&detection(TaskKind::SameDifferent, 2));
    assert_eq!(
        (0..4).map(|c| t.answer(c, 0.5)).collect::<Vec<_>>(),
        [0, 0, 1, 1]
    );
    assert_eq!(t.answer_name(0), "same");
    assert_eq!(t.describe(2), "different (reference, target)");
    let t = trials(&detection(TaskKind::YesNo, 1));
    assert_eq!([t.answer(0, 0.5), t.answer(1, 0.5)], [1, 0]);
    assert_eq!(
        (t.describe(0).as_str(), t.describe(1).as_str()),
        ("target present", "target absent")
    );

    // `higher`: the target's interval for positive levels (and 0), the other for negative.
    let mut d = detection(TaskKind::TwoAfc, 2);
    d.task.answer = Answer::Higher;
    let t = trials(&d);
    assert_eq!([t.answer(0, 2.0), t.answer(1, 2.0)], [0, 1]);
    assert_eq!([t.answer(0, 0.0), t.answer(1, 0.0)], [0, 1]);
    assert_eq!([t.answer(0, -2.0), t.answer(1, -2.0)], [1, 0]);
    d.task.position = Position::Fixed(1);
    let t = trials(&d);
    assert_eq!([t.answer(0, 1.0), t.answer(0, -1.0)], [1, 0]);
    // … and refused with more than 2 intervals.
    let mut d = detection(TaskKind::Nafc, 3);
    d.task.answer = Answer::Higher;
    let e = TaskTrials::new(&d, &d.task, Path::new(".")).unwrap_err();
    assert!(e.message.contains("higher"), "{e}");
    // Interval counts that do not fit the kind.
    for (kind, n) in [
        (TaskKind::TwoAfc, 3),
        (TaskKind::SameDifferent, 1),
        (TaskKind::YesNo, 2),
        (TaskKind::Nafc, 1),
        (TaskKind::Oddity, 0),
        (TaskKind::Nafc, 1000),
    ] {
        let d = detection(kind, n);
        assert!(
            TaskTrials::new(&d, &d.task, Path::new(".")).is_err(),
            "{kind:?} {n}"
        );
    }
}

#[test]
fn guess_rates_and_choices() {
    for (kind, n, guess) in [
        (TaskKind::TwoAfc, 2, 0.5),
        (TaskKind::Nafc, 4, 0.25),
        (TaskKind::Oddity, 3, 1.0 / 3.0),
        (TaskKind::SameDifferent, 2, 0.5),
        (TaskKind::YesNo, 1, 0.5),
    ] {
        let d = detection(kind, n);
        assert_eq!(d.task.guess_rate(), guess, "{kind:?}");
        let t = trials(&d);
        assert_eq!(t.choices(), d.task.choices() as usize, "{kind:?}");
        // Every answer is a valid choice, and each answer occurs equally often over the
        // conditions: a guesser is right with probability 1/choices.
        let mut counts = vec![0usize; t.choices()];
        for c in 0..t.conditions() {
            counts[t.answer(c, 0.5)] += 1;
        }
        assert!(
            counts.iter().all(|&k| k == counts[0]),
            "{kind:?} {counts:?}"
        );
    }
}

/// Renders the 2AFC trial with `target` in interval 2 (reference `reference`), and returns
/// the target's image and the rng as it was before the trial.
fn render_target(reference: StimulusSpec, target: StimulusSpec, level: f64) -> Vec<f32> {
    let d = design(vec![reference, target], task(TaskKind::TwoAfc, 2));
    let t = trials(&d);
    let imgs = t.render(4.0, level, 1, &mut seeded(7)).unwrap();
    assert_eq!(imgs.len(), 2);
    for img in &imgs {
        assert_eq!(img.len(), (SIZE * SIZE * 3) as usize);
        assert!(img.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    imgs[1].clone()
}

fn blank() -> StimulusSpec {
    stim("reference", StimulusKind::Patch, &[])
}

#[test]
fn every_kind_renders_as_the_library() {
    let d = display();
    // Grating: square wave in a disc window, frequency = axis (4), contrast = level.
    let img = render_target(
        blank(),
        stim(
            "target",
            StimulusKind::Grating,
            &[
                ("frequency", Param::Value(Expr::Axis)),
                ("orientation", num(30.0)),
                ("phase", num(45.0)),
                ("contrast", Param::Value(Expr::Level)),
                ("waveform", word("square")),
                ("window", word("circle")),
                ("radius", num(8.0)),
                ("edge", num(2.0)),
            ],
        ),
        0.4,
    );
    let lib = GratingParams {
        size: SIZE,
        frequency: 4.0,
        orientation_deg: 30.0,
        phase_deg: 45.0,
        contrast: 0.4,
        waveform: Waveform::Square,
        window: Window::Circular {
            radius: 8.0,
            edge: 2.0,
        },
    };
    assert_eq!(img, rgb(lib.render(&d).unwrap()));
    // A Gaussian window with the default sigma (size/6).
    let img = render_target(
        blank(),
        stim(
            "target",
            StimulusKind::Grating,
            &[("window", word("gaussian"))],
        ),
        0.0,
    );
    let lib = GratingParams {
        size: SIZE,
        frequency: 8.0,
        orientation_deg: 0.0,
        phase_deg: 0.0,
        contrast: 0.5,
        waveform: Waveform::Sine,
        window: Window::Gaussian {
            sigma: f64::from(SIZE) / 6.0,
        },
    };
    assert_eq!(img, rgb(lib.render(&d).unwrap()));

    // Gabor: fixed cycles, sine phase, DC-free.
    let img = render_target(
        blank(),
        stim(
            "target",
            StimulusKind::Gabor,
            &[
                ("frequency", num(3.0)),
                ("orientation", num(10.0)),
                ("phase", word("sine")),
                ("contrast", num(0.7)),
                ("envelope", word("cycles")),
                ("cycles", num(0.5)),
                ("dc_free", word("true")),
            ],
        ),
        0.0,
    );
    let lib = GaborParams {
        size: SIZE,
        frequency: 3.0,
        orientation_deg: 10.0,
        phase: GaborPhase::Sine,
        contrast: 0.7,
        envelope: Envelope::Cycles(0.5),
        dc_free: true,
    };
    assert_eq!(img, rgb(lib.render(&d).unwrap()));
    // Gabor defaults: σ = size/8, cosine, not DC-free.
    let img = render_target(blank(), stim("target", StimulusKind::Gabor, &[]), 0.0);
    let lib = GaborParams {
        size: SIZE,
        frequency: 8.0,
        orientation_deg: 0.0,
        phase: GaborPhase::Cosine,
        contrast: 0.5,
        envelope: Envelope::Sigma(f64::from(SIZE) / 8.0),
        dc_free: false,
    };
    assert_eq!(img, rgb(lib.render(&d).unwrap()));

    // Plaid: the defaults (±45°, 0.25 each) with a second frequency.
    let img = render_target(
        blank(),
        stim("target", StimulusKind::Plaid, &[("frequency2", num(2.0))]),
        0.0,
    );
    let g = |f, o| GratingParams {
        size: SIZE,
        frequency: f,
        orientation_deg: o,
        phase_deg: 0.0,
        contrast: 0.25,
        waveform: Waveform::Sine,
        window: Window::None,
    };
    let lib = SumParams::plaid(g(8.0, 45.0), g(2.0, -45.0));
    assert_eq!(img, rgb(lib.render(&d).unwrap()));

    // Vernier with line flankers, dark, horizontal.
    let img = render_target(
        blank(),
        stim(
            "target",
            StimulusKind::Vernier,
            &[
                ("offset", Param::Value(Expr::Level)),
                ("width", num(1.0)),
                ("length", num(5.0)),
                ("gap", num(2.0)),
                ("contrast", num(0.8)),
                ("polarity", word("dark")),
                ("flankers", word("lines")),
                ("spacing", num(6.0)),
                ("orientation", word("horizontal")),
            ],
        ),
        1.5,
    );
    let lib = VernierParams {
        size: SIZE,
        offset: 1.5,
        bar_width: 1.0,
        length: 5.0,
        gap: 2.0,
        contrast: 0.8,
        polarity: Polarity::Dark,
        sampling: Sampling::Area,
        flankers: Flankers::Lines {
            spacing: 6.0,
            length: None,
        },
        orientation: Orientation::Horizontal,
    };
    assert_eq!(img, rgb(lib.render(&d).unwrap()));
    // … and with a surround.
    let img = render_target(
        blank(),
        stim(
            "target",
            StimulusKind::Vernier,
            &[("flankers", word("surround")), ("margin", num(3.0))],
        ),
        0.0,
    );
    let lib = VernierParams {
        size: SIZE,
        offset: 0.0,
        bar_width: 2.0,
        length: f64::from(SIZE) / 8.0,
        gap: 4.0,
        contrast: 0.5,
        polarity: Polarity::Bright,
        sampling: Sampling::Area,
        flankers: Flankers::Surround { margin: 3.0 },
        orientation: Orientation::Vertical,
    };
    assert_eq!(img, rgb(lib.render(&d).unwrap()));

    // Patch: a soft square off centre.
    let img = render_target(
        blank(),
        stim(
            "target",
            StimulusKind::Patch,
            &[
                ("shape", word("square")),
                ("radius", num(4.0)),
                ("contrast", num(-0.5)),
                ("edge", num(1.5)),
                ("x", num(3.0)),
                ("y", num(-2.0)),
            ],
        ),
        0.0,
    );
    let lib = PatchParams {
        size: SIZE,
        shape: PatchShape::Square { half: 4.0 },
        contrast: -0.5,
        edge: 1.5,
        centre: (3.0, -2.0),
    };
    assert_eq!(img, rgb(lib.render(&d).unwrap()));
    // The blank reference is a uniform background.
    let t = trials(&design(
        vec![blank(), stim("target", StimulusKind::Patch, &[])],
        task(TaskKind::TwoAfc, 2),
    ));
    let imgs = t.render(1.0, 0.0, 0, &mut seeded(0)).unwrap();
    assert!(imgs[0].iter().all(|&v| v == 0.5));
}

#[test]
fn noise_intervals_are_their_own_samples() {
    let noise = |name: &str| {
        stim(
            name,
            StimulusKind::Noise,
            &[
                ("contrast", num(0.1)),
                ("spectrum", word("band")),
                ("centre", num(4.0)),
                ("octaves", num(1.0)),
                ("source", word("uniform")),
            ],
        )
    };
    let d = design(
        vec![noise("reference"), noise("target")],
        task(TaskKind::TwoAfc, 2),
    );
    let t = trials(&d);
    assert!(!t.deterministic());
    let mut rng = seeded(3);
    let mut copy = rng.clone();
    let imgs = t.render(1.0, 0.0, 0, &mut rng).unwrap();
    assert_ne!(imgs[0], imgs[1]);
    // One seed per interval, in interval order, from the trial's stream.
    for img in &imgs {
        let lib = NoiseParams {
            size: SIZE,
            source: Source::Uniform,
            spectrum: Spectrum::Band {
                centre: 4.0,
                octaves: 1.0,
            },
            rms_contrast: 0.1,
            seed: copy.next_u64(),
            index: 0,
        };
        assert_eq!(*img, rgb(lib.render(&display()).unwrap()));
    }
    // Reproducible from the same stream; different on another trial's.
    assert_eq!(t.render(1.0, 0.0, 0, &mut seeded(3)).unwrap(), imgs);
    assert_ne!(t.render(1.0, 0.0, 0, &mut seeded(4)).unwrap(), imgs);
}

#[test]
fn expressions_of_level_and_axis() {
    // orientation = 45 + level, frequency = axis / 2.
    let target = stim(
        "target",
        StimulusKind::Gabor,
        &[
            (
                "orientation",
                Param::Value(Expr::Add(Box::new(Expr::Num(45.0)), Box::new(Expr::Level))),
            ),
            (
                "frequency",
                Param::Value(Expr::Div(Box::new(Expr::Axis), Box::new(Expr::Num(2.0)))),
            ),
        ],
    );
    let reference = stim(
        "reference",
        StimulusKind::Gabor,
        &[
            ("orientation", num(45.0)),
            (
                "frequency",
                Param::Value(Expr::Div(Box::new(Expr::Axis), Box::new(Expr::Num(2.0)))),
            ),
        ],
    );
    let d = design(vec![reference, target], task(TaskKind::TwoAfc, 2));
    let t = trials(&d);
    assert!(t.deterministic());
    let imgs = t.render(8.0, 5.0, 0, &mut seeded(0)).unwrap();
    let gabor = |o| GaborParams {
        size: SIZE,
        frequency: 4.0,
        orientation_deg: o,
        phase: GaborPhase::Cosine,
        contrast: 0.5,
        envelope: Envelope::Sigma(f64::from(SIZE) / 8.0),
        dc_free: false,
    };
    assert_eq!(imgs[0], rgb(gabor(50.0).render(&display()).unwrap()));
    assert_eq!(imgs[1], rgb(gabor(45.0).render(&display()).unwrap()));
    // The template is the reference alone.
    assert_eq!(t.template(8.0, 0, &mut seeded(0)).unwrap(), imgs[1]);
    assert_eq!(t.template(8.0, 1, &mut seeded(9)).unwrap(), imgs[1]);
}

#[test]
fn shared_random_draws() {
    // Both gabors draw their orientation uniformly on [0, 180) and their frequency
    // log-uniformly on [2, 8); they differ in contrast by the level.
    let random = |name: &str, contrast: Expr| {
        stim(
            name,
            StimulusKind::Gabor,
            &[
                ("orientation", Param::Uniform { lo: 0.0, hi: 180.0 }),
                ("frequency", Param::LogUniform { lo: 2.0, hi: 8.0 }),
                ("contrast", Param::Value(contrast)),
            ],
        )
    };
    let d = design(
        vec![
            random("reference", Expr::Num(0.3)),
            random(
                "target",
                Expr::Add(Box::new(Expr::Num(0.3)), Box::new(Expr::Level)),
            ),
        ],
        task(TaskKind::TwoAfc, 2),
    );
    let t = trials(&d);
    assert!(!t.deterministic());
    // At level 0 the two intervals are the same image: one draw per trial, shared.
    let a = t.render(1.0, 0.0, 0, &mut seeded(1)).unwrap();
    assert_eq!(a[0], a[1]);
    // Another trial draws other values.
    let b = t.render(1.0, 0.0, 0, &mut seeded(2)).unwrap();
    assert_ne!(a[0], b[0]);
    // Reproducible.
    assert_eq!(t.render(1.0, 0.0, 0, &mut seeded(1)).unwrap(), a);
    // The draws, in name order (frequency, then orientation), mapped through each
    // distribution.
    let mut copy = seeded(5);
    let (uf, uo) = (rng::unit_f64(&mut copy), rng::unit_f64(&mut copy));
    let frequency = (2f64.ln() + (8f64.ln() - 2f64.ln()) * uf).exp();
    let orientation = 180.0 * uo;
    let imgs = t.render(1.0, 0.2, 1, &mut seeded(5)).unwrap();
    let gabor = |c| GaborParams {
        size: SIZE,
        frequency,
        orientation_deg: orientation,
        phase: GaborPhase::Cosine,
        contrast: c,
        envelope: Envelope::Sigma(f64::from(SIZE) / 8.0),
        dc_free: false,
    };
    assert_eq!(imgs[0], rgb(gabor(0.3).render(&display()).unwrap()));
    assert_eq!(imgs[1], rgb(gabor(0.5).render(&display()).unwrap()));
    // The template from a copy of the trial's stream shows the trial's draws.
    assert_eq!(t.template(1.0, 1, &mut seeded(5)).unwrap(), imgs[0]);
    // Bad bounds are refused.
    let mut bad = d.clone();
    bad.stimuli[0]
        .params
        .insert("frequency".into(), Param::LogUniform { lo: 0.0, hi: 8.0 });
    assert!(TaskTrials::new(&bad, &bad.task, Path::new(".")).is_err());
    bad.stimuli[0].params.insert(
        "frequency".into(),
        Param::Uniform {
            lo: 3.0,
            hi: f64::NAN,
        },
    );
    assert!(TaskTrials::new(&bad, &bad.task, Path::new(".")).is_err());
}

#[test]
fn out_of_range_is_an_error_naming_the_parameter() {
    let t = trials(&detection(TaskKind::TwoAfc, 2));
    let e = t.render(4.0, 1.5, 0, &mut seeded(0)).unwrap_err();
    assert_eq!(e.stimulus, "target");
    assert!(e.message.contains("`contrast` is 1.5"), "{e}");
    assert!(e.message.contains("level 1.5"), "{e}");
    for bad in [f64::NAN, f64::INFINITY, -0.1] {
        assert!(t.render(4.0, bad, 0, &mut seeded(0)).is_err());
    }
    // A plaid's second grating is named as such.
    let d = design(
        vec![
            blank(),
            stim(
                "target",
                StimulusKind::Plaid,
                &[("contrast2", Param::Value(Expr::Level))],
            ),
        ],
        task(TaskKind::TwoAfc, 2),
    );
    let e = trials(&d).render(1.0, 2.0, 0, &mut seeded(0)).unwrap_err();
    assert!(e.message.contains("`contrast2`"), "{e}");
    // A plaid that leaves [0, 1] says so.
    let e = trials(&d).render(1.0, 0.9, 0, &mut seeded(0)).unwrap_err();
    assert!(e.message.contains("leave [0, 1]"), "{e}");
    // Noise: the library's rms_contrast is the file's `contrast`.
    let d = design(
        vec![
            blank(),
            stim(
                "target",
                StimulusKind::Noise,
                &[("contrast", Param::Value(Expr::Level))],
            ),
        ],
        task(TaskKind::TwoAfc, 2),
    );
    let e = trials(&d).render(1.0, -1.0, 0, &mut seeded(0)).unwrap_err();
    assert!(e.message.contains("`contrast`"), "{e}");
    // A word where a number belongs, an unknown word, a missing stimulus.
    let d = design(
        vec![
            blank(),
            stim("target", StimulusKind::Gabor, &[("contrast", word("high"))]),
        ],
        task(TaskKind::TwoAfc, 2),
    );
    assert!(trials(&d).render(1.0, 0.0, 0, &mut seeded(0)).is_err());
    let d = design(
        vec![
            blank(),
            stim("target", StimulusKind::Gabor, &[("phase", word("odd"))]),
        ],
        task(TaskKind::TwoAfc, 2),
    );
    let e = trials(&d).render(1.0, 0.0, 0, &mut seeded(0)).unwrap_err();
    assert!(e.message.contains("`phase` is `odd`"), "{e}");
    let mut d = detection(TaskKind::TwoAfc, 2);
    d.task.target = "missing".into();
    let e = TaskTrials::new(&d, &d.task, Path::new(".")).unwrap_err();
    assert!(e.message.contains("`missing`"), "{e}");
    // A bad background and a bad size are errors too.
    let mut d = detection(TaskKind::TwoAfc, 2);
    d.background = 0.0;
    assert!(trials(&d).render(1.0, 0.1, 0, &mut seeded(0)).is_err());
    d.background = 0.5;
    d.size = 0;
    assert!(trials(&d).render(1.0, 0.1, 0, &mut seeded(0)).is_err());
}

#[test]
fn no_panic_on_odd_values() {
    let odd = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        -f64::MAX,
        1e300,
        -1e300,
        0.0,
        -0.0,
        1e-320,
        -3.0,
        0.5,
        3.0,
    ];
    for kind in StimulusKind::ALL {
        if kind == StimulusKind::Images {
            continue;
        }
        for spec in kind.params() {
            if !matches!(
                spec.ty,
                crate::plan::design::ParamType::Number | crate::plan::design::ParamType::Angle
            ) {
                continue;
            }
            let target = stim("target", kind, &[(spec.name, Param::Value(Expr::Level))]);
            let d = design(vec![blank(), target], task(TaskKind::TwoAfc, 2));
            let t = trials(&d);
            for &level in &odd {
                if let Ok(imgs) = t.render(level, level, 0, &mut seeded(0)) {
                    assert!(imgs.iter().all(|i| i.len() == (SIZE * SIZE * 3) as usize
                        && i.iter().all(|v| (0.0..=1.0).contains(v))));
                }
            }
        }
    }
}

#[test]
fn deterministic_cases() {
    assert!(trials(&detection(TaskKind::TwoAfc, 2)).deterministic());
    let mut d = detection(TaskKind::TwoAfc, 2);
    d.stimuli[1]
        .params
        .insert("orientation".into(), Param::Uniform { lo: 0.0, hi: 10.0 });
    assert!(!trials(&d).deterministic());
    let mut d = detection(TaskKind::TwoAfc, 2);
    d.stimuli[0]
        .params
        .insert("frequency".into(), Param::LogUniform { lo: 1.0, hi: 10.0 });
    assert!(!trials(&d).deterministic());
    // Lists do not make a task random.
    let mut d = detection(TaskKind::TwoAfc, 2);
    d.stimuli[1]
        .params
        .insert("orientation".into(), Param::List(vec![0.0, 90.0]));
    assert!(trials(&d).deterministic());
    let d = design(
        vec![blank(), stim("target", StimulusKind::Noise, &[])],
        task(TaskKind::YesNo, 1),
    );
    assert!(!trials(&d).deterministic());
}

#[test]
fn training_draws() {
    let d = detection(TaskKind::TwoAfc, 2);
    let t = trials(&d);
    let (lo, hi) = (0.01, 1.0);
    let n = 20_000;
    let mut levels = Vec::with_capacity(n);
    let mut axes = [0usize; 3];
    let mut conditions = [0usize; 2];
    for i in 0..n {
        let mut rng = seeded(i as u64);
        let (axis, level, c) = draw_training_trial(&d, &t, &Draw::LogUniform { lo, hi }, &mut rng);
        assert!((lo..hi).contains(&level), "{level}");
        levels.push(level);
        axes[d.axis.values.iter().position(|&v| v == axis).unwrap()] += 1;
        conditions[c] += 1;
        // Reproducible.
        assert_eq!(
            draw_training_trial(&d, &t, &Draw::LogUniform { lo, hi }, &mut seeded(i as u64)),
            (axis, level, c)
        );
    }
    levels.sort_by(f64::total_cmp);
    let median = levels[n / 2];
    // √(lo·hi) = 0.1; the sample median's SE in log space is about 0.9% of the range.
    assert!(
        (median / (lo * hi).sqrt()).ln().abs() < 0.05,
        "median {median}"
    );
    // A decade each: as many trials below 0.1 as above.
    let below = levels.iter().filter(|&&l| l < 0.1).count() as f64 / n as f64;
    assert!((below - 0.5).abs() < 0.02, "{below}");
    for k in axes {
        assert!((k as f64 / n as f64 - 1.0 / 3.0).abs() < 0.02, "{axes:?}");
    }
    for k in conditions {
        assert!((k as f64 / n as f64 - 0.5).abs() < 0.02, "{conditions:?}");
    }
    // Uniform: the mean is the middle; the order of draws is axis, level, condition.
    let mut copy = seeded(99);
    let a = rng::below(&mut copy, 3) as usize;
    let l = rng::uniform_f64(&mut copy, 0.2, 0.6);
    let c = rng::below(&mut copy, 2) as usize;
    assert_eq!(
        draw_training_trial(&d, &t, &Draw::Uniform { lo: 0.2, hi: 0.6 }, &mut seeded(99)),
        (d.axis.values[a], l, c)
    );
}

/// A temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "psyrun-tasks-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_png(path: &Path, w: u32, h: u32, data: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

#[test]
fn image_folders() {
    let dir = TempDir::new("images");
    let photos = dir.0.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    // Three 8 × 8 RGB images: gradients of different means.
    for (k, name) in ["a.png", "b.png", "c.png"].iter().enumerate() {
        let data: Vec<u8> = (0..8 * 8 * 3)
            .map(|i| ((i * 7 + k * 60) % 256) as u8)
            .collect();
        write_png(&photos.join(name), 8, 8, &data);
    }
    let images = |name: &str, contrast: Expr| {
        stim(
            name,
            StimulusKind::Images,
            &[
                ("folder", Param::Path("photos".into())),
                ("contrast", Param::Value(contrast)),
                ("colour", word("rgb")),
                ("resample", word("bilinear")),
            ],
        )
    };
    let d = design(
        vec![
            images("reference", Expr::Num(0.5)),
            images("target", Expr::Level),
        ],
        task(TaskKind::TwoAfc, 2),
    );
    let t = TaskTrials::new(&d, &d.task, &dir.0).unwrap();
    assert!(!t.deterministic());
    let loaded = load_folder(
        &photos,
        &FolderParams {
            size: SIZE,
            colour: Colour::Rgb,
            resample: Resample::Bilinear,
        },
    )
    .unwrap();
    // The photo drawn from the trial's stream, the same in both intervals at two contrasts.
    let mut picked = std::collections::BTreeSet::new();
    for trial in 0..30 {
        let mut copy = seeded(trial);
        let k = (rng::unit_f64(&mut copy) * 3.0) as usize;
        picked.insert(k);
        let imgs = t.render(1.0, 0.8, 1, &mut seeded(trial)).unwrap();
        let img = &loaded[k].1;
        assert_eq!(imgs[0], render::apply_contrast(img, 0.5, 0.5));
        assert_eq!(imgs[1], render::apply_contrast(img, 0.5, 0.8));
        assert_eq!(imgs[0].len(), (SIZE * SIZE * 3) as usize);
    }
    assert_eq!(picked.len(), 3);
    // The contrast by hand: L = 0.5 + c·(v − mean), clamped.
    let img = &loaded[0].1;
    let mean = img.pixels.iter().sum::<f64>() / img.pixels.len() as f64;
    let by_hand: Vec<f32> = img
        .pixels
        .iter()
        .map(|v| (0.5 + 0.25 * (v - mean)).clamp(0.0, 1.0) as f32)
        .collect();
    assert_eq!(render::apply_contrast(img, 0.5, 0.25), by_hand);
    // Grey: one channel repeated.
    let grey = stim(
        "target",
        StimulusKind::Images,
        &[("folder", Param::Path("photos".into()))],
    );
    let d2 = design(vec![blank(), grey], task(TaskKind::YesNo, 1));
    let t2 = TaskTrials::new(&d2, &d2.task, &dir.0).unwrap();
    let img = &t2.render(1.0, 0.0, 0, &mut seeded(0)).unwrap()[0];
    assert!(img.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    let lum = load_folder(
        &photos,
        &FolderParams {
            size: SIZE,
            colour: Colour::Grey(Luma::Rec601),
            resample: Resample::Area,
        },
    )
    .unwrap();
    let mut copy = seeded(0);
    let k = (rng::unit_f64(&mut copy) * 3.0) as usize;
    assert_eq!(*img, render::apply_contrast(&lum[k].1, 0.5, 1.0));
    // A negative contrast is an error.
    assert!(t.render(1.0, -0.5, 0, &mut seeded(0)).is_err());
    // One image: deterministic.
    let single = dir.0.join("single");
    std::fs::create_dir_all(&single).unwrap();
    write_png(&single.join("only.png"), 2, 2, &[10; 12]);
    let one = stim(
        "target",
        StimulusKind::Images,
        &[("folder", Param::Path("single".into()))],
    );
    let d3 = design(vec![blank(), one], task(TaskKind::TwoAfc, 2));
    assert!(TaskTrials::new(&d3, &d3.task, &dir.0)
        .unwrap()
        .deterministic());
    // A missing folder is an error naming the stimulus.
    let e = TaskTrials::new(&d3, &d3.task, &dir.0.join("nowhere")).unwrap_err();
    assert_eq!(e.stimulus, "target");
}

#[test]
fn preview_shows_each_condition_at_each_axis_value() {
    let mut d = detection(TaskKind::TwoAfc, 2);
    d.stimuli[1]
        .params
        .insert("orientation".into(), Param::List(vec![0.0, 90.0]));
    d.stimuli[0]
        .params
        .insert("orientation".into(), Param::List(vec![0.0, 90.0]));
    // Training on another task: yes/no on the same stimuli.
    d.train = Some(DesignTrain {
        samples: 10,
        level: Draw::LogUniform { lo: 0.01, hi: 0.5 },
        task: Some(task(TaskKind::YesNo, 1)),
    });
    let shown = preview_trials(&d, 7, Path::new("."), 0.3, 3).unwrap();
    // 3 axis values × 4 conditions, then 3 training trials.
    assert_eq!(shown.len(), 3 * 4 + 3);
    let t = trials(&d);
    for (i, p) in shown[..12].iter().enumerate() {
        assert_eq!(p.set, "test");
        assert_eq!((p.axis, p.condition), (d.axis.values[i / 4], i % 4));
        assert_eq!(p.level, 0.3);
        assert_eq!(p.answer, t.answer(p.condition, 0.3));
        assert_eq!(p.description, t.describe(p.condition));
        assert_eq!(
            p.images,
            t.render(p.axis, 0.3, p.condition, &mut seeded(0)).unwrap()
        );
    }
    assert_eq!(
        shown[1].description,
        "target in interval 1 · orientation 90°"
    );
    assert_eq!(shown[2].answer_name, "interval 2");
    for p in &shown[12..] {
        assert_eq!(p.set, "train");
        assert_eq!(p.images.len(), 1);
        assert!((0.01..0.5).contains(&p.level));
        assert!(p.answer_name == "present" || p.answer_name == "absent");
    }
    let (images, columns) = preview_images(&d, &shown);
    assert_eq!(columns, 2);
    // Training rows padded to two columns.
    assert_eq!(images.len(), 2 * shown.len());
    assert_eq!(
        images[0].0,
        "frequency=2: target in interval 1 · orientation 0°"
    );
    assert_eq!(images[1].0, "2 reference → interval 1");
    assert!(images[25].0.is_empty());
    let sheet = crate::report::preview_sheet(&images, columns);
    assert!(sheet.starts_with(b"\x89PNG"));
    // An error at the level is a TaskError, not a panic.
    assert!(preview_trials(&d, 7, Path::new("."), 2.0, 0).is_err());
}
