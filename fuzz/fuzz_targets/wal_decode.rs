//! Write-ahead log segments: the input is `[u16 header length][segment header body]` then
//! records `[u16 length][payload]`; the harness frames them with a valid magic, version,
//! lengths, lsns and checksums, so the segment header and record payload decoders are what
//! gets fuzzed, both as the newest segment and as an older one, with and without --recover;
//! the payloads are decoded as write-ahead log records and as Raft log records (the same
//! segments hold a cluster node's Raft log).

#![no_main]

use featgrid::persist::crc32c;
use featgrid::cluster::log_store::Op;
use featgrid::persist::wal::{read_segment, WritePayload, FORMAT_VERSION, MAGIC, RECORD_HEADER};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (chunk, rest) = rest.split_at(len);
    *data = rest;
    Some(chunk)
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let Some(meta) = take(&mut input) else {
        return;
    };
    let mut file = Vec::with_capacity(data.len() + 64);
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    file.extend_from_slice(&crc32c(meta).to_le_bytes());
    file.extend_from_slice(meta);
    let mut lsn = 1u64;
    while let Some(payload) = take(&mut input) {
        let start = file.len();
        file.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        file.extend_from_slice(&lsn.to_le_bytes());
        file.extend_from_slice(&crc32c(payload).to_le_bytes());
        let header_crc = crc32c(&file[start..start + 16]);
        file.extend_from_slice(&header_crc.to_le_bytes());
        debug_assert_eq!(file.len() - start, RECORD_HEADER);
        file.extend_from_slice(payload);
        lsn += 1;
    }
    let path = scratch_dir().join("00000000000000000001.wal");
    std::fs::write(&path, &file).expect("write the scratch segment");
    for (newest, recover) in [(true, false), (false, false), (false, true)] {
        let _ = read_segment(&path, newest, recover, |_, _, (_, views): WritePayload| {
            assert!(views.len() <= file.len(), "more views than bytes");
            Ok(())
        });
        let _ = read_segment(&path, newest, recover, |_, _, _: (u32, Op)| Ok(()));
    }
});
