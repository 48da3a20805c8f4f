//! The one writer of the project's result tables: the caller formats the cells, a [`Table`] lays
//! them out as markdown (README-ready), CSV (the `csv` crate: quoting as RFC 4180 wants) or
//! column-aligned text for the terminal. Evaluation tables, side-by-side comparisons and the
//! initialisation study all write through it, so a fix to one format reaches every table.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Names, labels.
    Left,
    /// Numbers.
    Right,
}

/// A header and rows of already formatted cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    head: Vec<String>,
    /// One per column; `None` writes markdown's plain `---` separators and left-aligned text.
    align: Option<Vec<Align>>,
    rows: Vec<Vec<String>>,
    /// Per column, the narrowest [`Table::text`] may make it (empty: no minimum).
    min_width: Vec<usize>,
}

impl Table {
    /// A table with these column names and no rows.
    pub fn new<S: Into<String>>(head: impl IntoIterator<Item = S>) -> Table {
        Table {
            head: head.into_iter().map(Into::into).collect(),
            align: None,
            rows: Vec::new(),
            min_width: Vec::new(),
        }
    }

    /// The same table with explicit column alignments (markdown writes `:---` and `---:`);
    /// missing entries are left-aligned.
    pub fn aligned(mut self, align: &[Align]) -> Table {
        let mut a = align.to_vec();
        a.resize(self.head.len(), Align::Left);
        self.align = Some(a);
        self
    }

    /// The same table with its first `labels` columns left-aligned (names) and the rest
    /// right-aligned (numbers): the shape of every result table here.
    pub fn labels_then_numbers(self, labels: usize) -> Table {
        let mut a = vec![Align::Left; labels.min(self.head.len())];
        a.resize(self.head.len(), Align::Right);
        self.aligned(&a)
    }

    /// The same table with columns at least this many characters wide in [`Table::text`], so
    /// that tables of several runs, printed one after another, line up; missing entries are 0.
    pub fn min_widths(mut self, widths: &[usize]) -> Table {
        let mut w = widths.to_vec();
        w.resize(self.head.len(), 0);
        self.min_width = w;
        self
    }

    /// Appends a row (padded with empty cells, or cut, to the header's width).
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        let mut r: Vec<String> = row.into_iter().map(Into::into).collect();
        r.resize(self.head.len(), String::new());
        self.rows.push(r);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn align_of(&self, col: usize) -> Align {
        self.align.as_ref().map_or(Align::Left, |a| a[col])
    }

    /// Markdown: `| a | b |`, a separator line, one line per row.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut s = line(&self.head);
        s.push('|');
        for col in 0..self.head.len() {
            s.push_str(match (&self.align, self.align_of(col)) {
                (None, _) => "---|",
                (Some(_), Align::Left) => ":---|",
                (Some(_), Align::Right) => "---:|",
            });
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }

    /// CSV with a header line; fields quoted only where they must be.
    pub fn csv(&self) -> String {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        for r in std::iter::once(&self.head).chain(&self.rows) {
            w.write_record(r)
                .expect("writing CSV into memory cannot fail");
        }
        let bytes = w
            .into_inner()
            .expect("flushing CSV into memory cannot fail");
        String::from_utf8(bytes).expect("the cells are strings")
    }

    /// Plain text: each column as wide as its widest cell (in characters) or its minimum width,
    /// two spaces apart.
    pub fn text(&self) -> String {
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = (0..self.head.len())
            .map(|c| {
                std::iter::once(&self.head)
                    .chain(&self.rows)
                    .map(|r| width(&r[c]))
                    .chain(self.min_width.get(c).copied())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut s = String::new();
        for r in std::iter::once(&self.head).chain(&self.rows) {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    let pad = " ".repeat(widths[c] - width(cell));
                    match self.align_of(c) {
                        Align::Left => format!("{cell}{pad}"),
                        Align::Right => format!("{pad}{cell}"),
                    }
                })
                .collect();
            s.push_str(cells.join("  ").trim_end());
            s.push('\n');
        }
        s
    }
}

/// The records of a CSV text with a header line: the header's fields, then each row's (every row
/// as wide as the header, or an error naming the line).
pub fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let head: Vec<String> = r
        .headers()
        .map_err(|e| format!("CSV header: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    let rows = r
        .records()
        .map(|rec| {
            rec.map(|rec| rec.iter().map(str::to_string).collect())
                .map_err(|e| format!("CSV: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok((head, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(["net", "top-1 %"]).aligned(&[Align::Left, Align::Right]);
        t.push(["a", "5.0"]);
        t.push(["b, the long one", "55.25"]);
        t
    }

    #[test]
    fn markdown_csv_and_text_lay_out_the_same_cells() {
        let t = table();
        assert_eq!(
            t.markdown(),
            "| net | top-1 % |\n|:---|---:|\n| a | 5.0 |\n| b, the long one | 55.25 |\n"
        );
        assert_eq!(
            Table::new(["x"]).markdown(),
            "| x |\n|---|\n",
            "no alignment: plain separators"
        );
        assert_eq!(t.csv(), "net,top-1 %\na,5.0\n\"b, the long one\",55.25\n");
        assert_eq!(
            t.text(),
            "net              top-1 %\na                    5.0\nb, the long one    55.25\n"
        );
        let (head, rows) = parse_csv(&t.csv()).unwrap();
        assert_eq!(head, ["net", "top-1 %"]);
        assert_eq!(rows[1], ["b, the long one", "55.25"]);
    }

    #[test]
    fn minimum_widths_line_tables_of_several_runs_up() {
        let mut t = Table::new(["net", "top-1 %"])
            .labels_then_numbers(1)
            .min_widths(&[6, 9]);
        t.push(["t0", "40.00"]);
        assert_eq!(t.text(), "net       top-1 %\nt0          40.00\n");
        // A cell wider than the minimum still widens its column.
        t.push(["a longer name", "1.00"]);
        assert!(
            t.text().starts_with("net              top-1 %\n"),
            "{}",
            t.text()
        );
    }

    #[test]
    fn short_rows_are_padded_and_ragged_csv_is_refused() {
        let mut t = Table::new(["a", "b"]);
        t.push(["1"]);
        assert_eq!(t.csv(), "a,b\n1,\n");
        assert_eq!(t.len(), 1);
        assert!(parse_csv("a,b\n1,2,3\n").is_err());
    }
}
