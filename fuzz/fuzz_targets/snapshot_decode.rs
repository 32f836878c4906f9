//! Snapshot files: the input's first 36 bytes are the header's fields (shard, shard count,
//! slots, sequence number, rows) and the rest the body; the harness writes a file with a
//! valid magic, version, length and checksums around them, so the body decoder is what gets
//! fuzzed. An input whose 37th byte is odd is written as it is instead (the header checks).

#![no_main]

use featgrid::persist::crc32c;
use featgrid::persist::snapshot::{read_shard, FORMAT_VERSION, HEADER_LEN, MAGIC};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    if data.len() < 37 {
        return;
    }
    let (fields, rest) = data.split_at(36);
    let (mode, body) = rest.split_first().expect("37 bytes or more");
    let file = if mode & 1 == 1 {
        data.to_vec()
    } else {
        let mut file = vec![0u8; HEADER_LEN];
        file[0..8].copy_from_slice(&MAGIC);
        file[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        file[12..48].copy_from_slice(fields);
        file[48..56].copy_from_slice(&(body.len() as u64).to_le_bytes());
        file[56..60].copy_from_slice(&crc32c(body).to_le_bytes());
        let header_crc = crc32c(&file[..60]);
        file[60..64].copy_from_slice(&header_crc.to_le_bytes());
        file.extend_from_slice(body);
        file
    };
    let path = scratch_dir().join("shard-00000.snap");
    std::fs::write(&path, &file).expect("write the scratch file");
    let _ = read_shard(&path);
});
