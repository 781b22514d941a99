//! `report.html`: one self-contained page per run (inline CSS, the plots as inline SVG,
//! the preview sheet as a PNG data URI; no script, nothing fetched), readable on a laptop
//! screen and printable.

use super::{display_number, plot::Plot, stop_name, Identity, Manifest, Results};
use crate::plan::to_ron;
use crate::staircase::Censor;
use std::fmt::Write;

const STYLE: &str = "\
:root{--ink:#1b1f24;--muted:#59636e;--line:#d0d7de;--accent:#1f77b4;--warn:#9a4a00;--bad:#d62728}
*{box-sizing:border-box}
body{font-family:\"DejaVu Sans\",system-ui,-apple-system,\"Segoe UI\",sans-serif;color:var(--ink);\
margin:0 auto;max-width:68rem;padding:1.5rem 1.25rem 3rem;line-height:1.45;font-size:15px}
h1{font-size:1.5rem;margin:0 0 .25rem}
h2{font-size:1.15rem;margin:2rem 0 .6rem;padding-bottom:.2rem;border-bottom:1px solid var(--line)}
p.sub{color:var(--muted);margin:0 0 .8rem}
.status{display:inline-block;padding:.1rem .55rem;border-radius:.8rem;font-size:.85rem;font-weight:600}
.status.complete{background:#dafbe1;color:#116329}
.status.incomplete{background:#ffebe9;color:#a40e26}
dl.id{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.8rem 0}
dl.id dt{color:var(--muted)}dl.id dd{margin:0;font-family:\"DejaVu Sans Mono\",ui-monospace,monospace;font-size:.9rem}
div.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{padding:.3rem .45rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
tr.censored td{color:var(--bad)}
figure{margin:1rem 0;break-inside:avoid;page-break-inside:avoid}
figure svg,figure img{display:block;width:100%;height:auto;max-width:900px;border:1px solid var(--line)}
figcaption{color:var(--muted);font-size:.85rem;margin-top:.3rem}
ul.warnings li{color:var(--warn);font-family:\"DejaVu Sans Mono\",ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap}
pre{background:#f6f8fa;border:1px solid var(--line);padding:.75rem;overflow-x:auto;font-size:.8rem;line-height:1.35}
footer{margin-top:2.5rem;color:var(--muted);font-size:.8rem}
@media print{
body{max-width:none;padding:0;font-size:10.5pt}
h2{break-after:avoid;page-break-after:avoid}
pre{white-space:pre-wrap;border:none;background:none}
figure svg,figure img{border:none;max-width:17cm}
a{color:inherit;text-decoration:none}
}
@page{size:A4;margin:15mm}
";

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An SVG document as an inline element: without an XML declaration, with a role and a
/// label for screen readers.
fn inline_svg(svg: &str, label: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    let body = &svg[start..];
    body.replacen(
        "<svg",
        &format!("<svg role=\"img\" aria-label=\"{}\"", esc(label)),
        1,
    )
}

/// What the run measured, for headings: the detection CSF, or increment thresholds over a
/// pedestal.
pub(super) fn measured(results: &Results) -> String {
    if let Some(d) = &results.plan.design {
        return format!(
            "{} threshold versus {}",
            d.level.name.replace('_', " "),
            d.axis.name.replace('_', " ")
        );
    }
    let reference = results.plan.test.reference;
    if reference > 0.0 {
        format!(
            "Increment-threshold sensitivity on a pedestal of contrast {}",
            display_number(reference)
        )
    } else {
        "Contrast sensitivity function".to_string()
    }
}

/// The page. `plots` are the run's figures with their file stems (`csf`, `psychometric`,
/// …) and `preview` the preview sheet's PNG, when there is one.
pub fn report_html(
    results: &Results,
    manifest: &Manifest,
    plots: &[(&str, &Plot)],
    preview: Option<&[u8]>,
) -> String {
    let id = Identity::of(results);
    let mut h = String::new();
    let title = format!("{}: {}", id.experiment, measured(results));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n",
        esc(&title)
    );
    let (class, status) = if manifest.complete {
        ("complete", "complete")
    } else {
        (
            "incomplete",
            "INCOMPLETE: running, interrupted or failed; results so far",
        )
    };
    let _ = write!(
        h,
        "<header>\n<h1>{}</h1>\n<p class=\"sub\">{} · <span class=\"status {class}\" id=\"status\">{}</span></p>\n",
        esc(&id.experiment),
        esc(&measured(results)),
        esc(status)
    );
    h.push_str("<dl class=\"id\">\n");
    let reference = if id.reference > 0.0 {
        format!("{} (pedestal: increment thresholds)", id.reference)
    } else {
        "0 (detection against grey)".to_string()
    };
    for (k, v) in [
        ("backbone", results.plan.backbone.describe()),
        ("pooling", id.pooling.clone()),
        ("precision", id.precision.clone()),
        ("seed", id.seed.to_string()),
        ("reference", reference),
        ("procedure", results.plan.staircase.name().to_string()),
        ("repeats", results.plan.repeats.to_string()),
        ("device", manifest.device.clone()),
        ("started", manifest.started.clone()),
        (
            "finished",
            manifest.finished.clone().unwrap_or_else(|| "-".into()),
        ),
    ] {
        let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    }
    h.push_str("</dl>\n</header>\n");

    // Results table, ascending frequency.
    h.push_str("<section id=\"results\">\n<h2>Results</h2>\n");
    let mut points: Vec<&super::CsfPoint> = results.csf.iter().collect();
    points.sort_by(|a, b| a.frequency.total_cmp(&b.frequency));
    if points.is_empty() {
        h.push_str("<p>No frequency has been measured yet.</p>\n");
    } else {
        let ci = format!("{:.0}&nbsp;%&nbsp;CI", 100.0 * results.plan.fit.ci);
        let labels = super::Labels::of(&results.plan);
        let (axis, level) = if labels.legacy {
            ("frequency (c/img)".to_string(), "contrast".to_string())
        } else {
            (esc(&labels.axis_desc), esc(&labels.level_desc))
        };
        let _ = writeln!(
            h,
            "<div class=\"scroll\"><table>\n<thead><tr><th class=\"num\">{axis}</th><th class=\"num\">threshold {level}</th>\
             <th class=\"num\">{ci}</th><th class=\"num\">sensitivity</th><th class=\"num\">sensitivity {ci}</th>\
             <th class=\"num\">trials</th><th class=\"num\">repeats</th><th>method</th><th>stop (censoring)</th></tr></thead>\n<tbody>"
        );
        for p in points {
            let t = match p.censored {
                Some(Censor::BelowRange) => format!("&lt;{}", display_number(p.threshold)),
                Some(Censor::AboveRange) => format!("&gt;{}", display_number(p.threshold)),
                _ => display_number(p.threshold),
            };
            let range = |r: Option<(f64, f64)>| {
                r.map_or("-".to_string(), |(lo, hi)| {
                    format!("{}–{}", display_number(lo), display_number(hi))
                })
            };
            let stop = match p.censored {
                Some(c) => format!(
                    "{} ({}, {} of {})",
                    stop_name(p.stop),
                    c.name(),
                    p.censored_repeats,
                    p.repeats
                ),
                None => stop_name(p.stop).to_string(),
            };
            let _ = writeln!(
                h,
                "<tr{}><td class=\"num\">{}</td><td class=\"num\">{t}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                if p.censored.is_some() {
                    " class=\"censored\""
                } else {
                    ""
                },
                p.frequency,
                range(p.ci),
                display_number(p.sensitivity),
                range(p.sensitivity_ci),
                p.trials,
                p.repeats,
                esc(&p.method),
                esc(&stop)
            );
        }
        h.push_str("</tbody>\n</table></div>\n");
    }
    h.push_str("</section>\n");

    // Figures.
    h.push_str("<section id=\"plots\">\n<h2>Plots</h2>\n");
    for (stem, plot) in plots {
        let caption = match *stem {
            "csf" => "log–log axes; error bars: the threshold's interval; hollow triangles: censored thresholds (bounds)",
            "csf_linear" => "the same on linear axes",
            "psychometric" => "each frequency's trials pooled by contrast, with the fitted function",
            "training" => "the probe's loss and accuracy per epoch",
            _ => "",
        };
        let _ = writeln!(
            h,
            "<figure id=\"plot-{stem}\">\n{}\n<figcaption><code>{stem}.svg</code>: {}</figcaption>\n</figure>",
            inline_svg(&plot.svg, stem),
            esc(caption)
        );
    }
    match preview {
        Some(png) => {
            let _ = writeln!(
                h,
                "<figure id=\"preview\">\n<img alt=\"stimulus preview\" src=\"data:image/png;base64,{}\">\n\
                 <figcaption><code>preview.png</code>: the first training pairs, one grating per frequency at the \
                 staircase's first contrast, and the comparison image</figcaption>\n</figure>",
                base64(png)
            );
        }
        None => h.push_str("<p>No stimulus preview was written.</p>\n"),
    }
    h.push_str("</section>\n");

    // Warnings.
    h.push_str("<section id=\"warnings\">\n<h2>Warnings</h2>\n");
    let notes: Vec<String> = plots
        .iter()
        .flat_map(|(stem, p)| p.notes.iter().map(move |n| format!("{stem}.svg: {n}")))
        .filter(|n| n.contains("not shown"))
        .collect();
    if manifest.warnings.is_empty() && notes.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<ul class=\"warnings\">\n");
        for w in manifest.warnings.iter().chain(&notes) {
            let _ = writeln!(h, "<li>{}</li>", esc(w));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");

    // Manifest and plan.
    h.push_str("<section id=\"manifest\">\n<h2>Manifest</h2>\n<table>\n<tbody>\n");
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(manifest) {
        for (k, v) in map {
            let text = match &v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".to_string(),
                other => other.to_string(),
            };
            let _ = writeln!(
                h,
                "<tr><th>{}</th><td><code>{}</code></td></tr>",
                esc(&k),
                esc(&text)
            );
        }
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
    let _ = writeln!(
        h,
        "<section id=\"plan\">\n<h2>Plan</h2>\n<p>The resolved plan (<code>plan.ron</code>), every default written in.</p>\n<pre>{}</pre>\n</section>",
        esc(&to_ron(&results.plan))
    );
    let _ = writeln!(
        h,
        "</main>\n<footer>psyrun {} · libtorch {} · files in this folder are described in psyrun's docs/outputs.md</footer>\n</body>\n</html>",
        esc(&manifest.psyrun_version),
        esc(&manifest.libtorch_version)
    );
    h
}

#[cfg(test)]
mod tests {
    use super::{base64, esc};

    #[test]
    fn base64_and_escaping() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
