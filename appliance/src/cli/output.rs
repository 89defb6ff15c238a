//! How commands print what they find: one JSON value a line, so that the
//! output of any listing can be read by a program.

/// Print `v` as one line of JSON.
pub fn json(v: impl serde::Serialize) {
    println!("{}", serde_json::to_string(&v).expect("serialisable"));
}
