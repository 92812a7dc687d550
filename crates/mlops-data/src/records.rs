//! CSV records split at the line level: a line with no quote (nearly every line of a numeric
//! dataset) is cut at its commas where it lies in the read buffer, with no copy; a record with
//! quotes is cut out of the buffer whole (it may span lines) and handed to the `csv` crate, so
//! quoting follows `csv_core`'s rules exactly.
//!
//! The records, their fields and their line numbers are the ones `csv::Reader` (flexible, no
//! header handling) gives for the same bytes: a UTF-8 byte order mark at the start is dropped,
//! blank lines are skipped, `\n`, `\r\n` and a lone `\r` all end a record, and a quote only opens
//! a quoted field at the start of a field.

use std::io::Read;

use crate::number::PLAIN_LENGTH;

/// One record: its fields as byte ranges of `text`.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The line the record starts on (1-based).
    pub line: u64,
    /// The bytes the fields lie in.
    text: &'a [u8],
    /// Where the first field starts in `text`.
    first: usize,
    /// Where each field ends in `text`; the next one starts past the comma in a raw record,
    /// right there in a quoted one (whose unquoted fields lie end to end).
    ends: &'a [usize],
    /// The record is as the file has it (fields separated by commas, nothing quoted), so any
    /// run of neighbouring fields can be copied from it in one piece.
    pub raw: bool,
    /// The record is raw and holds nothing but ASCII digits and commas, and every field has one
    /// to [`PLAIN_LENGTH`](crate::number::PLAIN_LENGTH) digits: every field is a number, with
    /// no further check.
    pub digits: bool,
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Where field `i` starts in `text`.
    fn start(&self, i: usize) -> usize {
        match i.checked_sub(1) {
            None => self.first,
            Some(before) => self
                .ends
                .get(before)
                .map_or(0, |e| e + usize::from(self.raw)),
        }
    }

    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        self.text.get(self.start(i)..end)
    }

    /// Field `i` read as a number by [`number::parse`](crate::number::parse) (through its
    /// shortcut for digit fields when the record is [`digits`](Self::digits)); `None` when it
    /// is not a finite number or there is no such field.
    pub fn number(&self, i: usize) -> Option<f32> {
        let field = self.get(i)?;
        if self.digits {
            crate::number::digits(field)
        } else {
            crate::number::parse(field)
        }
    }

    /// The fields as text, ASCII whitespace trimmed (a header's column names), or the UTF-8
    /// error of the first field that is not text.
    pub fn names(&self) -> Result<Vec<&'a str>, std::str::Utf8Error> {
        (0..self.len())
            .map(|i| std::str::from_utf8(self.get(i).unwrap_or_default()).map(str::trim))
            .collect()
    }

    /// Fields `first..=last` with the commas between them, when the record is raw.
    pub fn run(&self, first: usize, last: usize) -> Option<&'a [u8]> {
        if !self.raw || first > last {
            return None;
        }
        let end = *self.ends.get(last)?;
        self.text.get(self.start(first)..end)
    }
}

/// Whether a field that ends at `end` after a separator at `before` is empty or longer than
/// [`PLAIN_LENGTH`] (its length is the distance less the separator).
#[inline]
fn odd_size(before: usize, end: usize) -> bool {
    end.wrapping_sub(before).wrapping_sub(2) >= PLAIN_LENGTH
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

/// The length of the first record in `text` up to and including the `\n` or `\r` that ends it
/// outside quotes, or `None` when `text` holds no such end yet. (The `\n` of a `\r\n` is left
/// for the scanner, which skips it as a blank line.)
fn quoted_record_len(text: &[u8]) -> Option<usize> {
    let mut state = State::FieldStart;
    for (i, &b) in text.iter().enumerate() {
        #[cfg(test)]
        tests::scanned(1);
        state = match (state, b) {
            (State::Quoted, b'"') => State::ClosingQuote,
            (State::Quoted, _) => State::Quoted,
            (_, b'\n' | b'\r') => return Some(i + 1),
            (State::ClosingQuote, b'"') | (State::FieldStart, b'"') => State::Quoted,
            (_, b',') => State::FieldStart,
            _ => State::Unquoted,
        };
    }
    None
}

/// How many lines come before the first byte of the record that `csv` began to read at `from`
/// (it counts the terminators it skips to the record, `\r\n` ends and blank lines, as part of
/// it; the line a user looks for is the one the record's first byte is on).
fn lines_before_record(text: &[u8], from: usize) -> u64 {
    let (before, after) = text.split_at(from.min(text.len()));
    let terminators = after
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    #[cfg(test)]
    tests::scanned(before.len() + terminators);
    let newlines = |t: &[u8]| memchr::memchr_iter(b'\n', t).count() as u64;
    newlines(before) + newlines(after.get(..terminators).unwrap_or_default())
}

/// The bytes of one 64-byte block the scanner stops at, a bit per byte (bit `i` for byte `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Classes {
    commas: u64,
    newlines: u64,
    /// Quotes and carriage returns: the end of a `\r\n` line, or a record for `csv`.
    stops: u64,
    /// Every other byte that is not an ASCII digit.
    others: u64,
}

/// Classifies the 64 bytes of `block` with 16-byte vector compares (SSE2 on x86-64, NEON on
/// arm64, through `wide`).
#[inline]
fn classify(block: &[u8; 64]) -> Classes {
    use wide::u8x16;
    let splat = u8x16::splat;
    let (comma, newline, quote, cr) = (splat(b','), splat(b'\n'), splat(b'"'), splat(b'\r'));
    let (zero, nine) = (splat(b'0'), splat(9));
    let mut c = Classes {
        commas: 0,
        newlines: 0,
        stops: 0,
        others: 0,
    };
    for (k, lanes) in block.as_chunks::<16>().0.iter().enumerate() {
        let v = u8x16::new(*lanes);
        let is_comma = v.simd_eq(comma);
        let is_newline = v.simd_eq(newline);
        let is_stop = v.simd_eq(quote) | v.simd_eq(cr);
        // A digit is at most 9 above `0`; anything below `0` wraps to 246 or more.
        let d = v - zero;
        let is_digit = d.min(nine).simd_eq(d);
        let known = is_comma | is_newline | is_stop | is_digit;
        let shift = 16 * k;
        c.commas |= u64::from(is_comma.to_bitmask()) << shift;
        c.newlines |= u64::from(is_newline.to_bitmask()) << shift;
        c.stops |= u64::from(is_stop.to_bitmask()) << shift;
        c.others |= u64::from(!known.to_bitmask() & 0xffff) << shift;
    }
    c
}

/// The commas of a block (whose field ends are `ends`) that end an empty field or one longer
/// than [`PLAIN_LENGTH`]: those with no field end among the 32 bytes before them, or one right
/// before them. `earlier` holds the field ends of the 64 bytes before the block.
///
/// This is [`odd_size`] for every comma of the block at once, in a dozen integer operations,
/// where the check per comma lengthened the comma loop by a third.
#[inline]
fn odd_commas(commas: u64, ends: u64, earlier: u64) -> u64 {
    const _: () = assert!(PLAIN_LENGTH == 31, "the spread below covers 32 bytes");
    let both = u128::from(ends) << 64 | u128::from(earlier);
    // Bit i: a field end at i - 1; then at one of i - 32..=i - 1.
    let right_before = both << 1;
    let mut near = right_before;
    for shift in [1, 2, 4, 8, 16] {
        near |= near << shift;
    }
    let high = |bits: u128| (bits >> 64) as u64;
    commas & (high(right_before) | !high(near))
}

/// Bits `from..64` (none when `from` is 64 or more).
#[inline]
fn bits_from(from: usize) -> u64 {
    u32::try_from(from)
        .ok()
        .and_then(|f| u64::MAX.checked_shl(f))
        .unwrap_or(0)
}

/// The bytes read at a time; a record longer than this grows the buffer.
const CHUNK: usize = 256 * 1024;

/// The splitter's working state, kept across windows of the input.
struct Splitter {
    line: u64,
    /// Where the current record's fields end; kept longer than any line's fields need, with
    /// the count of the current ones apart, so that a comma costs a store, not a push.
    ends: Vec<usize>,
    quoted: csv::ByteRecord,
}

impl Splitter {
    fn new() -> Self {
        Self {
            line: 1,
            ends: Vec::new(),
            quoted: csv::ByteRecord::new(),
        }
    }

    /// Calls `on_record` for every complete record at the front of `window` (with `eof`, the
    /// window's end ends the last one) and returns the bytes they took.
    ///
    /// The window is classified 64 bytes at a time, and only the bytes found then (commas,
    /// line ends, quotes and carriage returns) cost a step each: a line with no quote (nearly
    /// every line of a numeric dataset), whether it ends in `\n`, `\r\n` or a lone `\r`, is cut
    /// at its commas where it lies. A record with a quote goes to `csv`, and the scan starts
    /// again after it. Every byte is looked at a bounded number of times, whatever the line
    /// ends and the quoting (tested by counting).
    fn records<E>(
        &mut self,
        window: &[u8],
        eof: bool,
        io: &impl Fn(std::io::Error, u64) -> E,
        on_record: &mut impl FnMut(Record<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut start: usize = 0;
        'scan: loop {
            // The line being cut (from `start`): how many fields it has so far, whether a field
            // ended by a comma is empty or longer than `PLAIN_LENGTH`, whether it has a byte that
            // is neither a digit nor a comma, whether it ends in `\r\n`.
            let mut fields = 0;
            // The field ends of the block before (the line's start counts as one).
            let mut earlier = 1 << 63;
            let mut odd = false;
            let mut other = false;
            let mut crlf = false;
            let mut base = start;
            loop {
                let rest = window.get(base..).unwrap_or_default();
                let block = match rest.first_chunk::<64>() {
                    Some(b) => *b,
                    None if !rest.is_empty() => {
                        let mut padded = [b'0'; 64];
                        for (p, b) in padded.iter_mut().zip(rest) {
                            *p = *b;
                        }
                        padded
                    }
                    None => break,
                };
                // Room for every comma of the block and the line's end.
                if self.ends.len() < fields + 65 {
                    self.ends.resize(2 * (fields + 65), 0);
                }
                let c = classify(&block);
                let mut stops = c.newlines | c.stops;
                let field_ends = c.commas | stops;
                let odd_commas = odd_commas(c.commas, field_ends, earlier);
                earlier = field_ends;
                // The block's bits from the current line's start on.
                let mut from = start.saturating_sub(base);
                loop {
                    // The stretch up to the next stop (or the block's end): commas only.
                    let stop = stops.trailing_zeros() as usize;
                    let stretch = bits_from(from) & !bits_from(stop);
                    let mut commas = c.commas & stretch;
                    // `ends` has room for every comma of the block (resized above).
                    let mut n = 0;
                    for end in self.ends.iter_mut().skip(fields) {
                        if commas == 0 {
                            break;
                        }
                        *end = base + commas.trailing_zeros() as usize;
                        n += 1;
                        commas &= commas - 1;
                    }
                    fields += n;
                    odd |= odd_commas & stretch != 0;
                    other |= c.others & stretch != 0;
                    if stops == 0 {
                        break;
                    }
                    stops &= stops - 1;
                    from = stop + 1;
                    let at = base + stop;
                    let newline = c.newlines >> stop & 1 == 1;
                    let cr = !newline && window.get(at) == Some(&b'\r');
                    if cr && window.get(at + 1) == Some(&b'\n') {
                        crlf = true;
                    } else if cr && at + 1 == window.len() && !eof {
                        // A `\r\n` cut in two, perhaps: wait for the next byte.
                        return Ok(start);
                    } else if newline || cr {
                        // `\n` or a lone `\r` ends the record; only `\n` ends a line (`csv`
                        // counts lines by it).
                        let end = if crlf { at - 1 } else { at };
                        if end > start {
                            if let Some(e) = self.ends.get_mut(fields) {
                                *e = end;
                            }
                            let digits = !other && !odd && self.last_field_fits(start, fields, end);
                            self.line_record(window, start, fields + 1, digits, on_record)?;
                        }
                        self.line += u64::from(newline);
                        start = at + 1;
                        (fields, odd, other, crlf) = (0, false, false, false);
                    } else {
                        // A quote: the whole record to `csv` (a quoted field may span lines).
                        let rest = window.get(start..).unwrap_or_default();
                        let took = self.quoted(rest, eof, io, on_record)?;
                        if took == 0 {
                            return Ok(start);
                        }
                        start += took;
                        continue 'scan;
                    }
                }
                base += 64;
            }
            // The window ends inside a line: the last one of the input, or one to finish when
            // more is read.
            if !eof || start >= window.len() {
                return Ok(start);
            }
            if let Some(e) = self.ends.get_mut(fields) {
                *e = window.len();
            }
            let digits = !other && !odd && self.last_field_fits(start, fields, window.len());
            self.line_record(window, start, fields + 1, digits, on_record)?;
            return Ok(window.len());
        }
    }

    /// Whether the last field of the raw line at `start`, which has `fields` fields before it
    /// and ends at `end`, has one to [`PLAIN_LENGTH`] bytes (the fields before it are checked
    /// per block, by [`odd_commas`]).
    #[inline]
    fn last_field_fits(&self, start: usize, fields: usize, end: usize) -> bool {
        let before = match fields.checked_sub(1) {
            Some(last) => self.ends.get(last).copied().unwrap_or(start),
            None => start.wrapping_sub(1),
        };
        !odd_size(before, end)
    }

    /// Hands on the raw line at `start` of `window` whose `fields` fields end at the front of
    /// `ends` (`digits`: see [`Record::digits`]).
    fn line_record<E>(
        &self,
        window: &[u8],
        start: usize,
        fields: usize,
        digits: bool,
        on_record: &mut impl FnMut(Record<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        on_record(Record {
            line: self.line,
            text: window,
            first: start,
            ends: self.ends.get(..fields).unwrap_or_default(),
            raw: true,
            digits,
        })
    }

    /// Hands the record at the front of `window`, which has a quote (it may span lines), to
    /// `csv`, and returns the bytes it took: none when the window does not hold all of it yet.
    fn quoted<E>(
        &mut self,
        window: &[u8],
        eof: bool,
        io: &impl Fn(std::io::Error, u64) -> E,
        on_record: &mut impl FnMut(Record<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let length = match quoted_record_len(window) {
            Some(l) => l,
            None if eof => window.len(),
            None => return Ok(0),
        };
        let piece = window.get(..length).unwrap_or(window);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(piece);
        loop {
            let line = self.line;
            let more = reader.read_byte_record(&mut self.quoted).map_err(|e| {
                let at = e.position().map_or(line, |p| line + p.line() - 1);
                io(std::io::Error::other(e), at)
            })?;
            if !more {
                break;
            }
            let from = self.quoted.position().map_or(0, |p| p.byte() as usize);
            let at = line + lines_before_record(piece, from);
            let quoted = &self.quoted;
            self.ends.clear();
            self.ends
                .extend((0..quoted.len()).filter_map(|i| quoted.range(i).map(|r| r.end)));
            on_record(Record {
                line: at,
                text: quoted.as_slice(),
                first: 0,
                ends: &self.ends,
                raw: false,
                digits: false,
            })?;
        }
        self.line += memchr::memchr_iter(b'\n', piece).count() as u64;
        Ok(length)
    }
}

/// `text` without a UTF-8 byte order mark at its start.
fn without_bom(text: &[u8]) -> &[u8] {
    text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text)
}

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
    let mut splitter = Splitter::new();
    let fill = |input: &mut R, buf: &mut [u8], line: u64| loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e, line)),
        }
    };
    // A byte order mark can only be seen whole.
    while end < 3 && !eof {
        let n = fill(input, buf.get_mut(end..).unwrap_or_default(), 1)?;
        eof = n == 0;
        end += n;
    }
    start += end - without_bom(buf.get(..end).unwrap_or_default()).len();
    loop {
        let window = buf.get(start..end).unwrap_or_default();
        start += splitter.records(window, eof, &io, &mut on_record)?;
        if eof {
            return Ok(());
        }
        // More input: keep the unfinished record, at the front of a buffer big enough.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = fill(input, buf.get_mut(end..).unwrap_or_default(), splitter.line)?;
        eof = n == 0;
        end += n;
    }
}

/// [`for_each`] over text that is all in memory (a request body): the records are cut where
/// they lie, with no copy.
pub fn each<E>(
    text: &[u8],
    mut on_record: impl FnMut(Record<'_>) -> Result<(), E>,
    io: impl Fn(std::io::Error, u64) -> E,
) -> Result<(), E> {
    Splitter::new()
        .records(without_bom(text), true, &io, &mut on_record)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use proptest::prelude::*;

    thread_local! {
        /// Bytes looked at again by the slow paths (the quote scan and the line count of a
        /// record handed to `csv`), on this thread.
        static SCANNED: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn scanned(bytes: usize) {
        SCANNED.with(|s| s.set(s.get() + bytes));
    }

    /// The bytes the slow paths look at while `f` runs.
    fn rescanned(f: impl FnOnce()) -> usize {
        SCANNED.with(|s| s.set(0));
        f();
        SCANNED.with(Cell::get)
    }

    /// Every line end (`\n`, `\r\n`, a lone `\r`, mixed) and every quoting costs a bounded
    /// amount of work per byte: the bytes the slow paths look at grow with the text, not with its
    /// square. (A body of lone-`\r` records went to `csv` as one piece whose every record counted
    /// lines from the piece's start: 20,000 rows took 18 times as long as with `\n`.)
    #[test]
    fn the_work_per_byte_is_bounded_for_every_line_end_and_quoting() {
        type Row = fn(usize) -> String;
        let shapes: [(&str, Row); 5] = [
            ("lf", |i| format!("{i},{},7\n", i * 3)),
            ("lone cr", |i| format!("{i},{},7\r", i * 3)),
            ("crlf", |i| format!("{i},{},7\r\n", i * 3)),
            ("quoted, lone cr", |i| format!("\"{i}\",\"a,b\",7\r")),
            ("quoted across lines, mixed", |i| {
                format!("{i},\"x\ny\",7{}", ["\n", "\r", "\r\n"][i % 3])
            }),
        ];
        for (name, row) in shapes {
            let text = |rows: usize| (0..rows).map(row).collect::<String>();
            let (small, large) = (text(2_000), text(8_000));
            let work = |t: &str, streamed: bool| {
                rescanned(|| {
                    let mut n = 0;
                    let count = |_: Record<'_>| -> Result<(), std::io::Error> {
                        n += 1;
                        Ok(())
                    };
                    if streamed {
                        for_each(&mut t.as_bytes(), |e, _| e, count).expect("read");
                    } else {
                        each(t.as_bytes(), count, |e, _| e).expect("read");
                    }
                    assert!(n > 0, "{name}: no record");
                })
            };
            for streamed in [false, true] {
                let (a, b) = (work(&small, streamed), work(&large, streamed));
                // Linear: at most a few times the text's length, and 4x the text costs at most
                // about 4x the work.
                assert!(
                    b <= 4 * large.len(),
                    "{name} (streamed {streamed}): {b} bytes rescanned for {}",
                    large.len()
                );
                assert!(
                    b <= 5 * a.max(1),
                    "{name} (streamed {streamed}): {a} then {b} bytes rescanned"
                );
            }
        }
    }

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
        let mut streamed = Vec::new();
        for_each(
            &mut Trickle(text, chunk),
            |e, _| e,
            |r| keep(r, &mut streamed),
        )
        .expect("read");
        // The whole text in memory gives the same records.
        let mut whole = Vec::new();
        each(text, |r| keep(r, &mut whole), |e, _| e).expect("read");
        assert_eq!(streamed, whole, "in memory");
        streamed
    }

    /// Checks a record's own claims about itself and keeps its line and fields.
    fn keep(r: Record<'_>, out: &mut Vec<(u64, Vec<Vec<u8>>)>) -> std::io::Result<()> {
        let fields: Vec<Vec<u8>> = (0..r.len())
            .map(|i| r.get(i).expect("field").to_vec())
            .collect();
        if r.raw {
            let joined = r.run(0, r.len() - 1).expect("raw run");
            assert_eq!(joined, fields.join(&b","[..]).as_slice());
            let digits = fields.iter().all(|f| {
                (1..=crate::number::PLAIN_LENGTH).contains(&f.len())
                    && f.iter().all(u8::is_ascii_digit)
            });
            assert_eq!(r.digits, digits);
        } else {
            assert!(!r.digits);
        }
        out.push((r.line, fields));
        Ok(())
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
            b"1234567890123456789012345678901,2\n12345678901234567890123456789012,2\n0,,1\n,1\n1,\n",
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
            for place in [0, 1, 7, 15, 16, 31, 33, 48, 62, 63] {
                let mut block = [b'5'; 64];
                block[place] = b;
                let c = classify(&block);
                let bit = |yes: bool| if yes { 1u64 << place } else { 0 };
                let expected = Classes {
                    commas: bit(b == b','),
                    newlines: bit(b == b'\n'),
                    stops: bit(b == b'"' || b == b'\r'),
                    others: bit(!b.is_ascii_digit() && !b",\n\"\r".contains(&b)),
                };
                assert_eq!(c, expected, "byte {b:#x} at {place}");
            }
        }
        assert_eq!(bits_from(0), u64::MAX);
        assert_eq!(bits_from(63), 1 << 63);
        assert_eq!(bits_from(64), 0);
    }

    proptest! {
        // Each case reads a few hundred rows twice: fewer cases than the default keep it quick.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// For any mix of fields (plain, empty, long, quoted with commas, quotes and line ends
        /// inside) and line ends (`\n`, `\r\n`, lone `\r`), the bytes the slow paths look at
        /// stay within a few times the text's length, read whole or streamed.
        #[test]
        fn the_work_per_byte_is_bounded_for_any_text(
            cells in proptest::collection::vec(0usize..7, 1..12),
            ends in proptest::collection::vec(0usize..3, 1..5),
            rows in 100usize..600,
        ) {
            let cell = |k: usize, i: usize| match k {
                0 => format!("{i}"),
                1 => String::new(),
                2 => "7".repeat(40),
                3 => format!("\"{i},{i}\""),
                4 => "\"say \"\"hi\"\"\"".to_owned(),
                5 => format!("\"a\r\nb\n{i}\rc\""),
                _ => "x y".to_owned(),
            };
            let end = ["\n", "\r\n", "\r"];
            let mut text = String::new();
            for i in 0..rows {
                let row: Vec<String> = cells.iter().map(|&k| cell(k, i)).collect();
                text.push_str(&row.join(","));
                text.push_str(end[ends[i % ends.len()]]);
            }
            for streamed in [false, true] {
                let work = rescanned(|| {
                    let count = |_: Record<'_>| -> Result<(), std::io::Error> { Ok(()) };
                    if streamed {
                        for_each(&mut text.as_bytes(), |e, _| e, count).expect("read");
                    } else {
                        each(text.as_bytes(), count, |e, _| e).expect("read");
                    }
                });
                prop_assert!(
                    work <= 4 * text.len(),
                    "streamed {}: {} bytes rescanned for {}",
                    streamed,
                    work,
                    text.len()
                );
            }
        }
    }

    proptest! {
        /// The commas the block arithmetic finds odd are those whose field, measured back to
        /// the field end before it, is empty or longer than `PLAIN_LENGTH`.
        #[test]
        fn odd_commas_are_those_of_empty_or_long_fields(
            two in proptest::collection::vec(
                prop_oneof![Just(b','), Just(b'\n'), Just(b'\r'), Just(b'1'), Just(b'1'), Just(b'1')],
                128,
            ),
            quiet in 0usize..128,
        ) {
            // Runs of digits long enough for long fields: the bytes from `quiet` on are
            // mostly digits.
            let mut two = two;
            for (i, b) in two.iter_mut().enumerate().skip(quiet) {
                if i % 29 != 0 {
                    *b = b'1';
                }
            }
            let (first, second) = two.split_at(64);
            let ends = |block: &[u8]| {
                let c = classify(block.try_into().expect("64 bytes"));
                (c.commas, c.commas | c.newlines | c.stops)
            };
            let (_, earlier) = ends(first);
            let (commas, field_ends) = ends(second);
            let mut expected = 0u64;
            for i in 64..128 {
                if two[i] != b',' {
                    continue;
                }
                let before = (0..i).rev().find(|&j| b",\n\r".contains(&two[j]));
                let length = before.map_or(usize::MAX, |j| i - j - 1);
                if length == 0 || length > crate::number::PLAIN_LENGTH {
                    expected |= 1 << (i - 64);
                }
            }
            prop_assert_eq!(odd_commas(commas, field_ends, earlier), expected);
        }

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

        /// Numeric lines (the fast path), with their line ends, long fields and the odd
        /// letter, space or quote falling anywhere in the 64-byte blocks.
        #[test]
        fn numeric_lines_split_as_csv_splits_them(
            lines in proptest::collection::vec(
                (
                    proptest::collection::vec("[0-9]{0,3}|[0-9]{30,33}|[0-9 a\"]{1,3}", 1..40),
                    prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("\n\n")],
                ),
                0..12,
            ),
            chunk in prop_oneof![1usize..9, Just(64usize), Just(4096usize)],
        ) {
            let text: String = lines
                .iter()
                .map(|(fields, end)| format!("{}{end}", fields.join(",")))
                .collect();
            prop_assert_eq!(ours(text.as_bytes(), chunk), by_csv(text.as_bytes()));
        }
    }
}
