//! SVG charts of a report (plotters, SVG backend only: no system fonts).

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

type Res = Result<(), Box<dyn std::error::Error>>;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Fraction-vs-seconds step curves (or CDFs) on one chart.
fn curves(
    path: &Path,
    title: &str,
    x_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    vline: Option<(f64, &str)>,
) -> Res {
    let xmax = series
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .chain(vline.map(|v| v.0))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..xmax, 0.0..1.02)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("fraction")
        .draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut step = Vec::with_capacity(pts.len() * 2 + 1);
        let mut y = 0.0;
        step.push((0.0, 0.0));
        for &(x, ny) in pts {
            step.push((x, y));
            step.push((x, ny));
            y = ny;
        }
        chart
            .draw_series(LineSeries::new(step, color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    if let Some((x, name)) = vline {
        chart
            .draw_series(LineSeries::new(
                vec![(x, 0.0), (x, 1.0)],
                BLACK.stroke_width(1),
            ))?
            .label(name.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn cdf(xs: &[f64]) -> Vec<(f64, f64)> {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len().max(1) as f64;
    v.iter()
        .enumerate()
        .map(|(i, x)| (*x, (i + 1) as f64 / n))
        .collect()
}

/// Writes the charts that apply to `report` into `dir`; returns their file names.
pub fn write_charts(
    report: &Report,
    dir: &Path,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let with_curves: Vec<_> = report
        .broadcasts
        .iter()
        .filter(|b| !b.curve.is_empty())
        .collect();
    if !with_curves.is_empty() {
        let series: Vec<(String, Vec<(f64, f64)>)> = with_curves
            .iter()
            .take(COLORS.len())
            .map(|b| (format!("{} @ {:.1}s", b.what, b.at_s), b.curve.clone()))
            .collect();
        curves(
            &dir.join("dissemination.svg"),
            &format!("Dissemination, {} nodes", report.nodes),
            "seconds after the update",
            &series,
            Some((report.floors.push_floor_s, "push-gossip floor")),
        )?;
        out.push("dissemination.svg".into());
    }
    if !report.detections.is_empty() {
        let dead: Vec<f64> = report
            .detections
            .iter()
            .filter_map(|d| d.first_suspicion_s)
            .collect();
        let mut series = vec![("first suspicion".to_string(), cdf(&dead))];
        let all: Vec<f64> = report
            .detections
            .iter()
            .filter_map(|d| d.all_dead_s)
            .collect();
        let first: Vec<f64> = report
            .detections
            .iter()
            .filter_map(|d| d.first_dead_s)
            .collect();
        series.push(("first dead verdict".into(), cdf(&first)));
        series.push(("every node marks dead".into(), cdf(&all)));
        curves(
            &dir.join("detection.svg"),
            &format!("Failure detection, {} crashes", report.detections.len()),
            "seconds after the crash",
            &series,
            None,
        )?;
        out.push("detection.svg".into());
    }
    if let Some(t) = &report.tables {
        if t.write_convergence.count > 0 {
            let d = &t.write_convergence;
            let pts = vec![
                (d.min, 0.0),
                (d.p50, 0.5),
                (d.p90, 0.9),
                (d.p99, 0.99),
                (d.max, 1.0),
            ];
            curves(
                &dir.join("table_convergence.svg"),
                "Table writes reaching every attached node (percentiles)",
                "seconds after the write",
                &[("writes".into(), pts)],
                None,
            )?;
            out.push("table_convergence.svg".into());
        }
    }
    Ok(out)
}
