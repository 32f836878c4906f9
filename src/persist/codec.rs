//! The only module that knows bincode. Everything featgrid encodes in binary (snapshots, the
//! write-ahead log, the native wire protocol) goes through [`encode`] and [`decode`], so the
//! format can be swapped in one place. bincode 2, standard configuration (little-endian,
//! variable-length integers).
//!
//! Two decoders: [`decode`] for network input, with a limit on what one decode may allocate;
//! [`decode_verified`] for snapshot and log files, which are checksummed before they are
//! decoded: their size is whatever featgrid wrote (a shard may hold more than any request), so
//! they are decoded without that limit. Neither recurses without bound: no type featgrid
//! decodes nests itself.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The most bytes one decode of network input may allocate (smaller in unit tests, so that a
/// test can go past it).
#[cfg(not(test))]
pub const DECODE_LIMIT: usize = 1 << 30;
#[cfg(test)]
pub const DECODE_LIMIT: usize = 1 << 16;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("cannot decode: {0}")]
    Decode(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` into a new buffer, allocated once at the size a first pass counts (that
/// pass copies nothing; a buffer grown as it is written copies its bytes about once more,
/// in a reallocation per doubling).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut len = 0;
    bincode::serde::encode_into_writer(value, Counter(&mut len), config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(len);
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Counts the bytes an encoding would write.
struct Counter<'a>(&'a mut usize);

impl bincode::enc::write::Writer for Counter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        *self.0 += bytes.len();
        Ok(())
    }
}

/// Encodes `value` at the end of `out`.
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(|_| ())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes one value of network input from the front of `bytes`, allocating at most
/// [`DECODE_LIMIT`] bytes; returns it and the bytes it used.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    decode_limited::<T, DECODE_LIMIT>(bytes)
}

/// Decodes one value of a file whose checksum was verified: what featgrid wrote, however
/// large. The allocation limit is sized to the input (the smallest power of two at least
/// `4 × bytes + 1 MiB`): a length prefix can never claim more than the file could hold, even in
/// a file whose checksum matches bytes featgrid did not write (found by the `snapshot_decode`
/// fuzz target: a string claiming 1 TiB was allocated before the input ran out).
pub fn decode_verified<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    let needed = bytes.len().saturating_mul(4).saturating_add(1 << 20);
    macro_rules! sized {
        ($($bits:literal)*) => {
            $(if needed <= 1usize << $bits {
                return decode_limited::<T, { 1usize << $bits }>(bytes);
            })*
        };
    }
    sized!(20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47);
    Err(CodecError::Decode(format!(
        "{} bytes is more than one decode can take",
        bytes.len()
    )))
}

fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT>())
        .map_err(|e| CodecError::Decode(e.to_string()))
}

/// Bytes encoded as one length-prefixed run (serde's `bytes`), not element by element as a
/// `Vec<u8>` would be: snapshots and log records carry megabytes of row bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        struct BlobVisitor;
        impl<'de> serde::de::Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        deserializer.deserialize_byte_buf(BlobVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        id: u64,
        name: String,
        values: Vec<Option<f64>>,
        bytes: Vec<u8>,
    }

    proptest! {
        #[test]
        fn round_trips(id in any::<u64>(), name in ".{0,16}", values in proptest::collection::vec(proptest::option::of(any::<f64>().prop_filter("not NaN", |v| !v.is_nan())), 0..8), bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let sample = Sample { id, name, values, bytes };
            let encoded = encode(&sample).unwrap();
            let mut appended = vec![7u8];
            encode_into(&sample, &mut appended).unwrap();
            prop_assert_eq!(&appended[1..], &encoded[..]);
            // Counted first, allocated once: exactly what bincode writes.
            prop_assert_eq!(encoded.capacity(), encoded.len());
            prop_assert_eq!(&bincode::serde::encode_to_vec(&sample, config()).unwrap(), &encoded);
            let (decoded, used): (Sample, usize) = decode(&encoded).unwrap();
            prop_assert_eq!(used, encoded.len());
            prop_assert_eq!(decoded, sample);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Sample>(&bytes);
        }
    }

    #[test]
    fn a_blob_is_its_length_then_its_bytes() {
        let blob = Blob(vec![1, 2, 3, 250]);
        let encoded = encode(&blob).unwrap();
        assert_eq!(encoded, [4, 1, 2, 3, 250]);
        assert_eq!(decode::<Blob>(&encoded).unwrap(), (blob, 5));
        assert!(decode::<Blob>(&encoded[..3]).is_err());
    }

    #[test]
    fn network_input_is_limited_and_verified_files_are_not() {
        let blob = Blob(vec![7; DECODE_LIMIT + 1]);
        let encoded = encode(&blob).unwrap();
        assert!(decode::<Blob>(&encoded).is_err());
        assert_eq!(decode_verified::<Blob>(&encoded).unwrap().0, blob);
        // Cut short, a verified decode is an error too, not a read past the end.
        assert!(decode_verified::<Blob>(&encoded[..encoded.len() - 1]).is_err());
    }

    /// The `snapshot_decode` fuzz target's crash: a checksummed body whose string claims
    /// 0xfdfdfdfdfd bytes. A verified decode refused the input only after trying to allocate.
    #[test]
    fn a_verified_decode_never_allocates_more_than_its_input_could_hold() {
        let mut bytes = vec![3]; // a u64
        bytes.push(253); // a string length as a u64 follows
        bytes.extend_from_slice(&0xfd_fdfd_fdfdu64.to_le_bytes());
        bytes.extend_from_slice(&[0xfd; 20]);
        assert!(decode_verified::<(u64, String)>(&bytes).is_err());
        assert!(decode_verified::<(u64, Vec<u8>)>(&bytes).is_err());
    }

    #[test]
    fn a_huge_length_prefix_does_not_allocate() {
        // A Vec<u8> claiming 2^40 elements.
        let mut bytes = vec![253];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode::<Vec<u8>>(&bytes).is_err());
    }
}
