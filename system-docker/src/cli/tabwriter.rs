//! Column alignment with Go's `text/tabwriter` algorithm (elastic tabstops), which docker
//! uses for every table: tab-terminated cells in consecutive lines form a column, padded
//! to the widest cell plus `padding`, at least `minwidth`; text after the last tab of a
//! line is not part of a column.

/// Aligns the tab-separated `text`, padding with spaces.
pub fn align(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let writer = Writer {
        lines,
        minwidth,
        padding,
    };
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    writer.format(&mut out, &mut widths, 0, writer.lines.len());
    out
}

struct Writer<'a> {
    /// Each line's cells; the last one is the unterminated trailing text.
    lines: Vec<Vec<&'a str>>,
    minwidth: usize,
    padding: usize,
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

impl Writer<'_> {
    fn format(&self, out: &mut String, widths: &mut Vec<usize>, line0: usize, line1: usize) {
        let column = widths.len();
        let mut line0 = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // A column block starts here: print the lines before it, measure the block.
            self.write_lines(out, widths, line0, this);
            line0 = this;
            let mut w = self.minwidth;
            while this < line1 && column + 1 < self.lines[this].len() {
                w = w.max(width(self.lines[this][column]) + self.padding);
                this += 1;
            }
            widths.push(w);
            self.format(out, widths, line0, this);
            widths.pop();
            line0 = this;
        }
        self.write_lines(out, widths, line0, line1);
    }

    fn write_lines(&self, out: &mut String, widths: &[usize], line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                out.push_str(cell);
                if let Some(&w) = widths.get(j) {
                    let pad = w.saturating_sub(width(cell));
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if i + 1 < self.lines.len() {
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_widest_plus_padding_with_minimum() {
        let text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest\tweb\n";
        assert_eq!(
            align(text, 10, 3),
            "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   web\n"
        );
    }

    #[test]
    fn columns_are_per_contiguous_block() {
        // As in Go's documentation: b and c are distinct columns.
        let text = "aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n";
        assert_eq!(
            align(text, 0, 1),
            "aaaa bbb d\naa   b   dd\na    \naa   cccc eee\n"
        );
    }

    #[test]
    fn empty_cells_and_multibyte() {
        assert_eq!(
            align("a…\t\tz\nb\t\tz", 4, 1),
            "a…  \t".replace('\t', "    ") + "z\nb       z"
        );
    }
}
