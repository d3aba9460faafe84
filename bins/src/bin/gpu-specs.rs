//! gpu-specs: the GPUs and host of this machine (being built).
fn main() {
    println!("gpu-specs: being built");
}
