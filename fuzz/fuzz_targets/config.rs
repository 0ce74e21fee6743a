//! config.json (and exec's process.json) loading and validation: any
//! bytes must give a spec or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(loaded) = libcontainer::spec::parse(data, Path::new("config.json")) {
        // What create does next with a valid spec's seccomp section.
        if let Some(sc) = loaded
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
        {
            let _ = libcontainer::seccomp::build(sc);
        }
    }
    let _ = libcontainer::spec::parse_process(data, Path::new("process.json"));
});
