//! Every response reader of both APIs on arbitrary answers: see FUZZING.md and
//! `lead_intake::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lead_intake::fuzzing::responses(data);
});
