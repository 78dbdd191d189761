//! Generates the bindings of both worlds from the WIT the crate carries, and stamps the
//! contract version.
//!
//! The bindings are generated here rather than by `wit_bindgen::generate!` because a backend
//! picks its world (`backend`, or `backend-with-files`) when it registers: both worlds' export
//! macros must live in this crate, on one set of types, and the macro wit-bindgen names after
//! the shared `plugin` export would be defined twice. The second world's copy is renamed.

use std::path::Path;

use wit_bindgen_core::wit_parser::{PackageId, Resolve};
use wit_bindgen_core::{Files, WorldGenerator};
use wit_bindgen_rust::{Opts, WithOption};

fn main() {
    println!("cargo:rerun-if-changed=wit");
    let mut resolve = Resolve::default();
    let (pkg, sources) = resolve.push_dir("wit").expect("the contract in wit/ parses");
    for path in sources.paths() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let version = resolve.packages[pkg].name.version.as_ref().expect("the contract package has a version").to_string();
    println!("cargo:rustc-env=HACLUSTER_BACKEND_CONTRACT={version}");

    let backend = generate(&mut resolve, pkg, "backend", "export_backend", "hacluster_backend::bindings", Vec::new());
    // The second world reuses the first one's types and imports.
    let with = ["types", "log", "progress", "checkpoint", "credentials", "hypervisor"]
        .iter()
        .map(|i| {
            let key = format!("hacluster:backend/{i}@{version}");
            (key, WithOption::Path(format!("crate::bindings::hacluster::backend::{i}")))
        })
        .collect();
    let with_files = generate(
        &mut resolve,
        pkg,
        "backend-with-files",
        "export_backend_with_files",
        "hacluster_backend::bindings::with_files",
        with,
    )
    .replace("__export_hacluster_backend_plugin_", "__export_with_files_hacluster_backend_plugin_");

    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).to_path_buf();
    std::fs::write(out.join("backend.rs"), backend).expect("write backend.rs");
    std::fs::write(out.join("with_files.rs"), with_files).expect("write with_files.rs");
}

fn generate(
    resolve: &mut Resolve,
    pkg: PackageId,
    world: &str,
    export_macro: &str,
    module: &str,
    with: Vec<(String, WithOption)>,
) -> String {
    let id = resolve.select_world(&[pkg], Some(world)).expect("the world exists");
    let opts = Opts {
        format: true,
        pub_export_macro: true,
        export_macro_name: Some(export_macro.into()),
        default_bindings_module: Some(module.into()),
        with,
        ..Opts::default()
    };
    let mut files = Files::default();
    opts.build().generate(resolve, id, &mut files).expect("bindings generate");
    let (_, text) = files.iter().next().expect("one bindings file");
    String::from_utf8(text.to_vec()).expect("bindings are UTF-8")
}
