#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlops_fuzz::csv_records(data));
