//! Server-rendered SVG charts with axes, ticks and units: no script, no build step.

use maud::{html, Markup, PreEscaped};

/// Round tick steps (1, 2, 5 × 10ⁿ) giving about `n` ticks up to `max`.
pub fn ticks(max: f64, n: usize) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0];
    }
    let raw = max / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    // The top tick is at or above the largest value, so no bar rises past the axis.
    let mut out = vec![0.0];
    let mut v = 0.0;
    while v < max {
        v += step;
        out.push(v);
    }
    out
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

const W: f64 = 640.0;
const H: f64 = 220.0;
const L: f64 = 48.0;
const B: f64 = 28.0;
const T: f64 = 10.0;
const R: f64 = 10.0;

/// A bar chart of (label, value); `unit` names the y axis. Every nth label is shown.
pub fn bars(points: &[(String, f64)], unit: &str, title: &str) -> Markup {
    if points.is_empty() {
        return html! { figure.chart { figcaption { (title) } p.empty { "No data yet." } } };
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let ts = ticks(max, 4);
    let top = *ts.last().unwrap_or(&1.0);
    let top = if top <= 0.0 { 1.0 } else { top };
    let pw = W - L - R;
    let ph = H - T - B;
    let bw = pw / points.len() as f64;
    let every = (points.len() / 8).max(1);
    let mut s = String::new();
    for t in &ts {
        let y = T + ph - t / top * ph;
        s.push_str(&format!(
            "<line x1='{L}' x2='{}' y1='{y:.1}' y2='{y:.1}' class='grid'/><text x='{}' y='{:.1}' class='ylab'>{}</text>",
            W - R,
            L - 6.0,
            y + 4.0,
            fmt_num(*t)
        ));
    }
    for (i, (label, v)) in points.iter().enumerate() {
        let h = v / top * ph;
        let x = L + i as f64 * bw;
        s.push_str(&format!(
            "<rect x='{:.1}' y='{:.1}' width='{:.1}' height='{h:.1}' class='bar'><title>{}: {} {}</title></rect>",
            x + bw * 0.1,
            T + ph - h,
            (bw * 0.8).max(1.0),
            maud::html!((label)).into_string(),
            fmt_num(*v),
            maud::html!((unit)).into_string()
        ));
        if i % every == 0 {
            s.push_str(&format!(
                "<text x='{:.1}' y='{}' class='xlab'>{}</text>",
                x + bw / 2.0,
                H - 8.0,
                maud::html!((label)).into_string()
            ));
        }
    }
    s.push_str(&format!(
        "<line x1='{L}' x2='{L}' y1='{T}' y2='{}' class='axis'/><line x1='{L}' x2='{}' y1='{}' y2='{}' class='axis'/><text x='12' y='{}' class='unit' transform='rotate(-90 12 {})'>{}</text>",
        T + ph, W - R, T + ph, T + ph, T + ph / 2.0, T + ph / 2.0, maud::html!((unit)).into_string()
    ));
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) { (PreEscaped(s)) }
        }
    }
}

/// A line chart of (label, value) with values from `lo` to `hi` (e.g. sentiment −1..1).
pub fn line(points: &[(String, f64)], lo: f64, hi: f64, unit: &str, title: &str) -> Markup {
    if points.is_empty() {
        return html! { figure.chart { figcaption { (title) } p.empty { "No data yet." } } };
    }
    let pw = W - L - R;
    let ph = H - T - B;
    let y = |v: f64| T + ph - (v - lo) / (hi - lo) * ph;
    let dx = if points.len() > 1 {
        pw / (points.len() - 1) as f64
    } else {
        0.0
    };
    let mut s = String::new();
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        s.push_str(&format!(
            "<line x1='{L}' x2='{}' y1='{:.1}' y2='{:.1}' class='grid'/><text x='{}' y='{:.1}' class='ylab'>{}</text>",
            W - R, y(v), y(v), L - 6.0, y(v) + 4.0, fmt_num(v)
        ));
    }
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("{:.1},{:.1}", L + i as f64 * dx, y(v.clamp(lo, hi))))
        .collect();
    s.push_str(&format!(
        "<polyline points='{}' class='line'/>",
        path.join(" ")
    ));
    let every = (points.len() / 6).max(1);
    for (i, (label, v)) in points.iter().enumerate() {
        s.push_str(&format!(
            "<circle cx='{:.1}' cy='{:.1}' r='2.5' class='dot'><title>{}: {}</title></circle>",
            L + i as f64 * dx,
            y(v.clamp(lo, hi)),
            maud::html!((label)).into_string(),
            fmt_num(*v)
        ));
        if i % every == 0 {
            s.push_str(&format!(
                "<text x='{:.1}' y='{}' class='xlab'>{}</text>",
                L + i as f64 * dx,
                H - 8.0,
                maud::html!((label)).into_string()
            ));
        }
    }
    s.push_str(&format!(
        "<line x1='{L}' x2='{L}' y1='{T}' y2='{}' class='axis'/><text x='12' y='{}' class='unit' transform='rotate(-90 12 {})'>{}</text>",
        T + ph, T + ph / 2.0, T + ph / 2.0, maud::html!((unit)).into_string()
    ));
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) { (PreEscaped(s)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_ticks() {
        assert_eq!(ticks(95.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(ticks(1234.0, 4), vec![0.0, 500.0, 1000.0, 1500.0]);
        assert_eq!(ticks(0.0, 4), vec![0.0]);
    }

    #[test]
    fn labels_are_escaped() {
        let svg = bars(&[("<b>".into(), 3.0)], "events", "t").into_string();
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
    }
}
