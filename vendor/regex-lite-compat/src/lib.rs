//! `regex`'s API as used by oci-spec (`Regex::new`, `is_match`), served by
//! regex-lite. See Cargo.toml for why.

pub use regex_lite::{Error, Regex, RegexBuilder};
