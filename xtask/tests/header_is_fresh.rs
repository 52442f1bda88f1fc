//! The committed header must be exactly what the generator produces from the current sources.

#[test]
fn committed_header_matches_the_generator() {
    let generated = xtask::header().expect("header generation");
    let committed =
        std::fs::read_to_string(xtask::header_path()).expect("include/openbits.h is committed");
    assert!(
        committed == generated,
        "include/openbits.h is stale: run `cargo xtask header` and commit it"
    );
}

#[test]
fn header_version_matches_cargo() {
    let h = xtask::header().unwrap();
    let v = env!("CARGO_PKG_VERSION");
    assert!(h.contains(&format!("#define BITS_VERSION_STRING \"{v}\"")));
}
