//! The form parser and the webhook reader on arbitrary bodies: see FUZZING.md and
//! `lead_intake::fuzzing::forms`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lead_intake::fuzzing::forms(data);
});
