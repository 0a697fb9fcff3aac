//! The one way plugins print data: a kubectl-style table, JSON or YAML, on stdout.
//!
//! Colour is used only when stdout is a terminal and `NO_COLOR` is unset or empty. Diagnostics
//! never come through here; they go to stderr.

use std::io::{IsTerminal, Write};
use std::str::FromStr;

use comfy_table::{Cell as TableCell, CellAlignment, Color, ColumnConstraint, Table as ComfyTable, presets};
use lexopt::{Arg, Parser};

use serde::Serialize;

use crate::args::{Flag, value};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

const FORMATS: &str = "table, json, yaml";

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "table" | "wide" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "yaml" => Ok(Format::Yaml),
            other => Err(Error::usage(format!("unknown output format {other:?}"), format!("valid formats: {FORMATS}"))),
        }
    }
}

/// `-o/--output` and `--no-headers`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputArgs {
    pub format: Format,
    pub no_headers: bool,
}

pub const OUTPUT_FLAGS_HELP: &str = "\
Output flags:
  -o, --output FORMAT          table (default), json or yaml
      --no-headers             Print tables without the header line";

impl OutputArgs {
    pub fn consume(&mut self, arg: &Flag, parser: &mut Parser) -> Result<bool> {
        match arg.as_arg() {
            Arg::Short('o') | Arg::Long("output") => self.format = value(parser, "--output")?.parse()?,
            Arg::Long("no-headers") => self.no_headers = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// How a table cell should stand out when colour is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tone {
    #[default]
    Plain,
    Good,
    Warn,
    Bad,
    Dim,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn new(text: impl Into<String>, tone: Tone) -> Self {
        Cell { text: text.into(), tone }
    }
}

impl<T: Into<String>> From<T> for Cell {
    fn from(text: T) -> Self {
        Cell { text: text.into(), tone: Tone::Plain }
    }
}

/// Rows for table output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.headers.len(), "row width");
        self.rows.push(row);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renderer {
    pub format: Format,
    pub no_headers: bool,
    pub color: bool,
}

/// Colour on stdout: only a terminal, and never with `NO_COLOR` set to something.
pub fn stdout_wants_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Paints `text` in `tone` when `color` is on (for human text that is not a table).
pub fn paint(text: &str, tone: Tone, color: bool) -> String {
    use owo_colors::OwoColorize;
    if !color {
        return text.to_string();
    }
    match tone {
        Tone::Plain => text.to_string(),
        Tone::Good => text.green().to_string(),
        Tone::Warn => text.yellow().to_string(),
        Tone::Bad => text.red().bold().to_string(),
        Tone::Dim => text.dimmed().to_string(),
    }
}

impl Renderer {
    pub fn new(args: OutputArgs) -> Self {
        Renderer { format: args.format, no_headers: args.no_headers, color: stdout_wants_color() }
    }

    /// Writes `data` as JSON or YAML, or the table `table` builds from it.
    pub fn print<T: Serialize>(&self, data: &T, table: impl FnOnce() -> Table) -> Result<()> {
        let mut out = std::io::stdout().lock();
        self.write(&mut out, data, table)?;
        out.flush()?;
        Ok(())
    }

    pub fn write<T: Serialize>(&self, out: &mut dyn Write, data: &T, table: impl FnOnce() -> Table) -> Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, data).map_err(std::io::Error::other)?;
                writeln!(out)?;
            }
            Format::Yaml => {
                let text = serde_saphyr::to_string(data).map_err(std::io::Error::other)?;
                out.write_all(text.as_bytes())?;
            }
            Format::Table => out.write_all(self.table_text(&table()).as_bytes())?,
        }
        Ok(())
    }

    /// Writes `data` as JSON or YAML, or, for people, the text `human` writes (given whether colour
    /// is on) when the data is not a table.
    pub fn print_human<T: Serialize>(&self, data: &T, human: impl FnOnce(bool) -> String) -> Result<()> {
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Table => out.write_all(human(self.color).as_bytes())?,
            _ => self.write(&mut out, data, Table::default)?,
        }
        out.flush()?;
        Ok(())
    }

    /// Kubernetes objects: multi-document YAML, or a `List` with `-o json`.
    pub fn print_manifests(&self, objects: &[serde_json::Value]) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(manifests_text(self.format, objects)?.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    /// kubectl's look: no borders, upper-case headers, three spaces between columns.
    pub fn table_text(&self, table: &Table) -> String {
        let mut t = ComfyTable::new();
        t.load_style(presets::NOTHING);
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        if !self.no_headers {
            t.set_header(table.headers.iter().map(|h| TableCell::new(h).set_alignment(CellAlignment::Left)));
        }
        for row in &table.rows {
            t.add_row(row.iter().map(|c| self.cell(c)));
        }
        let last = table.headers.len().saturating_sub(1);
        for (i, column) in t.column_iter_mut().enumerate() {
            column.set_padding((0, if i == last { 0 } else { 3 }));
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
        let mut text = String::new();
        for line in t.lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    fn cell(&self, cell: &Cell) -> TableCell {
        let out = TableCell::new(&cell.text);
        if !self.color {
            return out;
        }
        match cell.tone {
            Tone::Plain => out,
            Tone::Good => out.fg(Color::Green),
            Tone::Warn => out.fg(Color::Yellow),
            Tone::Bad => out.fg(Color::Red),
            Tone::Dim => out.fg(Color::DarkGrey),
        }
    }
}

fn manifests_text(format: Format, objects: &[serde_json::Value]) -> Result<String> {
    if format == Format::Json {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
        return Ok(serde_json::to_string_pretty(&list).map_err(std::io::Error::other)? + "\n");
    }
    let mut text = String::new();
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&serde_saphyr::to_string(object).map_err(std::io::Error::other)?);
    }
    Ok(text)
}

/// Prints text to stdout. A closed pipe (`kubectl revtag --help | head -1`) ends the output
/// quietly instead of panicking as `print!` does.
pub fn print_text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["TAG", "REVISION", "NAMESPACES"]);
        t.push(vec!["default".into(), Cell::new("1-30-3", Tone::Good), "a,b".into()]);
        t.push(vec!["prod-canary".into(), Cell::new("1-31-1", Tone::Bad), "".into()]);
        t
    }

    fn plain(format: Format) -> Renderer {
        Renderer { format, no_headers: false, color: false }
    }

    #[test]
    fn table_is_kubectl_style() {
        let text = plain(Format::Table).table_text(&sample());
        assert_eq!(
            text,
            "TAG           REVISION   NAMESPACES\n\
             default       1-30-3     a,b\n\
             prod-canary   1-31-1\n"
        );
    }

    #[test]
    fn no_headers_drops_the_header_line() {
        let r = Renderer { no_headers: true, ..plain(Format::Table) };
        assert_eq!(r.table_text(&sample()).lines().next(), Some("default       1-30-3   a,b"));
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(!plain(Format::Table).table_text(&sample()).contains('\u{1b}'));
        let coloured = Renderer { color: true, ..plain(Format::Table) }.table_text(&sample());
        assert!(coloured.contains('\u{1b}'), "{coloured:?}");
    }

    #[test]
    fn json_and_yaml_serialise_the_data_not_the_table() {
        #[derive(Serialize)]
        struct Row {
            tag: &'static str,
        }
        let data = vec![Row { tag: "default" }];
        let mut out = Vec::new();
        plain(Format::Json).write(&mut out, &data, || unreachable!()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[\n  {\n    \"tag\": \"default\"\n  }\n]\n");
        let mut out = Vec::new();
        plain(Format::Yaml).write(&mut out, &data, || unreachable!()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "- tag: default\n");
    }

    #[test]
    fn manifests_are_multi_document_yaml_or_a_json_list() {
        let objects = [serde_json::json!({"kind": "A", "metadata": {"name": "a"}}), serde_json::json!({"kind": "B"})];
        assert_eq!(manifests_text(Format::Yaml, &objects).unwrap(), "kind: A\nmetadata:\n  name: a\n---\nkind: B\n");
        assert_eq!(manifests_text(Format::Table, &objects).unwrap(), manifests_text(Format::Yaml, &objects).unwrap());
        let list: serde_json::Value = serde_json::from_str(&manifests_text(Format::Json, &objects).unwrap()).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][1]["kind"], "B");
    }

    #[test]
    fn unknown_format_lists_valid_ones() {
        let err = "xml".parse::<Format>().unwrap_err();
        assert_eq!(err.to_string(), "unknown output format \"xml\"");
        assert_eq!(err.hint().as_deref(), Some("valid formats: table, json, yaml"));
        assert_eq!("wide".parse::<Format>().unwrap(), Format::Table);
    }
}
