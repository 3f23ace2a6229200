//! A multi-panel line chart of cost curves (how a cost such as server CPU µs per check grows
//! with work: sessions in rotation, rules, cookie chunks), drawn from a TSV file into a PNG.
//!
//! # Input
//!
//! UTF-8 text, one record a line, fields separated by single tabs (surrounding spaces are
//! trimmed):
//!
//! - `#panel\t<id>\t<title>\t<x label>\t<y label>\t<log|linear>` declares a panel (exactly 6
//!   fields). Panels are drawn in the order of these lines; a `#panel` line may come anywhere in
//!   the file, before or after its data. `log` gives the panel a log10 x axis (every x must then
//!   be positive), `linear` a linear one.
//! - `<panel id>\t<series name>\t<x>\t<y>` is a data point (exactly 4 fields; x and y are finite
//!   decimal numbers). Series are drawn in the order of their first point, their points sorted
//!   by x.
//! - Blank lines and every other line starting with `#` are ignored.
//!
//! Every error names its 1-based line number and what is wrong with the line (but "no panels",
//! which has no line).
//!
//! # Font
//!
//! [`draw`] registers the font it is given as plotters' `"sans-serif"` family itself, on every
//! call. plotters keeps fonts in a process-wide table and a registration replaces the previous
//! one, so calling [`draw`] several times in one process, or after the bar chart registered its
//! font, is fine; the caller registers nothing.

use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DynElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The image's width in pixels.
const WIDTH: u32 = 1400;
/// The height in pixels of a row of panels.
const ROW_HEIGHT: u32 = 450;
/// The height in pixels of the chart's title strip.
const TITLE_HEIGHT: u32 = 56;

/// Series colours, by order of first appearance of a series name in the whole chart (blue,
/// orange, then the bar chart's red for the third).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Marker shapes, cycled with the colours (so series stay apart in grey scale too).
const MARKERS: usize = 4;

/// A panel as declared by its `#panel` line, with its data.
#[derive(Debug, Clone, PartialEq)]
struct Panel {
    id: String,
    title: String,
    x_label: String,
    y_label: String,
    log_x: bool,
    series: Vec<Series>,
}

/// A named line of a panel.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    /// Sorted by x.
    points: Vec<(f64, f64)>,
}

/// Draws the cost curves of `input` (the TSV text described in the [module
/// documentation](self)) as a PNG at `output`: one panel per `#panel` line, in a grid of one
/// column for one panel and two otherwise, 1400 pixels wide and about 450 pixels high per row,
/// under `title`.
///
/// `font` is the content of a TrueType/OpenType file; `draw` registers it as plotters'
/// `"sans-serif"` itself (again on every call, which is harmless).
///
/// Errors (bad input, with its line number; a font that does not parse; a PNG that cannot be
/// written) are returned as text, never as a panic.
pub fn draw(input: &str, output: &Path, font: &'static [u8], title: &str) -> Result<(), String> {
    let panels = parse(input)?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "font: not a TrueType/OpenType font".to_owned())?;

    // Colours by series name, the same in every panel.
    let mut names: Vec<&str> = Vec::new();
    for s in panels.iter().flat_map(|p| &p.series) {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    let style_of = |name: &str| names.iter().position(|n| *n == name).unwrap_or(0);

    let columns = if panels.len() == 1 { 1 } else { 2 };
    let rows = panels.len().div_ceil(columns);
    let height = u32::try_from(rows)
        .ok()
        .and_then(|r| r.checked_mul(ROW_HEIGHT))
        .and_then(|h| h.checked_add(TITLE_HEIGHT))
        .ok_or_else(|| format!("{} panels are too many", panels.len()))?;
    let root = BitMapBackend::new(output, (WIDTH, height)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", output.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (title_area, grid) = root.split_vertically(TITLE_HEIGHT);
    title_area
        .draw_text(
            title,
            &("sans-serif", 26)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
            (WIDTH as i32 / 2, TITLE_HEIGHT as i32 / 2),
        )
        .map_err(|e| fail(&e))?;
    let cells = grid.split_evenly((rows, columns));
    for (panel, cell) in panels.iter().zip(cells.iter()) {
        draw_panel(panel, cell, &style_of).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawError<'a> = DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

/// Width in pixels of the y axis' labels and description.
const Y_LABEL_AREA: u32 = 82;
/// Height in pixels of a legend row.
const LEGEND_ROW: u32 = 26;

/// One panel: title, legend, axes, lines and markers.
fn draw_panel<'a>(
    panel: &Panel,
    cell: &Area<'a>,
    style_of: &dyn Fn(&str) -> usize,
) -> Result<(), DrawError<'a>> {
    let cell = cell.margin(8, 12, 12, 24);
    let area = cell.titled(&panel.title, ("sans-serif", 20))?;

    // The legend above the plot, from the plot's left edge, wrapped into as many rows as needed.
    let legend_font = ("sans-serif", 15).into_font().color(&BLACK);
    let (width, _) = area.dim_in_pixel();
    let mut entries = Vec::new();
    let (mut x, mut row) = (Y_LABEL_AREA as i32, 0);
    for s in &panel.series {
        let (text_w, _) = area.estimate_text_size(&s.name, &legend_font)?;
        let entry_w = 34 + text_w as i32;
        if x + entry_w > width as i32 && x > Y_LABEL_AREA as i32 {
            x = Y_LABEL_AREA as i32;
            row += 1;
        }
        entries.push((s, x, row));
        x += entry_w + 26;
    }
    let legend_h = (row as u32 + 1) * LEGEND_ROW + 4;
    let (legend, plot) = area.split_vertically(legend_h);
    for (s, x, row) in entries {
        let y = row * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        let style = style_of(&s.name);
        let color = PALETTE[style % PALETTE.len()];
        legend.draw(&PathElement::new(
            vec![(x, y), (x + 26, y)],
            color.stroke_width(2),
        ))?;
        legend.draw(&marker(style, (x + 13, y)))?;
        legend.draw_text(
            &s.name,
            &legend_font.pos(Pos::new(HPos::Left, VPos::Center)),
            (x + 34, y),
        )?;
    }

    let (x_axis, x_label) = x_axis(panel);
    let y_max = panel
        .series
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let y_min = panel
        .series
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| p.1)
        .fold(0.0, f64::min);
    let y_top = if y_max > 0.0 { y_max * 1.12 } else { 1.0 };
    let y_bottom = y_min * 1.12;
    let mut chart = ChartBuilder::on(&plot)
        .margin_top(6)
        .x_label_area_size(54)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x_axis, y_bottom..y_top)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .axis_desc_style(("sans-serif", 16))
        .x_label_style(("sans-serif", 15))
        .y_label_style(("sans-serif", 15))
        .x_label_formatter(&|v| x_label(*v))
        .y_label_formatter(&|v| decimal(*v))
        .y_labels(8)
        .y_max_light_lines(1)
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .bold_line_style(RGBColor(0xcc, 0xcc, 0xcc))
        .draw()?;

    let to_axis = |x: f64| if panel.log_x { x.log10() } else { x };
    for s in &panel.series {
        let color = PALETTE[style_of(&s.name) % PALETTE.len()];
        // A series of one point is just its marker.
        chart.draw_series(std::iter::once(PathElement::new(
            s.points
                .iter()
                .map(|&(x, y)| (to_axis(x), y))
                .collect::<Vec<_>>(),
            color.stroke_width(2),
        )))?;
    }
    for s in &panel.series {
        let style = style_of(&s.name);
        for &(x, y) in &s.points {
            chart
                .plotting_area()
                .draw(&marker(style, (to_axis(x), y)))?;
        }
    }
    if panel.series.is_empty() {
        plot.draw_text(
            "no data",
            &("sans-serif", 18)
                .into_font()
                .color(&RGBColor(0x7f, 0x7f, 0x7f))
                .pos(Pos::new(HPos::Center, VPos::Center)),
            {
                let (w, h) = plot.dim_in_pixel();
                (w as i32 / 2, h as i32 / 2)
            },
        )?;
    }
    Ok(())
}

/// The marker of series style `style` (its colour and shape) at `at`.
fn marker<'b, DB: DrawingBackend + 'b, C: Clone + 'b>(
    style: usize,
    at: C,
) -> DynElement<'b, DB, C> {
    let color = PALETTE[style % PALETTE.len()];
    let filled = color.filled();
    let at = EmptyElement::at(at);
    match style % MARKERS {
        0 => (at + Circle::new((0, 0), 5, filled)).into_dyn(),
        1 => (at + TriangleMarker::new((0, 0), 7, filled)).into_dyn(),
        2 => (at + Rectangle::new([(-5, -5), (5, 5)], filled)).into_dyn(),
        _ => (at + Polygon::new(vec![(0, -7), (6, 0), (0, 7), (-6, 0)], filled)).into_dyn(),
    }
}

/// An x axis with the ticks (bold mesh lines) and minor mesh lines it is given.
struct XAxis {
    range: RangedCoordf64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl XAxis {
    fn new(range: std::ops::Range<f64>, ticks: Vec<f64>, minor: Vec<f64>) -> Self {
        XAxis {
            range: range.into(),
            ticks,
            minor,
        }
    }
}

impl Ranged for XAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.range()
    }
}

/// The x axis of `panel`: its range (in log10 units for a log axis) with ticks at powers of
/// ten (log), at integers (linear, integer x values) or at round numbers, and the formatter of
/// the tick labels.
fn x_axis(panel: &Panel) -> (XAxis, fn(f64) -> String) {
    let xs = || panel.series.iter().flat_map(|s| &s.points).map(|p| p.0);
    let (lo, hi) = xs().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    if lo > hi {
        // No data: an empty unit axis.
        let ticks = vec![0.0, 1.0];
        return (XAxis::new(-0.05..1.05, ticks, Vec::new()), |_| {
            String::new()
        });
    }
    if panel.log_x {
        let (mut lo, mut hi) = (lo.log10().floor(), hi.log10().ceil());
        if lo == hi {
            lo -= 1.0;
            hi += 1.0;
        }
        let step = ((hi - lo) / 10.0).ceil().max(1.0);
        let pad = ((hi - lo) * 0.04).max(0.1);
        let ticks: Vec<f64> = (0..)
            .map(|i| lo + step * f64::from(i))
            .take_while(|e| *e <= hi)
            .collect();
        let minor: Vec<f64> = if step == 1.0 {
            ticks
                .iter()
                .flat_map(|e| (2..10).map(move |m| e + f64::from(m).log10()))
                .filter(|e| *e < hi)
                .collect()
        } else {
            Vec::new()
        };
        return (XAxis::new(lo - pad..hi + pad, ticks, minor), power_of_ten);
    }
    let integers = xs().all(|x| x.fract() == 0.0);
    let (mut lo, mut hi) = (lo, hi);
    if lo == hi {
        lo -= 1.0;
        hi += 1.0;
    }
    let span = hi - lo;
    let step = if integers {
        (span / 12.0).ceil().max(1.0)
    } else {
        nice_step(span / 8.0)
    };
    let first = (lo / step).ceil() * step;
    let ticks: Vec<f64> = (0..)
        .map(|i| first + step * f64::from(i))
        .take_while(|x| *x <= hi + step * 1e-9)
        .collect();
    let pad = span * 0.06;
    (XAxis::new(lo - pad..hi + pad, ticks, Vec::new()), decimal)
}

/// The round step (1, 2 or 5 times a power of ten) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The label of tick `10^exponent`: `1`, `10`, `100`, `1k`, `10k`, `100k`, `1M`..., `0.1`...
fn power_of_ten(exponent: f64) -> String {
    let e = exponent.round() as i32;
    match e {
        ..0 => format!("0.{}1", "0".repeat((-e - 1) as usize)),
        0..3 => format!("1{}", "0".repeat(e as usize)),
        3..6 => format!("1{}k", "0".repeat(e as usize - 3)),
        6..9 => format!("1{}M", "0".repeat(e as usize - 6)),
        9..12 => format!("1{}G", "0".repeat(e as usize - 9)),
        _ => format!("1e{e}"),
    }
}

/// `v` with at most 6 decimals and no trailing zeros (`12`, `0.5`, `2.25`, `0.0005`).
fn decimal(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// The panels of `input`, with their series and points sorted by x.
fn parse(input: &str) -> Result<Vec<Panel>, String> {
    let mut panels: Vec<Panel> = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        if line != "#panel" && !line.starts_with("#panel\t") {
            continue;
        }
        let f: Vec<&str> = line.split('\t').map(str::trim).collect();
        if f.len() != 6 {
            return Err(format!(
                "line {n}: a #panel line has 6 tab-separated fields \
                 (#panel, id, title, x label, y label, log|linear), found {}",
                f.len()
            ));
        }
        let id = f[1];
        if id.is_empty() {
            return Err(format!("line {n}: the panel id is empty"));
        }
        if panels.iter().any(|p| p.id == id) {
            return Err(format!("line {n}: panel {id:?} is declared twice"));
        }
        let log_x = match f[5] {
            "log" => true,
            "linear" => false,
            other => {
                return Err(format!(
                    "line {n}: the x axis scale is {other:?}, neither log nor linear"
                ));
            }
        };
        panels.push(Panel {
            id: id.to_owned(),
            title: f[2].to_owned(),
            x_label: f[3].to_owned(),
            y_label: f[4].to_owned(),
            log_x,
            series: Vec::new(),
        });
    }
    if panels.is_empty() {
        return Err("no panels: the input has no #panel line".into());
    }
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').map(str::trim).collect();
        if f.len() != 4 {
            return Err(format!(
                "line {n}: a data line has 4 tab-separated fields (panel id, series, x, y), found {}",
                f.len()
            ));
        }
        let panel = panels.iter_mut().find(|p| p.id == f[0]).ok_or_else(|| {
            format!(
                "line {n}: unknown panel {:?} (no #panel line declares it)",
                f[0]
            )
        })?;
        if f[1].is_empty() {
            return Err(format!("line {n}: the series name is empty"));
        }
        let x = number(f[2], "x", n)?;
        let y = number(f[3], "y", n)?;
        if panel.log_x && x <= 0.0 {
            return Err(format!(
                "line {n}: x {x} is not positive, and panel {:?} has a log x axis",
                panel.id
            ));
        }
        match panel.series.iter_mut().find(|s| s.name == f[1]) {
            Some(s) => s.points.push((x, y)),
            None => panel.series.push(Series {
                name: f[1].to_owned(),
                points: vec![(x, y)],
            }),
        }
    }
    for s in panels.iter_mut().flat_map(|p| &mut p.series) {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(panels)
}

/// Field `text` of line `line` as a finite number.
fn number(text: &str, what: &str, line: usize) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() < 1e100 => Ok(v),
        Ok(_) => Err(format!(
            "line {line}: {what} {text:?} is not a finite number below 1e100"
        )),
        Err(_) => Err(format!("line {line}: {what} {text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example panels of `cargo xtask bench`: sessions, rules and cookie chunks.
    const EXAMPLE: &str = "\
# cost curves, server CPU per check
#panel\tsessions\tSessions in rotation\tdistinct sessions in rotation\tserver CPU µs per check\tlog
#panel\trules\tAuthorization rules\trules\tserver CPU µs per check\tlog
#panel\tchunks\tCookie chunks\tcookie chunks\tserver CPU µs per check\tlinear

sessions\tours, warm\t1\t11.8
sessions\tours, warm\t100000\t14.9
sessions\tours, warm\t1000\t12.6
sessions\tours, cold (first sight)\t1\t58.2
sessions\tours, cold (first sight)\t1000\t61.0
sessions\tours, cold (first sight)\t100000\t69.4
sessions\toauth2-proxy\t1\t104.0
sessions\toauth2-proxy\t1000\t109.5
sessions\toauth2-proxy\t100000\t121.7
rules\tauthorization rules\t1\t12.1
rules\tauthorization rules\t10\t12.9
rules\tauthorization rules\t100\t19.8
rules\tauthorization rules\t1000\t83.5
rules\tskip routes\t1\t11.9
rules\tskip routes\t10\t12.1
rules\tskip routes\t100\t13.2
rules\tskip routes\t1000\t18.4
chunks\tours, warm\t1\t11.8
chunks\tours, warm\t2\t13.9
chunks\tours, warm\t3\t15.8
chunks\tours, warm\t4\t17.7
chunks\tours, cold\t1\t58.2
chunks\tours, cold\t2\t79.6
chunks\tours, cold\t3\t101.3
chunks\tours, cold\t4\t122.9
";

    #[test]
    fn parses_panels_series_and_sorted_points() {
        let panels = parse(EXAMPLE).unwrap();
        let ids: Vec<&str> = panels.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["sessions", "rules", "chunks"]);
        let sessions = &panels[0];
        assert_eq!(sessions.title, "Sessions in rotation");
        assert_eq!(sessions.x_label, "distinct sessions in rotation");
        assert_eq!(sessions.y_label, "server CPU µs per check");
        assert!(sessions.log_x);
        assert!(!panels[2].log_x);
        let names: Vec<&str> = sessions.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["ours, warm", "ours, cold (first sight)", "oauth2-proxy"]
        );
        // Sorted by x, though the file has 100000 before 1000.
        assert_eq!(
            sessions.series[0].points,
            [(1.0, 11.8), (1000.0, 12.6), (100000.0, 14.9)]
        );
        assert_eq!(panels[2].series[1].points.len(), 4);
    }

    #[test]
    fn panel_lines_may_follow_their_data_and_comments_and_blanks_are_ignored() {
        let panels = parse("\n#a comment\na\ts\t1\t2\n   \n#panel\ta\tA\tx\ty\tlinear\n").unwrap();
        assert_eq!(panels[0].series[0].points, [(1.0, 2.0)]);
        // A panel without data is drawn empty, not an error.
        let panels = parse("#panel\ta\tA\tx\ty\tlog\n").unwrap();
        assert!(panels[0].series.is_empty());
    }

    /// The error of `input`, which must start with `line <line>:` and contain `what`.
    fn error(input: &str, line: usize, what: &str) {
        let e = parse(input).unwrap_err();
        assert!(e.starts_with(&format!("line {line}: ")), "{e}");
        assert!(e.contains(what), "{e:?} lacks {what:?}");
    }

    const HEAD: &str = "#panel\tp\tP\tx\ty\tlog\n";

    #[test]
    fn bad_input_is_an_error_naming_the_line() {
        assert_eq!(
            parse("").unwrap_err(),
            "no panels: the input has no #panel line"
        );
        assert_eq!(
            parse("# only a comment\n\np\ts\t1\t2\n").unwrap_err(),
            "no panels: the input has no #panel line"
        );
        // Panel declarations.
        error("#panel\tp\tP\tx\ty\n", 1, "6 tab-separated fields");
        error("#panel\n", 1, "found 1");
        error("\n#panel\tp\tP\tx\ty\tlog\textra\n", 2, "found 7");
        error("#panel\t\tP\tx\ty\tlog\n", 1, "panel id is empty");
        error(
            "#panel\tp\tP\tx\ty\tlg\n",
            1,
            "\"lg\", neither log nor linear",
        );
        error(&format!("{HEAD}{HEAD}"), 2, "\"p\" is declared twice");
        // Data lines.
        error(
            &format!("{HEAD}p\ts\t1\t2\nq\ts\t1\t2\n"),
            3,
            "unknown panel \"q\"",
        );
        error(&format!("{HEAD}p\ts\t1\n"), 2, "4 tab-separated fields");
        error(&format!("{HEAD}\np s 1 2\n"), 3, "found 1");
        error(&format!("{HEAD}p\ts\t1\t2\t3\n"), 2, "found 5");
        error(&format!("{HEAD}p\t\t1\t2\n"), 2, "series name is empty");
        error(
            &format!("{HEAD}p\ts\tten\t2\n"),
            2,
            "x \"ten\" is not a number",
        );
        error(&format!("{HEAD}p\ts\t1\t\n"), 2, "y \"\" is not a number");
        error(
            &format!("{HEAD}p\ts\t1\t2µs\n"),
            2,
            "y \"2µs\" is not a number",
        );
        error(&format!("{HEAD}p\ts\t1\tNaN\n"), 2, "not a finite number");
        error(&format!("{HEAD}p\ts\tinf\t1\n"), 2, "not a finite number");
        error(&format!("{HEAD}p\ts\t0\t1\n"), 2, "not positive");
        error(&format!("{HEAD}p\ts\t-1\t1\n"), 2, "log x axis");
    }

    #[test]
    fn tick_labels() {
        let labels: Vec<String> = (-2..=7).map(|e| power_of_ten(f64::from(e))).collect();
        assert_eq!(
            labels,
            [
                "0.01", "0.1", "1", "10", "100", "1k", "10k", "100k", "1M", "10M"
            ]
        );
        assert_eq!(decimal(12.0), "12");
        assert_eq!(decimal(2.5), "2.5");
        assert_eq!(decimal(0.125), "0.125");
        assert_eq!(decimal(0.1 + 0.2), "0.3");
        assert_eq!(decimal(0.0005), "0.0005");
        assert_eq!(decimal(-0.0000001), "0");
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(12.0), 20.0);
    }

    /// The font `cargo xtask bench` uses (`find_font` in `xtask/src/bench.rs`).
    fn font() -> &'static [u8] {
        let path = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .expect(
            "no DejaVuSans.ttf: install DejaVu Sans \
             (Debian/Ubuntu: apt-get install fonts-dejavu-core)",
        );
        Box::leak(std::fs::read(path).unwrap().into_boxed_slice())
    }

    /// A path in the temporary directory no other test run uses.
    fn temp_png(name: &str) -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!(
            "curves-chart-{name}-{}-{nanos}.png",
            std::process::id()
        ))
    }

    #[test]
    fn draws_a_png() {
        let font = font();
        for (name, input, panels) in [
            ("three", EXAMPLE, 3_u32),
            // One panel (one column) with a single x value per series; panels without data.
            (
                "one",
                "#panel\tp\tP\tx\ty\tlog\np\ts\t1000\t5\np\tt\t1000\t7\n",
                1,
            ),
            (
                "empty",
                "#panel\tp\tP\tx\ty\tlinear\n#panel\tq\tQ\tx\ty\tlog\n",
                2,
            ),
        ] {
            let path = temp_png(name);
            // Twice: registering the font again is harmless.
            for _ in 0..2 {
                draw(input, &path, font, "cost curves").unwrap();
            }
            let png = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
            // IHDR: width and height, big-endian, at bytes 16..24.
            let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
            let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
            let rows = if panels == 1 { 1 } else { panels.div_ceil(2) };
            assert_eq!((width, height), (WIDTH, TITLE_HEIGHT + rows * ROW_HEIGHT));
            assert!(png.len() > 10_000, "{name}: {} bytes", png.len());
            assert!(png.len() < 5_000_000, "{name}: {} bytes", png.len());
        }
    }

    #[test]
    fn draw_reports_bad_input_and_unwritable_output() {
        let path = temp_png("bad");
        let e = draw("#panel\tp\n", &path, font(), "t").unwrap_err();
        assert!(e.starts_with("line 1: "), "{e}");
        assert!(!path.exists());
        let e = draw(EXAMPLE, &path, b"not a font", "t").unwrap_err();
        assert!(e.contains("not a TrueType/OpenType font"), "{e}");
        let missing = std::env::temp_dir().join("curves-chart-no-such-dir/x/c.png");
        let e = draw(EXAMPLE, &missing, font(), "t").unwrap_err();
        assert!(e.contains("curves-chart-no-such-dir"), "{e}");
    }
}
