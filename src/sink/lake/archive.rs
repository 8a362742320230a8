//! The raw archive: a day's documents as canonical Extended JSON lines,
//! gzip- or zstd-compressed, counted and hashed on the way to disk. Equal
//! lines give equal bytes: gzip headers carry no timestamp or name.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::spec::Compression;

/// The raw archive being written.
pub struct RawArchive {
    path: PathBuf,
    inner: Encoder,
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<Hashing>),
    Zstd(zstd::Encoder<'static, Hashing>),
    Plain(Hashing),
}

/// What reaches the file: its size and sha256 as it is written.
struct Hashing {
    file: BufWriter<std::fs::File>,
    hash: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A closed archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// Compressed bytes.
    pub bytes: u64,
    /// sha256 of the compressed bytes, in hex.
    pub sha256: String,
}

impl RawArchive {
    /// Starts the archive at `path`.
    pub fn create(path: &Path, compression: Compression) -> std::io::Result<Self> {
        let file = std::fs::File::create(path)?;
        let sink = Hashing {
            file: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        // flate2 writes mtime 0 and no name.
        let inner = match compression {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(sink, 3)?),
            Compression::None => Encoder::Plain(sink),
        };
        Ok(Self {
            path: path.to_owned(),
            inner,
        })
    }

    /// Where it is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a line (its newline included).
    pub fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        match &mut self.inner {
            Encoder::Gzip(w) => w.write_all(line),
            Encoder::Zstd(w) => w.write_all(line),
            Encoder::Plain(w) => w.write_all(line),
        }
    }

    /// Closes the archive.
    pub fn finish(self) -> std::io::Result<Archived> {
        let mut sink = match self.inner {
            Encoder::Gzip(w) => w.finish()?,
            Encoder::Zstd(w) => w.finish()?,
            Encoder::Plain(w) => w,
        };
        sink.flush()?;
        Ok(Archived {
            bytes: sink.bytes,
            sha256: hex::encode(sink.hash.finalize()),
        })
    }
}

/// The lines of a raw archive compressed with `compression`, read from
/// `compressed`: what [`RawArchive`] wrote, for the replay from the lake and
/// for pass 2 when the day has no spool.
pub fn lines<'r>(
    compressed: impl Read + 'r,
    compression: Compression,
) -> std::io::Result<std::io::BufReader<Box<dyn Read + 'r>>> {
    let decoded: Box<dyn Read + 'r> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(compressed)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(compressed)?),
        Compression::None => Box::new(compressed),
    };
    Ok(std::io::BufReader::with_capacity(1 << 16, decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_archives_are_deterministic_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let mut outs = Vec::new();
            for name in ["a", "b"] {
                let p = dir.path().join(name);
                let mut w = RawArchive::create(&p, c).unwrap();
                w.write(b"{\"a\":1}\n").unwrap();
                let archived = w.finish().unwrap();
                let data = std::fs::read(&p).unwrap();
                assert_eq!(archived.bytes, data.len() as u64);
                assert_eq!(archived.sha256, hex::encode(Sha256::digest(&data)));
                outs.push(data);
            }
            assert_eq!(outs[0], outs[1], "{c:?}");
        }
    }

    /// The extract hands the archive a chunk's lines in one write, where it
    /// used to write them one by one: the bytes must not depend on that.
    #[test]
    fn raw_archives_do_not_depend_on_how_lines_are_split() {
        // Past zstd's window at level 3 (2 MiB) and many of its blocks,
        // and lines that compress unevenly.
        let mut lines = Vec::new();
        let mut x = 0x9e37_79b9_u32;
        while lines.len() < 5 << 20 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let n = lines.len();
            lines.extend_from_slice(format!("{{\"n\":{n},\"x\":\"{x:08x}\",\"s\":\"").as_bytes());
            lines.extend(std::iter::repeat_n(
                b'a' + (x % 26) as u8,
                (x % 300) as usize,
            ));
            lines.extend_from_slice(b"\"}\n");
        }
        let dir = tempfile::tempdir().unwrap();
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let write = |name: &str, splits: &mut dyn Iterator<Item = usize>| {
                let p = dir.path().join(name);
                let mut w = RawArchive::create(&p, c).unwrap();
                let mut at = 0;
                while at < lines.len() {
                    let end = (at + splits.next().unwrap()).min(lines.len());
                    w.write(&lines[at..end]).unwrap();
                    at = end;
                }
                (w.finish().unwrap(), std::fs::read(p).unwrap())
            };
            let whole = write("whole", &mut std::iter::repeat(lines.len()));
            let by_line = write(
                "by_line",
                &mut lines
                    .split_inclusive(|&b| b == b'\n')
                    .map(<[u8]>::len)
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            let odd = write(
                "odd",
                &mut [1, 7, 4096, 65_537, 1 << 20, 3].into_iter().cycle(),
            );
            assert!(whole.1 == by_line.1 && whole.1 == odd.1, "{c:?}");
            assert_eq!(whole.0, by_line.0, "{c:?}");
        }
    }
}
