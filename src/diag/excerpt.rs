//! The part of a source file one diagnostic shows, cut so that rendering costs the same
//! whatever the file: only the lines around its labels (with one line of context), and on
//! a long line only a window of display columns around the label, with `…` where the line
//! goes on. miette renders the excerpt as if it were the file: line numbers and the column
//! in the header are the file's, and labels keep their alignment because miette measures
//! the (short) excerpt lines itself, tabs and wide characters included.
//!
//! Without this, miette reads every label by scanning the file from its start, merges all
//! labels of a diagnostic into one context (every line between them is printed), prints
//! whole lines, and panics on an underline indented by 65 535 columns or more.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use unicode_width::UnicodeWidthChar;

/// A line wider than this many display columns is shown as a window.
pub(super) const LONG_LINE: usize = 120;
/// Display columns shown before the label on a long line.
const WINDOW_BEFORE: usize = 40;
/// Display columns a window holds in all.
const WINDOW_WIDTH: usize = 100;
/// A label over more lines than this is shown on its first line only.
const MAX_LABEL_LINES: usize = 8;
/// Labels further apart than this many lines are shown as separate excerpts.
const MERGE_GAP: usize = 8;
/// Marks a cut line.
const ELLIPSIS: &str = "…";

/// Where each line of a text starts: built once per file, so that finding the line of an
/// offset is a binary search rather than a scan from the start.
#[derive(Debug)]
pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    /// The 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }
}

/// One label, in file offsets on the way in and in excerpt offsets on the way out.
#[derive(Clone, Debug)]
pub(super) struct Mark {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) text: String,
    pub(super) primary: bool,
}

/// One shown line: where it is in the file and in the excerpt, and which part of it is
/// shown.
#[derive(Debug)]
struct ShownLine {
    /// 0-based line number in the file.
    number: usize,
    /// File offset of the line's first byte.
    file_start: usize,
    /// File offsets of the shown part of its content.
    win_start: usize,
    win_end: usize,
    /// File offset where its content ends (before `\n` or `\r\n`).
    content_end: usize,
    /// Excerpt offsets: the line's first byte, the shown part's first byte (after `…`),
    /// the content's end (after a closing `…`), and the end of the line terminator.
    ex_start: usize,
    ex_win_start: usize,
    ex_content_end: usize,
    ex_end: usize,
}

impl ShownLine {
    /// Maps a file offset on this line into the excerpt. Offsets in the hidden part of the
    /// line land on the `…` that stands for it (`end` picks the end of the `…`).
    fn map(&self, offset: usize, end: bool) -> usize {
        let ellipsis = ELLIPSIS.len();
        if offset < self.win_start {
            self.ex_start + if end { ellipsis } else { 0 }
        } else if offset <= self.win_end {
            self.ex_win_start + (offset - self.win_start)
        } else if offset <= self.content_end {
            self.ex_content_end - if end { 0 } else { ellipsis }
        } else {
            (self.ex_content_end + (offset - self.content_end)).min(self.ex_end)
        }
    }

    /// The file column (in bytes, as miette counts) of an excerpt offset on this line.
    fn column(&self, ex_offset: usize) -> usize {
        let in_file = if ex_offset < self.ex_win_start {
            self.win_start
        } else {
            (self.win_start + (ex_offset - self.ex_win_start)).min(self.content_end)
        };
        in_file - self.file_start
    }
}

/// The lines a diagnostic shows, as one text miette can render.
#[derive(Debug)]
pub(super) struct Excerpt {
    name: String,
    text: String,
    lines: Vec<ShownLine>,
    /// Ranges of `lines` that are consecutive in the file.
    chunks: Vec<std::ops::Range<usize>>,
}

impl Excerpt {
    /// Cuts `text` around `marks` (file offsets, changed in place to excerpt offsets).
    pub(super) fn new(name: &str, text: &str, index: &LineIndex, marks: &mut [Mark]) -> Self {
        let last_line = index.starts.len() - 1;
        // The last line to show as context: not the empty "line" after a final newline.
        let last_context = if text.ends_with('\n') {
            last_line.saturating_sub(1)
        } else {
            last_line
        };
        // Clamp every label into the text, on character boundaries, and find its lines.
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(marks.len());
        for m in marks.iter_mut() {
            m.start = floor_boundary(text, m.start.min(text.len()));
            m.end = ceil_boundary(text, m.end.clamp(m.start, text.len()));
            let first = index.line_of(m.start);
            let mut last = index.line_of(if m.end > m.start { m.end - 1 } else { m.start });
            if last - first >= MAX_LABEL_LINES {
                m.end = content_end(text, index, first).max(m.start);
                last = first;
            }
            ranges.push((
                first.saturating_sub(1),
                (last + 1).min(last_context).max(last),
            ));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1 + MERGE_GAP + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }

        let mut out = Excerpt {
            name: name.to_string(),
            text: String::new(),
            lines: Vec::new(),
            chunks: Vec::new(),
        };
        for (a, b) in merged {
            let first = out.lines.len();
            for number in a..=b {
                let focus = focus_on_line(text, index, number, marks);
                out.push_line(text, index, number, focus);
            }
            out.chunks.push(first..out.lines.len());
        }
        for m in marks.iter_mut() {
            let (start, end) = (m.start, m.end);
            m.start = out.map(start, false, text, index);
            m.end = out.map(end, end > start, text, index).max(m.start);
        }
        out
    }

    fn push_line(&mut self, text: &str, index: &LineIndex, number: usize, focus: Option<usize>) {
        let file_start = index.starts[number];
        let end = index.starts.get(number + 1).copied().unwrap_or(text.len());
        let content_end = content_end(text, index, number);
        let content = &text[file_start..content_end];
        let (win_start, win_end) = window(content, focus.map(|f| f - file_start));
        let (win_start, win_end) = (file_start + win_start, file_start + win_end);
        let ex_start = self.text.len();
        if win_start > file_start {
            self.text.push_str(ELLIPSIS);
        }
        let ex_win_start = self.text.len();
        self.text.push_str(&text[win_start..win_end]);
        if win_end < content_end {
            self.text.push_str(ELLIPSIS);
        }
        let ex_content_end = self.text.len();
        self.text.push_str(&text[content_end..end]);
        self.lines.push(ShownLine {
            number,
            file_start,
            win_start,
            win_end,
            content_end,
            ex_start,
            ex_win_start,
            ex_content_end,
            ex_end: self.text.len(),
        });
    }

    /// Maps a file offset into the excerpt; an end offset is mapped on the line of the
    /// byte before it (a label may end just after a newline).
    fn map(&self, offset: usize, end: bool, text: &str, index: &LineIndex) -> usize {
        let probe = if end { offset - 1 } else { offset };
        let number = index.line_of(probe.min(text.len()));
        let i = self.lines.partition_point(|l| l.number < number);
        match self.lines.get(i) {
            Some(l) if l.number == number => l.map(offset, end),
            // Not reached: every label's lines are shown.
            _ => self.text.len(),
        }
    }

    /// The shown line holding excerpt offset `at` within `chunk` (the last one for the
    /// end of the chunk).
    fn line_at(&self, chunk: &std::ops::Range<usize>, at: usize) -> usize {
        let lines = &self.lines[chunk.clone()];
        chunk.start
            + lines
                .partition_point(|l| l.ex_end <= at)
                .min(lines.len() - 1)
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let start = span.offset();
        let end = start + span.len();
        // The chunk holding the whole span: spans across chunks are refused, so miette
        // shows separate excerpts for labels far apart.
        let chunk = self
            .chunks
            .iter()
            .find(|c| {
                let (s, e) = (self.lines[c.start].ex_start, self.lines[c.end - 1].ex_end);
                s <= start && end <= e
            })
            .ok_or(MietteError::OutOfBounds)?;
        let first = self.line_at(chunk, start);
        let last = self.line_at(chunk, if end > start { end - 1 } else { start });
        let from = first.saturating_sub(before).max(chunk.start);
        let to = (last + after).min(chunk.end - 1);
        let data_start = if before == 0 {
            start
        } else {
            self.lines[from].ex_start
        };
        let data_end = self.lines[to].ex_end.max(end);
        let column = if before == 0 {
            self.lines[first].column(start)
        } else {
            0
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[data_start..data_end],
            SourceSpan::new(data_start.into(), data_end - data_start),
            self.lines[from].number,
            column,
            // As miette counts for a whole file: lines up to the end of the data.
            self.lines[to].number + 1,
        )))
    }
}

/// Where the window on a line should start from: the primary label if it starts on this
/// line, else the first label that starts or ends here.
fn focus_on_line(text: &str, index: &LineIndex, number: usize, marks: &[Mark]) -> Option<usize> {
    let on = |o: usize| index.line_of(o.min(text.len())) == number;
    if let Some(m) = marks.iter().find(|m| m.primary && on(m.start)) {
        return Some(m.start);
    }
    marks
        .iter()
        .flat_map(|m| [m.start, m.end.saturating_sub(1).max(m.start)])
        .filter(|&o| on(o))
        .min()
        .map(|o| floor_boundary(text, o))
}

/// Byte range of `line` (its content, no terminator) to show: the whole line when it is
/// short, else about [`WINDOW_WIDTH`] columns starting [`WINDOW_BEFORE`] columns before
/// `focus` (a byte offset into the line).
fn window(line: &str, focus: Option<usize>) -> (usize, usize) {
    let widths = || line.char_indices().map(|(i, c)| (i, c, width(c)));
    if widths().map(|(_, _, w)| w).sum::<usize>() <= LONG_LINE {
        return (0, line.len());
    }
    let focus = focus.unwrap_or(0).min(line.len());
    let mut start = focus;
    let mut cols = 0;
    for (i, c, w) in line[..focus]
        .char_indices()
        .rev()
        .map(|(i, c)| (i, c, width(c)))
    {
        if cols + w > WINDOW_BEFORE {
            break;
        }
        let _ = c;
        cols += w;
        start = i;
    }
    let mut end = start;
    let mut cols = 0;
    for (i, c) in line[start..].char_indices() {
        let w = width(c);
        if cols + w > WINDOW_WIDTH {
            break;
        }
        cols += w;
        end = start + i + c.len_utf8();
    }
    (start, end.max(start))
}

/// Display columns of a character, at most: a tab counts as a full tab stop.
fn width(c: char) -> usize {
    if c == '\t' {
        4
    } else {
        c.width().unwrap_or(0)
    }
}

fn content_end(text: &str, index: &LineIndex, number: usize) -> usize {
    let start = index.starts[number];
    let end = index.starts.get(number + 1).copied().unwrap_or(text.len());
    let line = &text[start..end];
    let content = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(line);
    start + content.len()
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}
