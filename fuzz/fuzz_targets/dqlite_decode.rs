//! The dqlite wire decoder: any bytes, split into frames and decoded as responses (and as
//! requests), give a message or a decoding error, never a panic, an out-of-bounds read or a
//! huge allocation; and every response that decodes re-encodes to a frame that decodes to the
//! same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = aiolite::dqlite::fuzz_decode(data);
});
