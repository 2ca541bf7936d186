//! The widget back end's readers (the `widget_request` body, its `return_url`, both token
//! verifiers) on arbitrary bytes: see FUZZING.md and `lead_intake::fuzzing::widget`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lead_intake::fuzzing::widget(data);
});
