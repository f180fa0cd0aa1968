//! Reading a log from its end: the last complete lines and a torn tail,
//! without rereading the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const CHUNK: u64 = 64 * 1024;

/// The end of a log file as seen from the back.
#[derive(Debug, Default)]
pub struct TailView {
    /// The last complete lines (without `\n`) with their byte offsets,
    /// oldest first.
    pub lines: Vec<(u64, Vec<u8>)>,
    /// Where a last line without `\n` starts, if there is one.
    pub torn_at: Option<u64>,
}

/// Reads the last `n` complete lines of the first `len` bytes of `file`.
pub fn read_tail(file: &File, len: u64, n: usize) -> io::Result<TailView> {
    let mut rb = BackReader {
        file,
        buf: Vec::new(),
        buf_start: len,
    };
    let complete_end = rb.rfind_newline(len)?.map_or(0, |p| p + 1);
    let mut view = TailView {
        lines: Vec::new(),
        torn_at: (complete_end < len).then_some(complete_end),
    };
    let mut end = complete_end;
    while view.lines.len() < n && end > 0 {
        let newline = end - 1;
        let start = rb.rfind_newline(newline)?.map_or(0, |p| p + 1);
        view.lines.push((start, rb.slice(start, newline).to_vec()));
        end = start;
    }
    view.lines.reverse();
    Ok(view)
}

/// A buffer over the bytes `[buf_start, len)`, grown backwards in chunks.
struct BackReader<'f> {
    file: &'f File,
    buf: Vec<u8>,
    buf_start: u64,
}

impl BackReader<'_> {
    /// The position of the last `\n` before `before`.
    fn rfind_newline(&mut self, before: u64) -> io::Result<Option<u64>> {
        let mut hi = before;
        loop {
            let lo = self.buf_start;
            let searched = &self.buf[..(hi - lo) as usize];
            if let Some(i) = searched.iter().rposition(|b| *b == b'\n') {
                return Ok(Some(lo + i as u64));
            }
            if lo == 0 {
                return Ok(None);
            }
            let from = lo.saturating_sub(CHUNK);
            let mut chunk = vec![0; (lo - from) as usize];
            self.file.read_exact_at(&mut chunk, from)?;
            chunk.extend_from_slice(&self.buf);
            self.buf = chunk;
            self.buf_start = from;
            hi = lo;
        }
    }

    fn slice(&self, from: u64, to: u64) -> &[u8] {
        &self.buf[(from - self.buf_start) as usize..(to - self.buf_start) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn view(content: &[u8], n: usize) -> TailView {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        read_tail(&f, content.len() as u64, n).unwrap()
    }

    fn lines(v: &TailView) -> Vec<(u64, String)> {
        v.lines
            .iter()
            .map(|(o, l)| (*o, String::from_utf8(l.clone()).unwrap()))
            .collect()
    }

    #[test]
    fn finds_last_lines_and_torn_tails() {
        let v = view(b"a\nbb\nccc\n", 2);
        assert_eq!(lines(&v), vec![(2, "bb".into()), (5, "ccc".into())]);
        assert_eq!(v.torn_at, None);

        let v = view(b"a\nbb\ncc", 5);
        assert_eq!(lines(&v), vec![(0, "a".into()), (2, "bb".into())]);
        assert_eq!(v.torn_at, Some(5));

        let v = view(b"torn", 1);
        assert!(v.lines.is_empty());
        assert_eq!(v.torn_at, Some(0));

        let v = view(b"", 1);
        assert!(v.lines.is_empty() && v.torn_at.is_none());
    }

    #[test]
    fn lines_longer_than_a_chunk_are_read_whole() {
        let long = "x".repeat(200_000);
        let content = format!("first\n{long}\nlast\n{long}");
        let v = view(content.as_bytes(), 2);
        assert_eq!(v.lines.len(), 2);
        assert_eq!(v.lines[0].1.len(), 200_000);
        assert_eq!(v.lines[1].1, b"last");
        assert_eq!(v.torn_at, Some(6 + 200_001 + 5));
    }
}
