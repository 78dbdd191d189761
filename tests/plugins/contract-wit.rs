// Shared by the build scripts of the test plugins that speak another contract version: writes
// `wit/backend.wit` next to the plugin's Cargo.toml, the repository's `wit/backend.wit` with
// its package version replaced (and without the optional interfaces of later releases, which
// live in other files), so no copy of the contract is kept by hand.
fn write_contract(version: &str) {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../wit/backend.wit");
    println!("cargo:rerun-if-changed={src}");
    let text = std::fs::read_to_string(src).expect("wit/backend.wit");
    let (head, rest) = text.split_once("package hacluster:backend@").expect("a package line");
    let (_, tail) = rest.split_once(';').expect("the package line ends with ;");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/wit");
    std::fs::create_dir_all(dir).expect("wit dir");
    let out = format!("{head}package hacluster:backend@{version};{tail}");
    let path = format!("{dir}/backend.wit");
    // Written only when it changes, so the plugin is not rebuilt every time.
    if std::fs::read_to_string(&path).ok().as_deref() != Some(out.as_str()) {
        std::fs::write(&path, out).expect("write wit/backend.wit");
    }
}
