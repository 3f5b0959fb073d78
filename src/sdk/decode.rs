//! A request body as sent (`Content-Encoding` gzip, deflate, br, zstd or none), decompressed as a
//! stream and never past the limit: a kilobyte that inflates to gigabytes costs a limit's worth.

use std::io::Read;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Content-Encoding {0:?} is not one herald reads (gzip, deflate, br, zstd)")]
    UnknownEncoding(String),
    #[error("the body is not valid {encoding}: {reason}")]
    Corrupt {
        encoding: &'static str,
        reason: String,
    },
    #[error("the body is larger than {limit} bytes once decompressed")]
    TooLarge { limit: usize },
}

/// `body` decoded as `encoding` says, at most `limit` bytes of it.
pub fn decode(encoding: Option<&str>, body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let encoding = encoding
        .map(str::trim)
        .unwrap_or_default()
        .to_ascii_lowercase();
    match encoding.as_str() {
        // Some SDKs send an empty value or a charset here; both mean "as it is".
        "" | "identity" | "utf-8" => within(body.len(), limit).map(|()| body.to_vec()),
        "gzip" | "x-gzip" => read_all(flate2::read::MultiGzDecoder::new(body), "gzip", limit),
        // zlib-wrapped as the standard says, else raw deflate as some clients send.
        "deflate" => read_all(flate2::read::ZlibDecoder::new(body), "deflate", limit)
            .or_else(|_| read_all(flate2::read::DeflateDecoder::new(body), "deflate", limit)),
        "br" => read_all(
            brotli_decompressor::Decompressor::new(body, 4096),
            "br",
            limit,
        ),
        "zstd" => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(body).map_err(|error| {
                DecodeError::Corrupt {
                    encoding: "zstd",
                    reason: error.to_string(),
                }
            })?;
            read_all(decoder, "zstd", limit)
        }
        other => Err(DecodeError::UnknownEncoding(other.to_string())),
    }
}

fn within(size: usize, limit: usize) -> Result<(), DecodeError> {
    if size > limit {
        Err(DecodeError::TooLarge { limit })
    } else {
        Ok(())
    }
}

/// Reads `reader` to its end, or fails as soon as it gives more than `limit` bytes.
fn read_all(
    reader: impl Read,
    encoding: &'static str,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut limited = reader.take(limit as u64 + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|error| DecodeError::Corrupt {
            encoding,
            reason: error.to_string(),
        })?;
    within(out.len(), limit)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn every_encoding_and_a_bomb() {
        let text = b"{\"event_id\":\"x\"}\n".repeat(10);
        assert_eq!(decode(Some("gzip"), &gzip(&text), 1 << 20).unwrap(), text);
        assert_eq!(decode(None, &text, 1 << 20).unwrap(), text);
        assert_eq!(decode(Some("UTF-8"), &text, 1 << 20).unwrap(), text);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&text).unwrap();
        assert_eq!(
            decode(Some("deflate"), &zlib.finish().unwrap(), 1 << 20).unwrap(),
            text
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&text).unwrap();
        assert_eq!(
            decode(Some("deflate"), &raw.finish().unwrap(), 1 << 20).unwrap(),
            text
        );
        // 16 MB of zeros in ~16 KB: refused after the limit, not inflated.
        let bomb = gzip(&vec![0u8; 16 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            decode(Some("gzip"), &bomb, 1 << 20),
            Err(DecodeError::TooLarge { limit: 1 << 20 })
        );
        assert!(matches!(
            decode(Some("gzip"), b"not gzip", 1 << 20),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(
            decode(Some("compress"), b"x", 10),
            Err(DecodeError::UnknownEncoding(_))
        ));
    }
}
