//! CSV records split at the line level: a line with no quote and no lone carriage return (nearly
//! every line of a numeric dataset) is cut at its commas where it lies in the read buffer, with
//! no copy; a record with quotes is cut out of the buffer whole (it may span lines) and handed to
//! the `csv` crate, so quoting follows `csv_core`'s rules exactly.
//!
//! The records, their fields and their line numbers are the ones `csv::Reader` (flexible, no
//! header handling) gives for the same bytes: a UTF-8 byte order mark at the start is dropped,
//! blank lines are skipped, `\n`, `\r\n` and a lone `\r` all end a record, and a quote only opens
//! a quoted field at the start of a field.

use std::io::Read;

/// One record: its fields as byte ranges into `text`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    /// The line the record starts on (1-based).
    pub line: u64,
    pub text: &'a [u8],
    pub spans: &'a [(usize, usize)],
    /// `text` is the record as the file has it (fields separated by commas, nothing quoted), so
    /// any run of neighbouring fields can be copied from it in one piece.
    pub raw: bool,
    /// `text` is raw and holds nothing but ASCII digits and commas.
    pub digits: bool,
}

impl<'a> Record<'a> {
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&'a [u8]> {
        let text = self.text;
        self.spans.get(i).map(|&(s, e)| &text[s..e])
    }

    /// Fields `first..=last` with the commas between them, when the record is raw.
    pub(crate) fn run(&self, first: usize, last: usize) -> Option<&'a [u8]> {
        if !self.raw || first > last {
            return None;
        }
        let (start, _) = *self.spans.get(first)?;
        let (_, end) = *self.spans.get(last)?;
        Some(&self.text[start..end])
    }
}

/// Where the quote state machine of `csv_core` is (its default dialect: `,`, `"` doubled to
/// escape it, any of `\r`, `\n`, `\r\n` ending a record).
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the field's end, or the first half of `""`.
    ClosingQuote,
}

/// The length of the first record in `text` up to and including the `\n` that ends it outside
/// quotes, or `None` when `text` holds no such `\n` yet.
fn quoted_record_len(text: &[u8]) -> Option<usize> {
    let mut state = State::FieldStart;
    for (i, &b) in text.iter().enumerate() {
        state = match (state, b) {
            (State::Quoted, b'"') => State::ClosingQuote,
            (State::Quoted, _) => State::Quoted,
            (_, b'\n') => return Some(i + 1),
            (State::ClosingQuote, b'"') | (State::FieldStart, b'"') => State::Quoted,
            (_, b',' | b'\r') => State::FieldStart,
            _ => State::Unquoted,
        };
    }
    None
}

/// How many lines come before the first byte of the record that `csv` began to read at `from`
/// (it counts the terminators it skips to the record, `\r\n` ends and blank lines, as part of
/// it; the line a user looks for is the one the record's first byte is on).
fn lines_before_record(text: &[u8], from: usize) -> u64 {
    let from = from.min(text.len());
    let first = from
        + text[from..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
    memchr::memchr_iter(b'\n', &text[..first]).count() as u64
}

/// The field ranges of a line with no quote and no carriage return, and whether the line holds
/// nothing but ASCII digits and commas. The line is read eight bytes at a time as a `u64`
/// (a SWAR scan: about half the time of a byte loop, a third of a 64-lane bit-mask loop, which
/// the compiler does not turn into vector moves on the baseline x86-64 target).
fn split(line: &[u8], spans: &mut Vec<(usize, usize)>) -> bool {
    spans.clear();
    let mut start = 0;
    let mut other = false;
    let mut take = |word: u64, base: usize, spans: &mut Vec<(usize, usize)>| {
        let (mut commas, others) = classify(word);
        other |= others;
        while commas != 0 {
            let at = base + (commas.trailing_zeros() / 8) as usize;
            spans.push((start, at));
            start = at + 1;
            commas &= commas - 1;
        }
    };
    let mut words = line.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        take(u64::from_le_bytes(bytes), base, spans);
        base += 8;
    }
    // The tail, padded with digits (neither commas nor others).
    let rest = words.remainder();
    let mut bytes = [b'0'; 8];
    bytes[..rest.len()].copy_from_slice(rest);
    take(u64::from_le_bytes(bytes), base, spans);
    spans.push((start, line.len()));
    !other
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// For the eight bytes of `word`: the high bit of every comma byte, and whether any byte is
/// neither a comma nor an ASCII digit. No sum carries from one byte into the next: every byte
/// added to is at most 0x7f, and 0x7f + 0x7f, 0x7f + 0x50 are below 0x100.
#[inline]
fn classify(word: u64) -> (u64, bool) {
    let v = word ^ (ONES * u64::from(b','));
    // A byte of `v` is zero exactly where `word` has a comma.
    let commas = !(((v & LOW7) + LOW7) | v | LOW7);
    let low = word & LOW7;
    // At least 0x30 (`0`), and not at least 0x3a (one past `9`).
    let digits = (low + ONES * 0x50) & !(low + ONES * 0x46) & HIGH;
    (commas, word & HIGH != 0 || (digits | commas) != HIGH)
}

/// The bytes read at a time; a record longer than this grows the buffer.
const CHUNK: usize = 256 * 1024;

/// Calls `on_record` for every record `input` holds, in order. An error from `input` is turned
/// into `E` by `io`; an error from `on_record` stops the reading and is returned.
pub(crate) fn for_each<R: Read, E>(
    input: &mut R,
    io: impl Fn(std::io::Error, u64) -> E,
    mut on_record: impl FnMut(Record<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut buf = vec![0u8; CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    let mut eof = false;
    let mut line = 1u64;
    let mut spans = Vec::new();
    let mut quoted = csv::ByteRecord::new();
    let fill = |input: &mut R, buf: &mut [u8], line: u64| loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e, line)),
        }
    };
    // A byte order mark can only be seen whole.
    while end < 3 && !eof {
        let n = fill(input, &mut buf[end..], line)?;
        eof = n == 0;
        end += n;
    }
    if buf[..end].starts_with(b"\xef\xbb\xbf") {
        start = 3;
    }
    loop {
        let window = &buf[start..end];
        let newline = memchr::memchr(b'\n', window);
        // A complete line, or the last one of the file.
        let line_end = match newline {
            Some(n) => Some(n),
            None if eof && !window.is_empty() => Some(window.len()),
            None => None,
        };
        if let Some(n) = line_end {
            let mut text = &window[..n];
            if let Some(t) = text.strip_suffix(b"\r") {
                text = t;
            }
            let taken = (n + 1).min(window.len());
            if memchr::memchr2(b'"', b'\r', text).is_none() {
                if !text.is_empty() {
                    let digits = split(text, &mut spans);
                    on_record(Record {
                        line,
                        text,
                        spans: &spans,
                        raw: true,
                        digits,
                    })?;
                }
                line += 1;
                start += taken;
                continue;
            }
            // Quotes (or a lone `\r`): the whole record, which may span lines, to `csv`.
            let length = match quoted_record_len(window) {
                Some(l) => Some(l),
                None if eof => Some(window.len()),
                None => None,
            };
            if let Some(length) = length {
                let piece = &window[..length];
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(piece);
                loop {
                    let more = reader.read_byte_record(&mut quoted).map_err(|e| {
                        let at = e.position().map_or(line, |p| line + p.line() - 1);
                        io(std::io::Error::other(e), at)
                    })?;
                    if !more {
                        break;
                    }
                    let from = quoted.position().map_or(0, |p| p.byte() as usize);
                    let at = line + lines_before_record(piece, from);
                    spans.clear();
                    spans.extend(
                        (0..quoted.len()).filter_map(|i| quoted.range(i).map(|r| (r.start, r.end))),
                    );
                    on_record(Record {
                        line: at,
                        text: quoted.as_slice(),
                        spans: &spans,
                        raw: false,
                        digits: false,
                    })?;
                }
                line += memchr::memchr_iter(b'\n', piece).count() as u64;
                start += length;
                continue;
            }
        }
        if eof && start == end {
            return Ok(());
        }
        // More input: keep the unfinished record, at the front of a buffer big enough.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = fill(input, &mut buf[end..], line)?;
        if n == 0 {
            eof = true;
        }
        end += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The records as `csv::Reader` gives them: (the line of the record's first byte, fields).
    fn by_csv(text: &[u8]) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text);
        let mut out = Vec::new();
        let mut record = csv::ByteRecord::new();
        while reader.read_byte_record(&mut record).expect("read") {
            let from = record.position().expect("position").byte() as usize;
            let line = 1 + lines_before_record(text, from);
            out.push((line, record.iter().map(<[u8]>::to_vec).collect()));
        }
        out
    }

    /// The records as `for_each` gives them, reading `chunk` bytes at a time.
    fn ours(text: &[u8], chunk: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        for_each(
            &mut Trickle(text, chunk),
            |e, _| e,
            |r| {
                let fields: Vec<Vec<u8>> = (0..r.len())
                    .map(|i| r.get(i).expect("field").to_vec())
                    .collect();
                if r.raw {
                    let joined = r.run(0, r.len() - 1).expect("raw run");
                    assert_eq!(joined, fields.join(&b","[..]).as_slice());
                    let digits = joined.iter().all(|b| *b == b',' || b.is_ascii_digit());
                    assert_eq!(r.digits, digits);
                } else {
                    assert!(!r.digits);
                }
                out.push((r.line, fields));
                Ok(())
            },
        )
        .expect("read");
        out
    }

    #[test]
    fn the_usual_shapes_split_as_csv_splits_them() {
        for text in [
            &b"a,b\n1,2\n3,4\n"[..],
            b"a,b\r\n1,2\r\n3,4",
            b"\xef\xbb\xbfa,b\n1,2\n",
            b"a,b\n\n\n1,2\n\r\n3,4\n",
            b"a,\"b,c\"\n1,\"x\ny\"\n2,\"he said \"\"hi\"\"\"\n",
            b"a,b\r1,2\r3,4\n5,6",
            b"a,b\n1,x\"y\n3,\"4\n5,6\n",
            b"a\n\"unterminated,1\n2,3\n",
            b"a,b\n,\n,,\n\"\",\"\"\n",
            b"",
            b"\n\n",
            b"x",
        ] {
            for chunk in [1, 2, 3, 7, 1024] {
                assert_eq!(
                    ours(text, chunk),
                    by_csv(text),
                    "{:?} in chunks of {chunk}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    #[test]
    fn long_lines_split_at_every_comma() {
        // Fields of 0 to 4 bytes, so commas fall at every place of a 64-byte chunk.
        let line: Vec<String> = (0..300).map(|i| "7".repeat(i % 5)).collect();
        let text = format!("{}\n{}\n", line.join(","), line[1..].join(","));
        for chunk in [5, 64, 1 << 20] {
            let got = ours(text.as_bytes(), chunk);
            assert_eq!(got, by_csv(text.as_bytes()));
            assert_eq!(got[0].1.len(), 300);
        }
    }

    #[test]
    fn the_byte_classes_are_exact_for_every_byte() {
        for b in 0..=255u8 {
            for place in 0..8 {
                let mut bytes = [b'5'; 8];
                bytes[place] = b;
                let (commas, other) = classify(u64::from_le_bytes(bytes));
                let expected = if b == b',' { 0x80u64 << (8 * place) } else { 0 };
                assert_eq!(commas, expected, "byte {b:#x} at {place}");
                assert_eq!(other, b != b',' && !b.is_ascii_digit(), "byte {b:#x}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_of_csv_bytes_splits_as_csv_splits_it(
            text in proptest::collection::vec(
                prop_oneof![
                    Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b'a'), Just(b'1'),
                    Just(b'9'), Just(b'0'), Just(b'/'), Just(b':'), Just(0xffu8),
                ],
                0..200,
            ),
            chunk in 1usize..9,
        ) {
            prop_assert_eq!(ours(&text, chunk), by_csv(&text));
        }
    }
}
