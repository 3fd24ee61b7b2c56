//! Build script: emits pyo3's `Py_3_x` cfgs for the Python chosen by `PYO3_PYTHON`
//! and an rpath to its libpython, so the NIF loads without `LD_LIBRARY_PATH`.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let config = pyo3_build_config::get();
    if let Some(dir) = &config.lib_dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Some(name) = &config.lib_name {
        println!("cargo:rustc-env=EP_LIBPYTHON_NAME={name}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
