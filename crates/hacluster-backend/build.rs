//! Generates the bindings of every world from the WIT the crate carries, and stamps the
//! contract version.
//!
//! The bindings are generated here rather than by `wit_bindgen::generate!` because a backend
//! picks its world (`backend`, `backend-with-files`, `backend-with-endpoint` or both) when it
//! registers: every world's export macros must live in this crate, on one set of types, and the
//! macros wit-bindgen names after a shared export would be defined twice. Each world's are
//! renamed.

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
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).to_path_buf();
    std::fs::write(out.join("backend.rs"), backend).expect("write backend.rs");
    // The other worlds reuse the first one's types and imports; each gets its own module and
    // its own names for the per-interface export macros (which are crate-wide).
    for (world, tag) in [
        ("backend-with-files", "with_files"),
        ("backend-with-endpoint", "with_endpoint"),
        ("backend-with-files-and-endpoint", "with_files_and_endpoint"),
    ] {
        let with = ["types", "log", "progress", "checkpoint", "credentials", "hypervisor"]
            .iter()
            .map(|i| {
                let key = format!("hacluster:backend/{i}@{version}");
                (key, WithOption::Path(format!("crate::bindings::hacluster::backend::{i}")))
            })
            .collect();
        let text = generate(
            &mut resolve,
            pkg,
            world,
            &format!("export_backend_{tag}"),
            &format!("hacluster_backend::bindings::{tag}"),
            with,
        )
        .replace("__export_hacluster_backend_", &format!("__export_{tag}_hacluster_backend_"));
        std::fs::write(out.join(format!("{tag}.rs")), text).expect("write a world's bindings");
    }
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
